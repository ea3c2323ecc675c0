"""Synthesis, resampling, degradation and features for the test-model recipe.

Every resampling step checks the output duration: a wrong ratio (audio played
at the wrong speed) must fail loudly here, not train a model on it.
"""

import io
import os
import subprocess
import tempfile
import wave

import kaldi_native_fbank as knf
import numpy as np
from scipy.signal import resample_poly

ESPEAK_RATE = 22050
VOICE = "cmn-Latn-pinyin"


def espeak(text, variant, speed, pitch):
    voice = VOICE if not variant else f"{VOICE}+{variant}"
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        assert w.getframerate() == ESPEAK_RATE, w.getframerate()
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        # espeak-ng writes a streaming header whose frame count may be bogus,
        # so read what is there.
        pcm = w.readframes(1 << 30)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _check_len(x, y, src, dst, name):
    want = len(x) * dst / src
    if abs(len(y) - want) > max(4, 0.002 * want):
        raise AssertionError(f"{name} {src}->{dst}: {len(x)} samples became {len(y)}, want {want:.0f}")
    return y


def resample_polyphase(x, src, dst):
    g = np.gcd(src, dst)
    return _check_len(x, resample_poly(x, dst // g, src // g).astype(np.float32), src, dst, "poly")


def resample_linear(x, src, dst):
    n = int(round(len(x) * dst / src))
    t = np.arange(n) * (src / dst)
    return _check_len(x, np.interp(t, np.arange(len(x)), x).astype(np.float32), src, dst, "linear")


def resample_sox(x, src, dst):
    pcm = (np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    fmt = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"]
    out = subprocess.run(
        ["sox", *fmt, "-r", str(src), "-", *fmt, "-r", str(dst), "-"],
        input=pcm,
        check=True,
        capture_output=True,
    ).stdout
    y = np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768.0
    return _check_len(x, y, src, dst, "sox")


TRAIN_RESAMPLERS = {"poly": resample_polyphase, "sox": resample_sox, "linear": resample_linear}


def resample_ffmpeg(x, src, dst):
    """Held-out pipeline only (libswresample); never used for training data."""
    pcm = (np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "s16le", "-ar", str(src), "-ac", "1", "-i", "-",
         "-f", "s16le", "-ar", str(dst), "-"],
        input=pcm,
        check=True,
        capture_output=True,
    ).stdout
    y = np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768.0
    return _check_len(x, y, src, dst, "ffmpeg")


def mulaw_roundtrip(x):
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * 255) / 255 * 2 - 1
    out = np.sign(q) * (np.power(1 + mu, np.abs(q)) - 1) / mu
    out[x == 0] = 0.0  # digital silence stays exact zero
    return out.astype(np.float32)


def colored_noise(rng, n, kind):
    w = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        return w
    # pink-ish: one-pole low-pass blend
    from scipy.signal import lfilter

    y = lfilter([1.0], [1.0, -0.95], w).astype(np.float32)
    return y / (np.std(y) + 1e-9)


AMR_ENCODE = os.environ.get("AMR_ENCODE", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "target", "release", "amr-encode"))


def codec_roundtrip(x, rate, codec):
    """Encode and decode with a real speech/audio codec: amr-nb (8 kHz),
    amr-wb (16 kHz, both via tools' amr-encode + ffmpeg's opencore decoder) or
    mp3 (ffmpeg/LAME). Returns float32 at `rate` with the same length."""
    pcm = (np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    with tempfile.TemporaryDirectory() as d:
        if codec in ("amr-nb", "amr-wb"):
            src, enc = os.path.join(d, "in.raw"), os.path.join(d, "out.amr")
            with open(src, "wb") as f:
                f.write(pcm)
            subprocess.run([AMR_ENCODE, "nb" if codec == "amr-nb" else "wb", src, enc], check=True)
            args = ["-i", enc]
        else:
            enc = os.path.join(d, "out.mp3")
            subprocess.run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "-",
                            "-c:a", "libmp3lame", "-b:a", "24k", enc], input=pcm, check=True)
            args = ["-i", enc]
        out = subprocess.run(["ffmpeg", "-v", "error", *args, "-f", "s16le", "-ar", str(rate), "-ac", "1", "-"],
                             check=True, capture_output=True).stdout
    y = np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768.0
    # codecs add priming delay / frame padding: align by cross-correlation-free trimming to length
    if len(y) >= len(x):
        y = y[:len(x)]
    else:
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y


