"""Benchmark model packs: the compute of real ASR models, recognising nothing.

Usage: python tools/bench/make_packs.py [OUT_DIR] [--only NAME]
       (OUT_DIR defaults to target/bench-packs; a Python with
       tools/train/requirements.txt installed, e.g. .venv-train)

Builds four streaming packs and two offline ones with random weights (fixed
seeds) for throughput benchmarks (see tools/bench/README.md, "Benchmark packs"):

- bench-ctc-20m, bench-ctc-70m: tools/train/model.py's causal CTC network
  (conv subsampling x4, causal depthwise-conv + FFN blocks, 418 tokens, NeMo
  features) made wider and deeper, exported as the committed
  zh-tiny-ctc-streaming pack is (sherpa-onnx `nemo_ctc`, 67-frame windows
  shifted by 64, 16 output frames a call);
- bench-transducer-20m, bench-transducer-70m: tools/train/transducer.py's
  transducer (the same blocks, a residual LSTM, icefall's stateless decoder,
  joiner) made wider and deeper, exported as the committed
  zh-tiny-transducer-streaming pack is (sherpa-onnx's streaming `lstm`
  transducer, T = 35 frames shifted by 32, 8 encoder frames a call, kaldi
  features);
- bench-ctc-20m-offline, bench-ctc-70m-offline: the same networks as
  bench-ctc-20m and bench-ctc-70m (same seeds, so the same weights and the
  same blank bias), exported as the committed zh-tiny-ctc-offline pack is
  (tools/train/export.py: an offline sherpa-onnx `nemo_ctc` model that takes
  the whole utterance), for the short-audio benchmark
  (scripts/bench-short-audio).

For every pack: the blank logit's bias is set so that greedy search emits
about one symbol per 5 encoder frames on speech (a transducer's decoder runs
once per emitted symbol; for CTC it only keeps the text sane), found by
bisection on held-out clips in PyTorch and then measured with sherpa-onnx;
the FLOPs (2 x multiply-adds) per second of audio are computed analytically
and checked with torch's FLOP counter; `sisd models verify` must accept the
pack; sherpa-onnx's OnlineRecognizer (offline packs: OfflineRecognizer)
decodes held-out audio with one thread and the real-time factor is measured. Results go to each pack.toml's
description and to OUT_DIR/packs.json.

The packs are not committed (target/ is ignored); the same script and seeds
give the same weights.
"""

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/train"))

import audio_pipeline  # noqa: E402  (the features sherpa-onnx computes)
import model as ctc_model  # noqa: E402
import transducer as tr_model  # noqa: E402
from export_transducer import DecoderExport, StreamingEncoder, add_meta  # noqa: E402

TOKENS = ROOT / "testdata/models/zh-tiny-ctc-streaming/tokens.txt"
SISD = ROOT / "target/release/sisd"
HELDOUT = Path(os.environ.get("SIS_HELDOUT_DIR", ROOT / "target/heldout")) / "16k"
SHARED_AUDIO = ROOT.parent / "shared/audio"
OPSET = 17
VOCAB = 418  # with the blank (id 0)
FEAT = 80
K = 8  # depthwise kernel, as in the committed packs
TARGET_RATE = 0.2  # emitted symbols per encoder frame (one per 5 frames, 40 ms each)
FRAME_S = 0.04  # an encoder frame (4 feature frames of 10 ms)
BEAM_PATHS = 4  # sisd's max_active_paths (crates/sis-engine/src/decoding.rs)
DESCRIPTION = "benchmark pack: random weights, recognises nothing, measures compute only"
# offline packs: their FLOPs per audio second are stated for an utterance of this length
OFFLINE_REF_S = 5.0


@dataclass
class Spec:
    name: str
    family: str  # "ctc" or "transducer"
    d: int
    blocks: int
    ffn: int
    joiner: int = 0  # transducer: joiner and decoder dimension
    seed: int = 0
    offline: bool = False  # CTC only: exported as an offline nemo_ctc model (whole utterances)

    @property
    def properties(self):
        # SIS-shaped (language_rate_domain) and served by no other pack, this
        # one's own: a request reaches it only by asking for it
        dom = "bench_" + self.name.removeprefix("bench-").replace("-", "_")
        return [f"chinese_16k_{dom}", f"chinese_8k_{dom}"]


# FFN = 2 d, kernel 8, as in the committed packs (CTC 192/384, transducer
# 160/320); depth and width chosen for about 20 M and 70 M parameters.
SPECS = [
    Spec("bench-ctc-20m", "ctc", d=512, blocks=14, ffn=1024, seed=2020),
    Spec("bench-ctc-70m", "ctc", d=768, blocks=23, ffn=1536, seed=2070),
    Spec("bench-transducer-20m", "transducer", d=512, blocks=12, ffn=1024, joiner=512, seed=3020),
    Spec("bench-transducer-70m", "transducer", d=768, blocks=21, ffn=1536, joiner=768, seed=3070),
    # the CTC networks above (same shapes, same seeds: the same weights), offline
    Spec("bench-ctc-20m-offline", "ctc", d=512, blocks=14, ffn=1024, seed=2020, offline=True),
    Spec("bench-ctc-70m-offline", "ctc", d=768, blocks=23, ffn=1536, seed=2070, offline=True),
]


