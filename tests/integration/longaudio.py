"""Long recordings of real human speech for the file-job tests and benchmark:
every clip of ../shared/audio (resampled to 16 kHz mono by ffmpeg), each
followed by a pause, repeated until the wanted length; and the speech
segments Silero VAD finds in them through the sherpa-onnx Python package."""

import subprocess
import wave
from pathlib import Path

import numpy as np

RATE = 16000
SHARED = Path(__file__).resolve().parents[3] / "shared"
SILERO = SHARED / "models/silero_vad/silero_vad.onnx"


def clips():
    return sorted((SHARED / "audio").rglob("*.wav"))


def _pcm(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16)


def make(seconds, wav_out, gap_s=1.0):
    """Writes a 16 kHz mono 16-bit WAV of at least `seconds`; returns its samples."""
    gap = np.zeros(int(gap_s * RATE), dtype=np.int16)
    one_round = np.concatenate([np.concatenate([_pcm(c), gap]) for c in clips()])
    rounds = int(np.ceil(seconds * RATE / len(one_round)))
    samples = np.tile(one_round, rounds)
    with wave.open(str(wav_out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return samples


def silero_segments(samples, min_silence_s=0.5, min_speech_s=0.25, max_speech_s=20.0):
    """(start_ms, end_ms) of every speech segment, the settings sisd uses for files."""
    import sherpa_onnx

    cfg = sherpa_onnx.VadModelConfig()
    cfg.silero_vad.model = str(SILERO)
    cfg.silero_vad.threshold = 0.5
    cfg.silero_vad.min_silence_duration = min_silence_s
    cfg.silero_vad.min_speech_duration = min_speech_s
    cfg.silero_vad.max_speech_duration = max_speech_s
    cfg.silero_vad.window_size = 512
    cfg.sample_rate = RATE
    vad = sherpa_onnx.VoiceActivityDetector(cfg, buffer_size_in_seconds=max_speech_s + 5)
    out = []

    def drain():
        while not vad.empty():
            seg = vad.front
            out.append((seg.start * 1000 // RATE, (seg.start + len(seg.samples)) * 1000 // RATE))
            vad.pop()

    # one window per call: sherpa-onnx's VAD gives other segments when fed
    # larger pieces, and sisd feeds it window by window
    for i in range(0, len(samples) - 511, 512):
        vad.accept_waveform(samples[i:i + 512].astype(np.float32) / 32768.0)
        drain()
    vad.flush()
    drain()
    return out
