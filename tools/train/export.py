"""Export a trained checkpoint as two sherpa-onnx nemo_ctc packs (offline + streaming).

Usage: python export.py CKPT TOKENS OUT_DIR
Writes OUT_DIR/zh-tiny-ctc-offline/{model.onnx,tokens.txt,pack.toml}
and    OUT_DIR/zh-tiny-ctc-streaming/{model.onnx,tokens.txt,pack.toml}.
"""

import hashlib
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model import SHIFT, WINDOW, OfflineExport, OnlineExport, TinyCtc


def add_meta(path, meta):
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.save(m, path)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_manifest(dirname, kind, model_type, description):
    files = ["model.onnx", "tokens.txt"]
    lines = [
        f'name = "{os.path.basename(dirname)}"',
        f'kind = "{kind}"',
        f'model_type = "{model_type}"',
        'language = "zh"',
        "sample_rate = 16000",
        'properties = ["chinese_16k_common", "chinese_16k_general", "chinese_8k_common", "chinese_8k_general"]',
        "# 8 kHz properties are served by this 16 kHz model; audio is resampled first.",
        "resample_8k = true",
        f'description = "{description}"',
        "# Recognises synthetic test speech only: the server warns when it serves it.",
        "test_only = true",
        "",
    ]
    for f in files:
        lines += ["[[files]]", f'path = "{f}"', f'sha256 = "{sha256(os.path.join(dirname, f))}"', ""]
    with open(os.path.join(dirname, "pack.toml"), "w") as fh:
        fh.write("\n".join(lines))


def main():
    ckpt, tokens, out = sys.argv[1:4]
    c = torch.load(ckpt)
    net = TinyCtc(c["vocab"], d=c["d"], blocks=c["blocks"])
    net.load_state_dict(c["state"])
    net.eval()
    vocab = c["vocab"]

    off_dir = os.path.join(out, "zh-tiny-ctc-offline")
    on_dir = os.path.join(out, "zh-tiny-ctc-streaming")
    for d in (off_dir, on_dir):
        os.makedirs(d, exist_ok=True)
        shutil.copy(tokens, os.path.join(d, "tokens.txt"))

    # offline
    x = torch.randn(2, 80, 203)
    ln = torch.tensor([203, 150])
    p = os.path.join(off_dir, "model.onnx")
    torch.onnx.export(
        OfflineExport(net), (x, ln), p, dynamo=False, opset_version=17,
        input_names=["audio_signal", "length"], output_names=["logprobs", "encoded_lengths"],
        dynamic_axes={"audio_signal": {0: "N", 2: "T"}, "length": {0: "N"},
                      "logprobs": {0: "N", 1: "T4"}, "encoded_lengths": {0: "N"}},
    )
    add_meta(p, {"vocab_size": vocab - 1, "subsampling_factor": 4, "normalize_type": "",
                 "model_type": "EncDecCTCModel", "is_giga_am": 0,
                 "comment": "tiny synthetic-Mandarin test model (tools/train)"})

    # streaming
    b = 2
    dims_ch = (1, 1, 1)
    dims_t = (c["blocks"], c["d"], net.k - 1)
    args = (torch.randn(b, 80, WINDOW), torch.full((b,), WINDOW), torch.zeros(b, *dims_ch),
            torch.zeros(b, *dims_t), torch.zeros(b, dtype=torch.int64))
    q = os.path.join(on_dir, "model.onnx")
    names_in = ["audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"]
    names_out = ["logprobs", "encoded_lengths", "cache_last_channel_next", "cache_last_time_next",
                 "cache_last_channel_len_next"]
    torch.onnx.export(
        OnlineExport(net), args, q, dynamo=False, opset_version=17,
        input_names=names_in, output_names=names_out,
        dynamic_axes={n: {0: "B"} for n in names_in + names_out},
    )
    add_meta(q, {"vocab_size": vocab - 1, "window_size": WINDOW, "chunk_shift": SHIFT,
                 "subsampling_factor": 4, "normalize_type": "",
                 "cache_last_channel_dim1": dims_ch[0], "cache_last_channel_dim2": dims_ch[1],
                 "cache_last_channel_dim3": dims_ch[2], "cache_last_time_dim1": dims_t[0],
                 "cache_last_time_dim2": dims_t[1], "cache_last_time_dim3": dims_t[2],
                 "model_type": "EncDecCTCModel",
                 "comment": "tiny synthetic-Mandarin test model (tools/train)"})

    # check: streaming windows reproduce the offline output
    so = ort.InferenceSession(p)
    sn = ort.InferenceSession(q)
    assert len(sn.get_inputs()) == 5 and len(so.get_inputs()) == 2
    feats = np.random.default_rng(0).standard_normal((1, 80, 64 * 5 + 3)).astype(np.float32) * 3 - 8
    full = so.run(None, {"audio_signal": feats, "length": np.array([feats.shape[2]])})[0]
    st = [np.zeros((1, *dims_ch), np.float32), np.zeros((1, *dims_t), np.float32), np.zeros(1, np.int64)]
    chunks = []
    for s in range(0, feats.shape[2] - WINDOW + 1, SHIFT):
        o = sn.run(None, {"audio_signal": feats[:, :, s:s + WINDOW], "length": np.array([WINDOW]),
                          "cache_last_channel": st[0], "cache_last_time": st[1],
                          "cache_last_channel_len": st[2]})
        chunks.append(o[0])
        st = o[2:]
    stream = np.concatenate(chunks, axis=1)
    diff = np.abs(stream - full[:, :stream.shape[1]]).max()
    assert full.shape[1] == feats.shape[2] // 4, full.shape
    print(f"offline frames {full.shape[1]}, streaming frames {stream.shape[1]}, max |diff| {diff:.2e}")
    assert diff < 1e-3

    write_manifest(off_dir, "offline_asr", "nemo_ctc", "Tiny causal CTC, synthetic Mandarin numbers and service phrases")
    write_manifest(on_dir, "streaming_asr", "nemo_ctc", "Tiny causal CTC, synthetic Mandarin numbers and service phrases")
    for d in (off_dir, on_dir):
        print(d, os.path.getsize(os.path.join(d, "model.onnx")))


if __name__ == "__main__":
    main()