# ---------------------------------------------------------------- audio


def read_wav(path):
    """16 kHz mono 16-bit PCM as float32 in [-1, 1], else None."""
    with wave.open(str(path)) as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            return None
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


# the held-out clips the checks decode (and RTFs are measured on)
TEST_NAMES = [f"s{i:03d}" for i in range(100, 108)] + [f"n{i:03d}" for i in range(100, 103)]


def heldout(names):
    return np.concatenate([read_wav(HELDOUT / f"{n}.wav") for n in names])


def audio_sets():
    """calib: held-out clips the bias is fitted on; test: other held-out
    clips (decode, emission rate, RTF); real: recorded Mandarin from
    ../shared/audio where present (emission rate on real speech)."""
    if not (HELDOUT / "s000.wav").exists():
        sys.exit(f"no held-out audio in {HELDOUT}: run tools/heldout/make_heldout.py (or set SIS_HELDOUT_DIR)")
    calib = heldout([f"s{i:03d}" for i in range(10)] + [f"n{i:03d}" for i in range(5)])
    test = heldout(TEST_NAMES)
    real, names = [], []
    tsv = SHARED_AUDIO / "transcripts.tsv"
    if tsv.exists():
        with open(tsv, encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["lang"] != "zh" or sum(len(x) for x in real) >= 60 * 16000:
                    continue
                x = read_wav(SHARED_AUDIO / row["path"])
                if x is not None:
                    real.append(x)
                    names.append(row["path"])
    return calib, test, (np.concatenate(real) if real else None), names


def feats_stats(x):
    """Per-bin mean and 1/std (baked into the network, as the committed
    transducer does; the CTC packs use NeMo's features without
    normalisation, so their network normalises too)."""
    return x.mean(axis=0), 1.0 / (x.std(axis=0) + 1e-5)


# ---------------------------------------------------------------- networks


def build_ctc(spec, calib_feats):
    torch.manual_seed(spec.seed)
    net = ctc_model.TinyCtc(VOCAB, d=spec.d, blocks=spec.blocks, k=K, ffn=spec.ffn, feat=FEAT)
    mean, istd = feats_stats(calib_feats)
    net.mean.copy_(torch.from_numpy(mean))
    net.istd.copy_(torch.from_numpy(istd))
    return net.eval()


class BenchTransducer(torch.nn.Module):
    """transducer.Transducer's parts with the FFN width exposed (Transducer
    itself keeps the encoder's default FFN) and no auxiliary CTC head."""

    def __init__(self, spec):
        super().__init__()
        self.encoder = tr_model.Encoder(feat=FEAT, d=spec.d, blocks=spec.blocks, k=K, ffn=spec.ffn,
                                        hidden=spec.d, joiner=spec.joiner)
        self.decoder = tr_model.Decoder(VOCAB, dim=spec.joiner, joiner=spec.joiner)
        self.joiner = tr_model.Joiner(VOCAB, joiner=spec.joiner)


def build_transducer(spec, calib_feats):
    torch.manual_seed(spec.seed)
    net = BenchTransducer(spec)
    mean, istd = feats_stats(calib_feats)
    net.encoder.mean.copy_(torch.from_numpy(mean))
    net.encoder.istd.copy_(torch.from_numpy(istd))
    return net.eval()


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- blank bias


def bisect(rate, target=TARGET_RATE, lo=-40.0, hi=40.0, steps=30):
    """The blank-logit offset at which rate(offset) (decreasing) is target."""
    r_lo, r_hi = rate(lo), rate(hi)
    assert r_lo > target > r_hi, (r_lo, r_hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        if rate(mid) > target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 3)


def ctc_rate_fn(net, feats):
    """Greedy CTC as sherpa-onnx does it: the argmax of every frame, repeats
    and blanks dropped."""
    hidden = {}
    h = net.ln.register_forward_hook(lambda m, i, o: hidden.setdefault("x", o))
    with torch.no_grad():
        net.encode(torch.from_numpy(feats.T[None].copy()))
    h.remove()
    with torch.no_grad():
        base = (hidden["x"][0] @ net.out.weight.T + net.out.bias).numpy()

    def rate(offset):
        logits = base.copy()
        logits[:, 0] += offset
        a = logits.argmax(axis=1)
        prev = np.concatenate([[0], a[:-1]])
        return float(((a != 0) & (a != prev)).sum()) / len(a)

    return rate


def transducer_rate_fn(net, feats):
    """Greedy search as sherpa-onnx does it: context [-1, 0], at most one
    symbol per encoder frame, the decoder rerun after each symbol."""
    with torch.no_grad():
        enc = net.encoder(torch.from_numpy(feats[None].copy()))[0][0].numpy()
    w = net.joiner.out.weight.detach().numpy()
    b = net.joiner.out.bias.detach().numpy()
    cache = {}

    def dec(ctx):
        if ctx not in cache:
            with torch.no_grad():
                cache[ctx] = net.decoder(torch.tensor([ctx]))[0, -1].numpy()
        return cache[ctx]

    def rate(offset):
        bb = b.copy()
        bb[0] += offset
        ctx, d, n = (-1, 0), dec((-1, 0)), 0
        for t in range(len(enc)):
            k = int((w @ np.tanh(enc[t] + d) + bb).argmax())
            if k != 0:
                n += 1
                ctx = (ctx[1], k)
                d = dec(ctx)
        return n / len(enc)

    return rate


# ---------------------------------------------------------------- FLOPs


def conv_out(t):
    return (t - 3) // 2 + 1  # kernel 3, stride 2, no padding


def ctc_macs(spec, frames_in=ctc_model.WINDOW):
    """Multiply-adds of one streaming call (67 feature frames -> 16 output
    frames), or of one offline call on frames_in feature frames (the
    utterance's plus the 3 the offline export appends); matrix products and
    convolutions only (LayerNorm, GELU, softmax and the residual adds are
    left out: under 1 % here)."""
    d, f = spec.d, spec.ffn
    t1 = conv_out(frames_in)
    t2 = conv_out(t1)
    return {
        "subsampling": t1 * d * FEAT * 3 + t2 * d * d * 3,
        "blocks": t2 * spec.blocks * (d * K + d * d + 2 * d * f),
        "output": t2 * d * VOCAB,
    }


def transducer_macs(spec):
    """Multiply-adds of one streaming encoder call (35 feature frames -> 8
    encoder frames), of one joiner call (one encoder frame) and of one
    decoder call (one emitted symbol)."""
    d, f, j = spec.d, spec.ffn, spec.joiner
    t1 = conv_out(tr_model.WINDOW)
    t2 = conv_out(t1)
    enc = {
        "subsampling": t1 * d * FEAT * 3 + t2 * d * d * 3,
        "blocks": t2 * spec.blocks * (d * K + d * d + 2 * d * f),
        "lstm": t2 * 4 * (d * d + d * d),
        "projection": t2 * d * j,
    }
    groups = j // 4
    decoder = j * (j // groups) * tr_model.CONTEXT + j * j
    joiner = j * VOCAB
    return enc, decoder, joiner


def counted_flops(module, *args):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(*args)
    return fc.get_total_flops()


def ctc_flops(spec, net):
    macs = ctc_macs(spec)
    per_call = 2 * sum(macs.values())
    args = (torch.randn(1, FEAT, ctc_model.WINDOW), torch.tensor([ctc_model.WINDOW]), torch.zeros(1, 1, 1, 1),
            torch.zeros(1, spec.blocks, spec.d, K - 1), torch.zeros(1, dtype=torch.int64))
    counted = counted_flops(ctc_model.OnlineExport(net), *args)
    assert counted == per_call, (counted, per_call)
    calls_per_s = 100 / ctc_model.SHIFT  # feature frames are 10 ms
    return {"flops_per_audio_s": per_call * calls_per_s, "flops_per_call": per_call,
            "breakdown_per_audio_s": {k: 2 * v * calls_per_s for k, v in macs.items()}}


def ctc_offline_flops(spec, net):
    """An offline call on a whole OFFLINE_REF_S s utterance (its feature
    frames as sherpa-onnx computes them, + RIGHT_PAD), per second of audio."""
    frames = audio_pipeline.features(np.zeros(int(OFFLINE_REF_S * 16000), np.float32), "nemo").shape[0]
    macs = ctc_macs(spec, frames + ctc_model.RIGHT_PAD)
    per_call = 2 * sum(macs.values())
    counted = counted_flops(ctc_model.OfflineExport(net), torch.randn(1, FEAT, frames), torch.tensor([frames]))
    assert counted == per_call, (counted, per_call)
    return {"flops_per_audio_s": per_call / OFFLINE_REF_S, "flops_per_call": per_call,
            "utterance_s": OFFLINE_REF_S, "feature_frames": frames,
            "breakdown_per_audio_s": {k: 2 * v / OFFLINE_REF_S for k, v in macs.items()}}


def transducer_flops(spec, net, rate):
    enc, dec, join = transducer_macs(spec)
    per_call = 2 * sum(enc.values())
    e = net.encoder
    x = torch.randn(1, tr_model.WINDOW, FEAT)
    h = torch.zeros(1, 1, spec.d)
    c = torch.zeros(1, 1, e.state_size)
    # torch's counter does not count nn.LSTM: add it
    counted = counted_flops(StreamingEncoder(e), x, h, c) + 2 * enc["lstm"]
    assert counted == per_call, (counted, per_call)
    y = torch.tensor([[-1, 0]])
    assert counted_flops(DecoderExport(net.decoder), y) == 2 * dec
    v = torch.randn(1, spec.joiner)
    assert counted_flops(net.joiner, v, v) == 2 * join
    calls_per_s = 100 / tr_model.CHUNK
    frames_per_s = 1 / FRAME_S
    parts = {k: 2 * v * calls_per_s for k, v in enc.items()}
    parts["joiner"] = 2 * join * frames_per_s
    parts["decoder"] = 2 * dec * rate * frames_per_s
    # modified_beam_search (what sisd runs for these packs, for hot words):
    # sherpa-onnx runs the decoder and the joiner on every active path (at
    # most max_active_paths = 4) at every encoder frame, whatever is emitted
    beam = sum(v for k, v in parts.items() if k not in ("joiner", "decoder"))
    beam += 2 * (join + dec) * BEAM_PATHS * frames_per_s
    return {"flops_per_audio_s": sum(parts.values()), "flops_per_call": per_call,
            "breakdown_per_audio_s": parts, "flops_per_audio_s_beam4": beam}


# ---------------------------------------------------------------- export


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def export_ctc(spec, net, d):
    b = 2
    dims_ch = (1, 1, 1)
    dims_t = (spec.blocks, spec.d, K - 1)
    w = ctc_model.WINDOW
    args = (torch.randn(b, FEAT, w), torch.full((b,), w), torch.zeros(b, *dims_ch), torch.zeros(b, *dims_t),
            torch.zeros(b, dtype=torch.int64))
    p = d / "model.onnx"
    names_in = ["audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"]
    names_out = ["logprobs", "encoded_lengths", "cache_last_channel_next", "cache_last_time_next",
                 "cache_last_channel_len_next"]
    torch.onnx.export(ctc_model.OnlineExport(net), args, str(p), dynamo=False, opset_version=OPSET,
                      input_names=names_in, output_names=names_out,
                      dynamic_axes={n: {0: "B"} for n in names_in + names_out})
    add_meta(str(p), {"vocab_size": VOCAB - 1, "window_size": w, "chunk_shift": ctc_model.SHIFT,
                      "subsampling_factor": 4, "normalize_type": "",
                      "cache_last_channel_dim1": dims_ch[0], "cache_last_channel_dim2": dims_ch[1],
                      "cache_last_channel_dim3": dims_ch[2], "cache_last_time_dim1": dims_t[0],
                      "cache_last_time_dim2": dims_t[1], "cache_last_time_dim3": dims_t[2],
                      "model_type": "EncDecCTCModel", "comment": f"{spec.name}: {DESCRIPTION} (tools/bench)"})
    # check: 3 streaming windows through onnxruntime = the PyTorch network on the whole input
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    feats = np.random.default_rng(0).standard_normal((1, FEAT, 3 * ctc_model.SHIFT + 3)).astype(np.float32) * 3 - 8
    with torch.no_grad():
        full = net.encode(torch.from_numpy(feats))[0].numpy()
    st = [np.zeros((1, *dims_ch), np.float32), np.zeros((1, *dims_t), np.float32), np.zeros(1, np.int64)]
    outs = []
    for s in range(0, feats.shape[2] - w + 1, ctc_model.SHIFT):
        o = sess.run(None, dict(zip(names_in, [feats[:, :, s:s + w], np.array([w]), *st])))
        outs.append(o[0])
        st = o[2:]
    stream = np.concatenate(outs, axis=1)
    diff = float(np.abs(stream - full[:, :stream.shape[1]]).max())
    assert stream.shape[1] == 3 * ctc_model.SHIFT // 4 and diff < 1e-3, (stream.shape, diff)
    return ["model.onnx", "tokens.txt"], diff


def export_ctc_offline(spec, net, d):
    """As tools/train/export.py exports zh-tiny-ctc-offline: the whole
    utterance (N, 80, T) and its lengths -> log-probs (N, T // 4, V)."""
    x = torch.randn(2, FEAT, 203)
    ln = torch.tensor([203, 150])
    p = d / "model.onnx"
    torch.onnx.export(ctc_model.OfflineExport(net), (x, ln), str(p), dynamo=False, opset_version=OPSET,
                      input_names=["audio_signal", "length"], output_names=["logprobs", "encoded_lengths"],
                      dynamic_axes={"audio_signal": {0: "N", 2: "T"}, "length": {0: "N"},
                                    "logprobs": {0: "N", 1: "T4"}, "encoded_lengths": {0: "N"}})
    add_meta(str(p), {"vocab_size": VOCAB - 1, "subsampling_factor": 4, "normalize_type": "",
                      "model_type": "EncDecCTCModel", "is_giga_am": 0,
                      "comment": f"{spec.name}: {DESCRIPTION} (tools/bench)"})
    # check: onnxruntime = the PyTorch network on a whole input, T // 4 output frames
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    t = 5 * ctc_model.SHIFT + 3
    feats = np.random.default_rng(0).standard_normal((1, FEAT, t)).astype(np.float32) * 3 - 8
    with torch.no_grad():
        full = ctc_model.OfflineExport(net)(torch.from_numpy(feats), torch.tensor([t]))[0].numpy()
    o = sess.run(None, {"audio_signal": feats, "length": np.array([t])})[0]
    diff = float(np.abs(o - full).max())
    assert o.shape == full.shape and o.shape[1] == t // 4 and diff < 1e-3, (o.shape, full.shape, diff)
    return ["model.onnx", "tokens.txt"], diff


def export_transducer(spec, net, d):
    e = net.encoder
    comment = f"{spec.name}: {DESCRIPTION} (tools/bench)"
    n = 2
    p = d / "encoder.onnx"
    torch.onnx.export(
        StreamingEncoder(e),
        (torch.randn(n, tr_model.WINDOW, FEAT), torch.zeros(1, n, spec.d), torch.zeros(1, n, e.state_size)),
        str(p), dynamo=False, opset_version=OPSET,
        input_names=["x", "h", "c"], output_names=["encoder_out", "next_h", "next_c"],
        dynamic_axes={"x": {0: "N"}, "h": {1: "N"}, "c": {1: "N"}, "encoder_out": {0: "N"},
                      "next_h": {1: "N"}, "next_c": {1: "N"}},
    )
    add_meta(str(p), {"model_type": "lstm", "num_encoder_layers": 1, "T": tr_model.WINDOW,
                      "decode_chunk_len": tr_model.CHUNK, "rnn_hidden_size": e.state_size, "d_model": spec.d,
                      "joiner_dim": spec.joiner, "comment": comment})
    y = torch.tensor([[-1, 0], [5, 7]], dtype=torch.int64)
    q = d / "decoder.onnx"
    torch.onnx.export(DecoderExport(net.decoder), (y,), str(q), dynamo=False, opset_version=OPSET,
                      input_names=["y"], output_names=["decoder_out"],
                      dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}})
    add_meta(str(q), {"vocab_size": VOCAB, "context_size": tr_model.CONTEXT, "comment": comment})
    v = torch.randn(3, spec.joiner)
    r = d / "joiner.onnx"
    torch.onnx.export(net.joiner, (v, v), str(r), dynamo=False, opset_version=OPSET,
                      input_names=["encoder_out", "decoder_out"], output_names=["logit"],
                      dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}})
    add_meta(str(r), {"joiner_dim": spec.joiner, "comment": comment})
    # check: 3 streaming windows through onnxruntime = the PyTorch encoder on the whole input
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    chunk, w = tr_model.CHUNK, tr_model.WINDOW
    feats = np.random.default_rng(0).standard_normal((1, 3 * chunk + 3, FEAT)).astype(np.float32) * 3 - 8
    with torch.no_grad():
        full = e(torch.from_numpy(feats))[0].numpy()
    h = np.zeros((1, 1, spec.d), np.float32)
    c = np.zeros((1, 1, e.state_size), np.float32)
    outs = []
    for s in range(0, feats.shape[1] - w + 1, chunk):
        o, h, c = sess.run(None, {"x": feats[:, s:s + w], "h": h, "c": c})
        outs.append(o)
    stream = np.concatenate(outs, axis=1)
    diff = float(np.abs(stream - full).max())
    assert stream.shape == full.shape and diff < 1e-3, (stream.shape, full.shape, diff)
    return ["encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt"], diff