def degrade(rng, speech16, eight_khz_prob=0.35, clean_prob=0.2, codec_prob=0.0):
    """speech16: float32 at 16 kHz. Returns (audio, description)."""
    peak = float(np.max(np.abs(speech16))) + 1e-9
    x = speech16 * (rng.uniform(0.05, 0.9) / peak)
    pad_l = np.zeros(int(rng.uniform(0.05, 0.6) * 16000), np.float32)
    pad_r = np.zeros(int(rng.uniform(0.05, 0.6) * 16000), np.float32)
    desc = []
    speech_rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-4] ** 2))) if np.any(np.abs(x) > 1e-4) else 1e-3
    if rng.random() < clean_prob:
        y = np.concatenate([pad_l, x, pad_r])
        desc.append("clean")
    else:
        snr = rng.uniform(15, 45)
        kind = "white" if rng.random() < 0.6 else "pink"
        if rng.random() < 0.4:
            n = colored_noise(rng, len(x), kind) * speech_rms / 10 ** (snr / 20)
            y = np.concatenate([pad_l, x + n, pad_r])
            desc.append(f"{kind}{snr:.0f}-speech")
        else:
            y = np.concatenate([pad_l, x, pad_r])
            y = y + colored_noise(rng, len(y), kind) * speech_rms / 10 ** (snr / 20)
            desc.append(f"{kind}{snr:.0f}-all")
    if rng.random() < eight_khz_prob:
        down = rng.choice(list(TRAIN_RESAMPLERS))
        up = rng.choice(list(TRAIN_RESAMPLERS))
        z = TRAIN_RESAMPLERS[down](y, 16000, 8000)
        r = rng.random()
        if r < 0.4:
            z = mulaw_roundtrip(np.clip(z, -1, 1))
            desc.append("ulaw")
        elif r < 0.4 + codec_prob:
            z = codec_roundtrip(z, 8000, "amr-nb")
            desc.append("amr-nb")
        y = TRAIN_RESAMPLERS[up](z, 8000, 16000)
        desc.append(f"8k:{down}/{up}")
    elif rng.random() < codec_prob:
        codec = rng.choice(["amr-wb", "mp3"])
        y = codec_roundtrip(y, 16000, codec)
        desc.append(codec)
    y = np.clip(y, -1, 32767 / 32768)
    # what a user sends is 16-bit PCM
    y = np.round(y * 32768) / 32768
    return y.astype(np.float32), ",".join(desc)


def fbank_options():
    """The features sherpa-onnx 2.0.1 computes for nemo_ctc models (offline and online)."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.remove_dc_offset = False
    opts.frame_opts.window_type = "hann"
    opts.frame_opts.preemph_coeff = 0.97
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 0.0
    opts.mel_opts.high_freq = 0.0
    opts.mel_opts.is_librosa = True
    return opts


def kaldi_fbank_options():
    """The features sherpa-onnx 2.0.1 computes for transducers (its default
    FeatureExtractorConfig, features.h): kaldi-native-fbank, 80 bins, povey
    window, DC removal, pre-emphasis 0.97, 20 Hz to Nyquist - 400 Hz, no
    dither, snip_edges false, samples in [-1, 1]."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = -400.0
    opts.mel_opts.is_librosa = False
    return opts


FEATURES = {"nemo": fbank_options, "kaldi": kaldi_fbank_options}


def features(x16, kind="nemo"):
    """kind: "nemo" (the CTC packs) or "kaldi" (the transducer packs)."""
    fb = knf.OnlineFbank(FEATURES[kind]())
    fb.accept_waveform(16000, x16.tolist())
    fb.input_finished()
    n = fb.num_frames_ready
    return np.stack([fb.get_frame(i) for i in range(n)]).astype(np.float32)
