"""sentence-stream on real human speech (../shared/audio): the VOICE_START and
VOICE_END (or, when the tiny model hears no words, EXCEEDED_SILENCE) times the
server reports over WebSocket lie within 200 ms of the first speech segment
that Silero VAD finds in the same file, run independently here through the
sherpa-onnx Python package on the whole file with the same settings."""

import json

import numpy as np
import pytest
import sherpa_onnx

from conftest import SHARED
from encode import ffmpeg
from test_rasr import SDK_CONFIG, connect, rt  # noqa: F401  (rt is a fixture)

CLIPS = sorted((SHARED / "audio").rglob("*.wav"))
TAIL_S = 2.0  # silence appended so every sentence ends inside the stream


def silero_first_segment(samples, tail_ms, max_s):
    cfg = sherpa_onnx.VadModelConfig()
    cfg.silero_vad.model = str(SHARED / "models/silero_vad/silero_vad.onnx")
    cfg.silero_vad.threshold = 0.5
    cfg.silero_vad.min_silence_duration = tail_ms / 1000
    cfg.silero_vad.min_speech_duration = 0.25
    cfg.silero_vad.max_speech_duration = max_s
    cfg.silero_vad.window_size = 512
    cfg.sample_rate = 16000
    vad = sherpa_onnx.VoiceActivityDetector(cfg, buffer_size_in_seconds=max_s + 5)
    for i in range(0, len(samples), 512):
        vad.accept_waveform(samples[i:i + 512])
        if not vad.empty():
            seg = vad.front
            return seg.start * 1000 // 16000, (seg.start + len(seg.samples)) * 1000 // 16000
    return None


@pytest.mark.skipif(not CLIPS, reason="../shared/audio missing")
def test_sentence_stream_events_match_silero(rt):  # noqa: F811
    ws = connect(rt, "sentence-stream")
    checked = []
    for clip in CLIPS:
        pcm = ffmpeg(clip, "-ar", "16000", "-f", "s16le") + b"\0" * int(32000 * TAIL_S)
        pcm += b"\0" * (-len(pcm) % 3200)
        if len(pcm) > 32000 * 55:
            continue
        ref = silero_first_segment(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768,
                                   SDK_CONFIG["vad_tail"], SDK_CONFIG["max_seconds"])
        ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        for i in range(0, len(pcm), 3200):
            ws.send_binary(pcm[i:i + 3200])
        ws.send(json.dumps({"command": "END"}))
        events = []
        while True:
            m = json.loads(ws.recv())
            if m["resp_type"] == "EVENT":
                events.append((m["event"], m["timestamp"]))
            if m["resp_type"] == "END":
                break
        assert ref is not None, clip
        names = [e for e, _ in events]
        assert names in (["VOICE_START", "VOICE_END"], ["VOICE_START", "EXCEEDED_SILENCE"]), (clip, events)
        start, end = events[0][1], events[1][1]
        assert abs(start - ref[0]) <= 200, (clip.name, events, ref)
        assert abs(end - ref[1]) <= 200, (clip.name, events, ref)
        checked.append((clip.name, start - ref[0], end - ref[1]))
    ws.close()
    print("VOICE_START/END minus Silero (ms):", checked)
    assert len(checked) >= 20