def write_manifest(spec, d, files, description):
    roles = {"encoder.onnx": "encoder", "decoder.onnx": "decoder", "joiner.onnx": "joiner", "tokens.txt": "tokens",
             "model.onnx": "model"}
    lines = [
        f'name = "{spec.name}"',
        f'kind = "{"offline_asr" if spec.offline else "streaming_asr"}"',
        f'model_type = "{"nemo_ctc" if spec.family == "ctc" else "transducer"}"',
        'language = "zh"',
        "sample_rate = 16000",
        "# Properties of its own (no other pack serves them): a request reaches it only by asking for it.",
        "properties = [" + ", ".join(f'"{p}"' for p in spec.properties) + "]",
        "resample_8k = true",
        f'description = "{description}"',
        "# Random weights: it recognises nothing (made by tools/bench/make_packs.py for throughput benchmarks).",
        "test_only = true",
        "",
    ]
    for f in files:
        lines += ["[[files]]", f'path = "{f}"', f'sha256 = "{sha256(d / f)}"', f'role = "{roles[f]}"', ""]
    (d / "pack.toml").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------- checks


def ensure_sisd():
    if not SISD.exists():
        print("building target/release/sisd (cargo build --release -p sisd) ...", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "sisd"], cwd=ROOT, check=True)


