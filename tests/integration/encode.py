"""Encodes a 16-bit WAV clip into each SIS audio_format with real encoders
(ffmpeg, opencore-amr / vo-amrwbenc through amr-encode)."""

import subprocess
import tempfile
from pathlib import Path

from conftest import AMR_ENCODE


def ffmpeg(src, *args):
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-ac", "1", *args, "-"],
                          check=True, capture_output=True).stdout


def amr(src, wb):
    rate = "16000" if wb else "8000"
    raw = ffmpeg(src, "-ar", rate, "-f", "s16le")
    with tempfile.TemporaryDirectory() as d:
        i, o = Path(d) / "in.raw", Path(d) / "out.amr"
        i.write_bytes(raw)
        subprocess.run([AMR_ENCODE, "wb" if wb else "nb", i, o], check=True)
        return o.read_bytes()


# (name, audio_format, property rate, source rate, encoder)
FORMATS = [
    ("pcm16k16bit", "pcm16k16bit", 16, lambda s: ffmpeg(s, "-ar", "16000", "-f", "s16le")),
    ("pcm8k16bit", "pcm8k16bit", 8, lambda s: ffmpeg(s, "-ar", "8000", "-f", "s16le")),
    ("ulaw16k8bit", "ulaw16k8bit", 16, lambda s: ffmpeg(s, "-ar", "16000", "-f", "mulaw")),
    ("ulaw8k8bit", "ulaw8k8bit", 8, lambda s: ffmpeg(s, "-ar", "8000", "-f", "mulaw")),
    ("alaw16k8bit", "alaw16k8bit", 16, lambda s: ffmpeg(s, "-ar", "16000", "-f", "alaw")),
    ("alaw8k8bit", "alaw8k8bit", 8, lambda s: ffmpeg(s, "-ar", "8000", "-f", "alaw")),
    ("wav-pcm16k", "wav", 16, lambda s: ffmpeg(s, "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav")),
    ("wav-pcm8k", "wav", 8, lambda s: ffmpeg(s, "-ar", "8000", "-c:a", "pcm_s16le", "-f", "wav")),
    ("wav-ulaw8k", "wav", 8, lambda s: ffmpeg(s, "-ar", "8000", "-c:a", "pcm_mulaw", "-f", "wav")),
    ("wav-alaw8k", "wav", 8, lambda s: ffmpeg(s, "-ar", "8000", "-c:a", "pcm_alaw", "-f", "wav")),
    ("wav-ulaw16k", "wav", 16, lambda s: ffmpeg(s, "-ar", "16000", "-c:a", "pcm_mulaw", "-f", "wav")),
    ("amr", "amr", 8, lambda s: amr(s, False)),
    ("amrwb", "amrwb", 16, lambda s: amr(s, True)),
    ("mp3-16k", "mp3", 16, lambda s: ffmpeg(s, "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3")),
    ("mp3-8k", "mp3", 8, lambda s: ffmpeg(s, "-ar", "8000", "-c:a", "libmp3lame", "-b:a", "16k", "-f", "mp3")),
    ("aac-adts-16k", "aac", 16, lambda s: ffmpeg(s, "-ar", "16000", "-c:a", "aac", "-b:a", "48k", "-f", "adts")),
    ("aac-m4a-16k", "aac", 16, lambda s: ffmpeg(s, "-ar", "16000", "-c:a", "aac", "-b:a", "48k",
                                                 "-movflags", "frag_keyframe+empty_moov", "-f", "mp4")),
]
