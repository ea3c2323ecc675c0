"""Where one real-time stream's CPU goes inside sherpa-onnx, with no server
around it: feature extraction (OnlineStream.accept_waveform) vs the model
(decode), for the committed streaming pack, per second of audio, at several
chunk sizes. Run: .venv/bin/python tools/bench/stream_cost.py"""

import time
from pathlib import Path

import numpy as np
import sherpa_onnx

PACK = Path(__file__).resolve().parents[2] / "testdata/models/zh-tiny-ctc-streaming"
SECONDS = 120

rec = sherpa_onnx.OnlineRecognizer.from_nemo_ctc(tokens=str(PACK / "tokens.txt"), model=str(PACK / "model.onnx"),
                                                 num_threads=1)
audio = (np.random.default_rng(1).standard_normal(16000 * SECONDS) * 0.05).astype(np.float32)
print("chunk_ms  features_%core  model_%core  (per stream, one stream at a time)")
for chunk in (1600, 3200, 6400, 16000):
    s = rec.create_stream()
    t = time.process_time()
    for i in range(0, len(audio), chunk):
        s.accept_waveform(16000, audio[i:i + chunk])
    features = time.process_time() - t
    t = time.process_time()
    while rec.is_ready(s):
        rec.decode_stream(s)
    model = time.process_time() - t
    print(f"{chunk // 16:8d}  {100 * features / SECONDS:14.3f}  {100 * model / SECONDS:11.3f}")