def sisd_verify(d):
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([str(SISD), "models", "verify", "--models", str(d), "--data-dir", tmp],
                           capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or not out.startswith("ok"):
        sys.exit(f"sisd models verify refused {d}: {out}")
    return out


def recognizer(spec, d, method="greedy_search"):
    import sherpa_onnx

    if spec.family == "ctc":
        return sherpa_onnx.OnlineRecognizer.from_nemo_ctc(tokens=str(d / "tokens.txt"), model=str(d / "model.onnx"),
                                                          num_threads=1)
    # model_type left empty, as the Rust crate does: the encoder's metadata picks lstm
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(d / "tokens.txt"), encoder=str(d / "encoder.onnx"), decoder=str(d / "decoder.onnx"),
        joiner=str(d / "joiner.onnx"), num_threads=1, decoding_method=method, max_active_paths=BEAM_PATHS)


def decode(rec, audio, frames_per_call):
    """One stream, all audio at once, then the decode loop. Returns
    (decode wall s, decode CPU s, features wall s, encoder frames, tokens, text)."""
    s = rec.create_stream()
    t = time.perf_counter()
    s.accept_waveform(16000, audio)
    s.input_finished()
    feat_wall = time.perf_counter() - t
    calls = 0
    t, c = time.perf_counter(), time.process_time()
    while rec.is_ready(s):
        rec.decode_stream(s)
        calls += 1
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, cpu, feat_wall, calls * frames_per_call, list(rec.tokens(s)), rec.get_result(s)


