"""Export a trained transducer checkpoint as two sherpa-onnx 2.0.1 packs.

Usage: python export_transducer.py CKPT TOKENS OUT_DIR [--note TEXT]
Writes OUT_DIR/zh-tiny-transducer-streaming/{encoder,decoder,joiner}.onnx,
tokens.txt, pack.toml (an `lstm` online transducer) and
OUT_DIR/zh-tiny-transducer-offline/... (an offline transducer). The decoder
and joiner files are the same in both packs.

ONNX contracts (sherpa-onnx csrc at 634265c; the 2.0.1 binary agrees, see
tools/train/README.md):
- streaming encoder (online-lstm-transducer-model.cc): inputs x (N, T, 80),
  h (L, N, d_model), c (L, N, rnn_hidden_size), by position; outputs
  encoder_out (N, T', J), next_h, next_c. Metadata model_type = lstm
  (online-transducer-model.cc picks the class by it), num_encoder_layers, T,
  decode_chunk_len, rnn_hidden_size, d_model. sherpa-onnx only makes the
  two states (zeros of those shapes), concatenates and splits them on axis 1
  for batches, and passes them back: here L = 1, h is the LSTM's h (d_model
  = hidden) and c is the LSTM's c followed by the convolution caches
  (rnn_hidden_size = hidden + blocks * d * (k - 1)).
- offline encoder (offline-transducer-model.cc): inputs x (N, T, 80),
  x_lens int64 (N); outputs encoder_out (N, T', J), encoder_out_lens int64
  (N). Metadata model_type = conformer: with no model_type in the
  recognizer's config (the Rust crate sets none) offline-recognizer-impl.cc
  opens the encoder and accepts only conformer / zipformer / zipformer2 for
  an icefall-style transducer; anything else ends the process.
- decoder: y int64 (N, 2) -> decoder_out (N, J), exactly one output (more
  outputs select the NeMo transducer); metadata vocab_size (tokens with the
  blank), context_size.
- joiner: encoder_out (N, J), decoder_out (N, J) -> logit (N, V).
"""

import argparse
import hashlib
import os
import shutil

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch
from torch import nn

from transducer import CHUNK, CONTEXT, WINDOW, Transducer, out_frames

OPSET = 17


class StreamingEncoder(nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, x, h, c):
        out, _, h, c = self.enc(x, h, c)
        return out, h, c


class OfflineEncoder(nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, x, x_lens):
        out, _, _, _ = self.enc(x)
        return out, out_frames(x_lens)


class DecoderExport(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, y):
        return self.dec(y)[:, -1]


def add_meta(path, meta):
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.save(m, path)


def fp16_weights(path, min_size=256):
    """Stores every float initializer of at least `min_size` values as
    float16, with a Cast back to float32 in front of its users: the file
    halves, onnxruntime folds the casts when it loads the model, and the
    computation stays float32 (the weights lose precision below 1e-3
    relative, measured in the CER check of the README)."""
    m = onnx.load(path)
    g = m.graph
    casts, keep = [], []
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) >= min_size:
            arr = onnx.numpy_helper.to_array(init).astype(np.float16)
            half = onnx.numpy_helper.from_array(arr, init.name + "_fp16")
            keep.append(half)
            casts.append(onnx.helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                               name=init.name + "_cast"))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


FILES = [("encoder.onnx", "encoder"), ("decoder.onnx", "decoder"), ("joiner.onnx", "joiner"),
         ("tokens.txt", "tokens")]

# SIS-shaped properties no other committed pack serves (the CTC packs serve
# chinese_{16k,8k}_{common,general}): a request reaches the transducer only
# by asking for it. "hotword" names what the pack exists to test.
PROPERTIES = ["chinese_16k_hotword", "chinese_8k_hotword"]


def write_manifest(dirname, kind, description):
    lines = [
        f'name = "{os.path.basename(dirname)}"',
        f'kind = "{kind}"',
        'model_type = "transducer"',
        'language = "zh"',
        "sample_rate = 16000",
        "# Properties of its own, so that it never takes a request meant for the CTC packs.",
        "properties = [" + ", ".join(f'"{p}"' for p in PROPERTIES) + "]",
        "resample_8k = true",
        f'description = "{description}"',
        "# Recognises synthetic test speech only: the server warns when it serves it.",
        "test_only = true",
        "",
    ]
    for f, role in FILES:
        lines += ["[[files]]", f'path = "{f}"', f'sha256 = "{sha256(os.path.join(dirname, f))}"',
                  f'role = "{role}"', ""]
    with open(os.path.join(dirname, "pack.toml"), "w") as fh:
        fh.write("\n".join(lines))