def timed(rec, audio, per_call):
    decode(rec, audio[:16000 * 2], per_call)  # warm up
    return min((decode(rec, audio, per_call) for _ in range(2)), key=lambda r: r[0])


def offline_recognizer(d):
    import sherpa_onnx

    return sherpa_onnx.OfflineRecognizer.from_nemo_ctc(model=str(d / "model.onnx"), tokens=str(d / "tokens.txt"),
                                                       num_threads=1)


def decode_offline(rec, clips):
    """Each clip as one utterance (one stream, one decode call). Returns
    (decode wall s, decode CPU s, features wall s, encoder frames, tokens, texts)."""
    wall = cpu = feat_wall = 0.0
    frames, toks, texts = 0, [], []
    for x in clips:
        s = rec.create_stream()
        t = time.perf_counter()
        s.accept_waveform(16000, x)
        feat_wall += time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        rec.decode_stream(s)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        # the offline export gives T // 4 encoder frames for T feature frames
        frames += audio_pipeline.features(x, "nemo").shape[0] // 4
        toks += list(s.result.tokens)
        texts.append(s.result.text)
    return wall, cpu, feat_wall, frames, toks, texts


def measure_offline(d, real):
    """OfflineRecognizer, one thread: every test clip as one utterance (best
    of 2 passes), then the recorded speech as one utterance."""
    rec = offline_recognizer(d)
    clips = [read_wav(HELDOUT / f"{n}.wav") for n in TEST_NAMES]
    decode_offline(rec, clips[:1])  # warm up; also the one-clip decode check
    wall, cpu, feat_wall, frames, toks, texts = min((decode_offline(rec, clips) for _ in range(2)),
                                                    key=lambda r: r[0])
    secs = sum(len(x) for x in clips) / 16000
    res = {
        "test_audio_s": round(secs, 2),
        "test_clips": len(clips),
        "rtf": round(wall / secs, 4),
        "rtf_cpu": round(cpu / secs, 4),
        "features_rtf": round(feat_wall / secs, 4),
        "emission_rate_heldout": round(len(toks) / frames, 4),
        "sample_output": texts[0][:30],
    }
    if real is not None:
        _, _, _, rframes, rtoks, _ = decode_offline(rec, [real])
        res["emission_rate_real"] = round(len(rtoks) / rframes, 4)
        res["real_audio_s"] = round(len(real) / 16000, 2)
    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return res


def measure(spec, d, test, real):
    """Greedy search (CTC: the only search), then for transducers
    modified_beam_search with 4 paths, the search sisd uses for them."""
    rec = recognizer(spec, d)
    per_call = ctc_model.SHIFT // 4 if spec.family == "ctc" else tr_model.CHUNK // 4
    wall, cpu, feat_wall, frames, toks, text = timed(rec, test, per_call)
    secs = len(test) / 16000
    res = {
        "test_audio_s": round(secs, 2),
        "rtf": round(wall / secs, 4),
        "rtf_cpu": round(cpu / secs, 4),
        "features_rtf": round(feat_wall / secs, 4),
        "emission_rate_heldout": round(len(toks) / frames, 4),
        "sample_output": text[:30],
    }
    if real is not None:
        _, _, _, rframes, rtoks, _ = decode(rec, real, per_call)
        res["emission_rate_real"] = round(len(rtoks) / rframes, 4)
        res["real_audio_s"] = round(len(real) / 16000, 2)
    if spec.family == "transducer":
        del rec
        beam = recognizer(spec, d, "modified_beam_search")
        wall, cpu, _, frames, toks, _ = timed(beam, test, per_call)
        res["rtf_beam4"] = round(wall / secs, 4)
        res["rtf_cpu_beam4"] = round(cpu / secs, 4)
        res["emission_rate_heldout_beam4"] = round(len(toks) / frames, 4)
    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return res