def export_decoder_joiner(net, d, vocab, joiner_dim, comment):
    y = torch.tensor([[-1, 0], [5, 7]], dtype=torch.int64)
    p = os.path.join(d, "decoder.onnx")
    torch.onnx.export(DecoderExport(net.decoder), (y,), p, dynamo=False, opset_version=OPSET,
                      input_names=["y"], output_names=["decoder_out"],
                      dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}})
    fp16_weights(p)
    add_meta(p, {"vocab_size": vocab, "context_size": CONTEXT, "comment": comment})
    e = torch.randn(3, joiner_dim)
    q = os.path.join(d, "joiner.onnx")
    torch.onnx.export(net.joiner, (e, e), q, dynamo=False, opset_version=OPSET,
                      input_names=["encoder_out", "decoder_out"], output_names=["logit"],
                      dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}})
    fp16_weights(q)
    add_meta(q, {"joiner_dim": joiner_dim, "comment": comment})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("tokens")
    ap.add_argument("out")
    ap.add_argument("--note", default="", help="appended to the packs' description (e.g. a short run)")
    args = ap.parse_args()
    c = torch.load(args.ckpt)
    vocab, hidden, joiner_dim = c["vocab"], c["hidden"], c["joiner"]
    net = Transducer(vocab, d=c["d"], blocks=c["blocks"], hidden=hidden, joiner=joiner_dim,
                     decoder_dim=joiner_dim)
    layers, state = 1, net.encoder.state_size
    net.load_state_dict(c["state"])
    net.eval()
    assert sum(1 for _ in open(args.tokens, encoding="utf-8")) == vocab
    comment = "tiny synthetic-Mandarin test transducer (tools/train)"

    on_dir = os.path.join(args.out, "zh-tiny-transducer-streaming")
    off_dir = os.path.join(args.out, "zh-tiny-transducer-offline")
    for d in (on_dir, off_dir):
        os.makedirs(d, exist_ok=True)
        shutil.copy(args.tokens, os.path.join(d, "tokens.txt"))
        export_decoder_joiner(net, d, vocab, joiner_dim, comment)

    # streaming encoder: a window of T frames, h and c carried
    n = 2
    p = os.path.join(on_dir, "encoder.onnx")
    torch.onnx.export(
        StreamingEncoder(net.encoder),
        (torch.randn(n, WINDOW, 80), torch.zeros(layers, n, hidden), torch.zeros(layers, n, state)),
        p, dynamo=False, opset_version=OPSET,
        input_names=["x", "h", "c"], output_names=["encoder_out", "next_h", "next_c"],
        dynamic_axes={"x": {0: "N"}, "h": {1: "N"}, "c": {1: "N"}, "encoder_out": {0: "N"},
                      "next_h": {1: "N"}, "next_c": {1: "N"}},
    )
    fp16_weights(p)
    add_meta(p, {"model_type": "lstm", "num_encoder_layers": layers, "T": WINDOW,
                 "decode_chunk_len": CHUNK, "rnn_hidden_size": state, "d_model": hidden,
                 "joiner_dim": joiner_dim, "comment": comment})

    # offline encoder: the whole utterance
    q = os.path.join(off_dir, "encoder.onnx")
    torch.onnx.export(
        OfflineEncoder(net.encoder), (torch.randn(2, 203, 80), torch.tensor([203, 150])),
        q, dynamo=False, opset_version=OPSET,
        input_names=["x", "x_lens"], output_names=["encoder_out", "encoder_out_lens"],
        dynamic_axes={"x": {0: "N", 1: "T"}, "x_lens": {0: "N"}, "encoder_out": {0: "N", 1: "T4"},
                      "encoder_out_lens": {0: "N"}},
    )
    fp16_weights(q)
    add_meta(q, {"model_type": "conformer", "joiner_dim": joiner_dim,
                 "comment": comment + "; conv blocks + LSTM: model_type conformer only routes it "
                                      "to sherpa-onnx's icefall transducer"})

    # check: streaming windows reproduce the offline encoder output
    so, sn = ort.InferenceSession(q), ort.InferenceSession(p)
    chunks = 6
    feats = np.random.default_rng(0).standard_normal((1, CHUNK * chunks + 3, 80)).astype(np.float32) * 3 - 8
    full, full_lens = so.run(None, {"x": feats, "x_lens": np.array([feats.shape[1]])})
    assert full.shape[1] == int(full_lens[0]) == out_frames(feats.shape[1]) == CHUNK // 4 * chunks
    h = np.zeros((layers, 1, hidden), np.float32)
    cc = np.zeros((layers, 1, state), np.float32)
    outs = []
    for s in range(0, feats.shape[1] - WINDOW + 1, CHUNK):
        o, h, cc = sn.run(None, {"x": feats[:, s:s + WINDOW], "h": h, "c": cc})
        outs.append(o)
    stream = np.concatenate(outs, axis=1)
    diff = np.abs(stream - full).max()
    print(f"offline frames {full.shape[1]}, streaming frames {stream.shape[1]}, max |diff| {diff:.2e}")
    assert stream.shape == full.shape and diff < 1e-4

    desc = "Tiny conv + LSTM transducer, synthetic Mandarin numbers and service phrases; for hot-word tests"
    if args.note:
        desc += f"; {args.note}"
    write_manifest(on_dir, "streaming_asr", desc)
    write_manifest(off_dir, "offline_asr", desc)
    for d in (on_dir, off_dir):
        print(d, {f: os.path.getsize(os.path.join(d, f)) for f, _ in FILES})


if __name__ == "__main__":
    main()