# ---------------------------------------------------------------- main


def build(spec, out, calib, test, real):
    t0 = time.perf_counter()
    d = out / spec.name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copy(TOKENS, d / "tokens.txt")
    kind = "nemo" if spec.family == "ctc" else "kaldi"
    calib_feats = audio_pipeline.features(calib, kind)  # (T, 80)

    if spec.family == "ctc":
        net = build_ctc(spec, calib_feats)
        enc_params, total = n_params(net), n_params(net)
        rate_fn = ctc_rate_fn(net, calib_feats)
        offset = bisect(rate_fn)
        sim_rate = rate_fn(offset)
        with torch.no_grad():
            net.out.bias[0] += offset
        if spec.offline:
            files, diff = export_ctc_offline(spec, net, d)
            chunk = None  # one call on the whole utterance
        else:
            files, diff = export_ctc(spec, net, d)
            chunk = {"window_frames": ctc_model.WINDOW, "shift_frames": ctc_model.SHIFT,
                     "shift_ms": ctc_model.SHIFT * 10, "encoder_frames_per_call": ctc_model.SHIFT // 4}
        arch = (f"causal CTC (tools/train/model.py): conv subsampling x4, {spec.blocks} depthwise-conv + FFN blocks, "
                f"d {spec.d}, FFN {spec.ffn}, kernel {K}, {VOCAB} tokens, NeMo features")
        if spec.offline:
            arch += "; offline nemo_ctc export (the whole utterance in one call, as tools/train/export.py)"
    else:
        net = build_transducer(spec, calib_feats)
        enc_params, total = n_params(net.encoder), n_params(net)
        rate_fn = transducer_rate_fn(net, calib_feats)
        offset = bisect(rate_fn)
        sim_rate = rate_fn(offset)
        with torch.no_grad():
            net.joiner.out.bias[0] += offset
        files, diff = export_transducer(spec, net, d)
        chunk = {"window_frames": tr_model.WINDOW, "shift_frames": tr_model.CHUNK,
                 "shift_ms": tr_model.CHUNK * 10, "encoder_frames_per_call": tr_model.CHUNK // 4}
        arch = (f"conv + LSTM transducer (tools/train/transducer.py): conv subsampling x4, {spec.blocks} "
                f"depthwise-conv + FFN blocks, d {spec.d}, FFN {spec.ffn}, kernel {K}, residual LSTM {spec.d}, "
                f"joiner/decoder {spec.joiner}, {VOCAB} tokens, kaldi features; sherpa-onnx streaming lstm layout")
    print(f"{spec.name}: {total:,} parameters (encoder {enc_params:,}); blank offset {offset:+.3f}, "
          f"rate in PyTorch {sim_rate:.3f}/frame; {'offline' if spec.offline else 'streaming'} ONNX = PyTorch "
          f"within {diff:.1e}", flush=True)

    write_manifest(spec, d, files, DESCRIPTION)  # the description gets the figures below
    m = measure_offline(d, real) if spec.offline else measure(spec, d, test, real)
    rate = m["emission_rate_heldout"]
    if spec.offline:
        fl = ctc_offline_flops(spec, net)
    else:
        fl = ctc_flops(spec, net) if spec.family == "ctc" else transducer_flops(spec, net, rate)
    gflops = fl["flops_per_audio_s"] / 1e9
    if spec.offline:
        desc = (f"{DESCRIPTION}. {arch}. {total:,} parameters; {gflops:.2f} GFLOPs per second of audio "
                f"(2 x multiply-adds, a {OFFLINE_REF_S:g} s utterance in one call)")
    else:
        desc = (f"{DESCRIPTION}. {arch}. {total:,} parameters; {gflops:.2f} GFLOPs per second of audio "
                f"(2 x multiply-adds, streaming windows of {chunk['window_frames']} frames shifted by "
                f"{chunk['shift_frames']}" + ("" if spec.family == "ctc" else
                                              f"; greedy search, decoder at {rate:.3f} symbols per encoder frame; "
                                              f"{fl['flops_per_audio_s_beam4'] / 1e9:.2f} with modified_beam_search, "
                                              f"{BEAM_PATHS} paths") + ")")
    write_manifest(spec, d, files, desc)
    verified = sisd_verify(d)
    entry = {
        "name": spec.name, "family": spec.family, "dir": str(d.relative_to(ROOT) if d.is_relative_to(ROOT) else d),
        "properties": spec.properties, "params": total, "encoder_params": enc_params,
        "shape": {"d": spec.d, "blocks": spec.blocks, "ffn": spec.ffn, "kernel": K,
                  **({"joiner": spec.joiner} if spec.joiner else {})},
        "flops_per_audio_s": round(fl["flops_per_audio_s"]),
        **({"flops_per_audio_s_beam4": round(fl["flops_per_audio_s_beam4"])} if spec.family == "transducer" else {}),
        "flops_breakdown_per_audio_s": {k: round(v) for k, v in fl["breakdown_per_audio_s"].items()},
        **({"offline_call": {"utterance_s": fl["utterance_s"], "feature_frames": fl["feature_frames"],
                             "encoder_frames": fl["feature_frames"] // 4}} if spec.offline else {"chunk": chunk}),
        "blank_offset": offset, "emission_rate_calibration": round(sim_rate, 4),
        "seed": spec.seed, **m, "sisd_verify": verified, "build_s": round(time.perf_counter() - t0, 1),
    }
    print(f"{spec.name}: {gflops:.3f} GFLOPs/audio s; RTF {m['rtf']:.4f} (CPU {m['rtf_cpu']:.4f}, "
          f"features {m['features_rtf']:.4f}); emitted {rate:.3f}/frame held-out"
          + (f", {m['emission_rate_real']:.3f}/frame real speech" if "emission_rate_real" in m else "")
          + (f"; modified_beam_search: {fl['flops_per_audio_s_beam4'] / 1e9:.3f} GFLOPs/audio s, "
             f"RTF {m['rtf_beam4']:.4f}" if spec.family == "transducer" else "")
          + f"; {verified.split(chr(9))[0]} by sisd; {entry['build_s']} s", flush=True)
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "target/bench-packs"))
    ap.add_argument("--only", choices=[s.name for s in SPECS], help="build one pack (packs.json keeps the others)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ensure_sisd()
    calib, test, real, real_names = audio_sets()
    print(f"calibration {len(calib) / 16000:.1f} s held-out; test {len(test) / 16000:.1f} s held-out; real speech "
          + (f"{len(real) / 16000:.1f} s ({', '.join(real_names)})" if real is not None else "none"), flush=True)
    summary_path = out / "packs.json"
    old = {}
    if args.only and summary_path.exists():
        old = {p["name"]: p for p in json.loads(summary_path.read_text())["packs"]}
    for spec in SPECS:
        if args.only and spec.name != args.only:
            continue
        old[spec.name] = build(spec, out, calib, test, real)
    packs = [old[s.name] for s in SPECS if s.name in old]
    summary = {
        "note": DESCRIPTION,
        "made_by": "tools/bench/make_packs.py",
        "flops": "2 x multiply-adds of matrix products and convolutions per second of audio, streaming chunking "
                 "included; transducers: encoder + joiner every encoder frame + decoder per emitted symbol",
        "flops_per_audio_s_beam4": "transducers under modified_beam_search with 4 paths (what sisd runs for them): "
                                   "decoder and joiner on 4 paths every encoder frame",
        "rtf": "one stream, sherpa-onnx OnlineRecognizer, num_threads=1, decode loop wall time / audio time "
               "(best of 2; rtf_cpu: process CPU time; features_rtf: accept_waveform; greedy search, "
               "rtf_beam4: transducers with modified_beam_search, 4 paths); offline packs: OfflineRecognizer, "
               "num_threads=1, each test clip one utterance (one decode_stream call), summed",
        "flops_offline": f"offline packs: one call on a whole {OFFLINE_REF_S:g} s utterance (sherpa-onnx's feature "
                         "frames + the 3 the export appends), per second of audio",
        "audio": {"calibration": "held-out s000-s009, n000-n004", "test": "held-out s100-s107, n100-n102",
                  "real": real_names},
        "packs": packs,
    }
    summary_path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    def opt(p, key, width, fmt, scale=1):
        return f"{p[key] / scale:>{width}{fmt}}" if key in p else f"{'-':>{width}}"

    print(f"{'pack':22} {'params':>11} {'GFLOPs/s':>9} {'RTF':>7} {'RTF cpu':>7} {'rate':>6} {'real':>6}"
          f" {'beam4 GFLOPs/s':>14} {'beam4 RTF':>9}")
    for p in packs:
        print(f"{p['name']:22} {p['params']:>11,} {p['flops_per_audio_s'] / 1e9:>9.3f} {p['rtf']:>7.4f} "
              f"{p['rtf_cpu']:>7.4f} {p['emission_rate_heldout']:>6.3f} {opt(p, 'emission_rate_real', 6, '.3f')}"
              f" {opt(p, 'flops_per_audio_s_beam4', 14, '.3f', 1e9)} {opt(p, 'rtf_beam4', 9, '.4f')}")
    print(f"wrote {summary_path}")


if __name__ == "__main__":
    main()
