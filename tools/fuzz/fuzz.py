"""Fuzzes a real sisd's HTTP and WebSocket APIs with mutated real audio.

Starts target/release/sisd with the committed test packs and the Silero VAD,
encodes real speech (../shared/audio and the held-out set) into every
short-audio format, and for the given time sends mutated copies (bit flips,
interesting bytes, truncation, insertion, deletion, duplication, splices
across files and formats, rewritten length and header fields) as:

  * POST /v1/{project}/asr/short-audio, every audio_format (also `auto` and a
    declared format that does not match the bytes), every property, random
    options;
  * RASR sessions over WebSocket, every mode and raw format, random START
    options (the extremes included), random frame sizes (empty, 1 byte, odd,
    around the documented bounds, the largest allowed, over it), stray text
    frames, END with and without cancel.

After every input the server must be alive (process running, GET /health
200). A death, an HTTP 5xx, a dropped HTTP connection, a WebSocket session
that ends in EOF without END/ERROR/FATAL_ERROR (or hangs), a FATAL_ERROR with
an internal-error code, or a reply that is not a SIS message is a finding:
its input is saved under target/fuzz-findings/RUN/NNN-KIND/ (input.bin,
case.json, sisd.log.tail), the server is restarted after a death, and the run
goes on; the exit status is 1 when there was any finding.

    ./scripts/fuzz --minutes 30            # what issue 11 asks for
    ./scripts/fuzz --seconds 60 --seed 7   # scripts/test runs 60 s (seed from the clock)
    ./scripts/fuzz --replay target/fuzz-findings/RUN/003-death   # resend one finding

Responses are counted by transport, status and code and printed at the end
(also in target/fuzz-findings/RUN/summary.json when there are findings).
"""

import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
import websocket

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SISD = Path(os.environ.get("SISD_BIN", ROOT / "target" / "release" / "sisd"))
AMR_ENCODE = Path(os.environ.get("AMR_ENCODE_BIN", ROOT / "target" / "release" / "amr-encode"))
HELDOUT = Path(os.environ.get("SIS_HELDOUT_DIR", ROOT / "target" / "heldout"))
PROJECT = "fuzz-project"
PROPERTIES = ["chinese_16k_common", "chinese_16k_general", "chinese_8k_common", "chinese_8k_general"]
RATE_OF = {p: (16000 if "_16k_" in p else 8000) for p in PROPERTIES}
ALL_FORMATS = ["pcm16k16bit", "pcm8k16bit", "ulaw16k8bit", "ulaw8k8bit", "alaw16k8bit", "alaw8k8bit", "wav", "amr",
               "amrwb", "mp3", "aac", "auto"]
RAW = {"pcm16k16bit": (16000, 2), "pcm8k16bit": (8000, 2), "ulaw16k8bit": (16000, 1), "ulaw8k8bit": (8000, 1),
       "alaw16k8bit": (16000, 1), "alaw8k8bit": (8000, 1)}
MODES = ["short-stream", "continue-stream", "sentence-stream"]
# FATAL_ERROR codes that mean the server failed, not the client
INTERNAL = {"SIS.0100", "SIS.0302", "SIS.0303", "SIS.0305", "SIS.0306", "SIS.0307", "SIS.0033", "SIS.0001"}
SEED_SECONDS = 6.0  # longest source cut; keeps each input quick


# ------------------------------------------------------------------ server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sisd:
    """A real sisd on loopback with the test packs and the Silero VAD."""

    def __init__(self, work: Path):
        self.work = work
        self.models = work / "models"
        for src in [ROOT / "testdata/models/zh-tiny-ctc-offline", ROOT / "testdata/models/zh-tiny-ctc-streaming",
                    SHARED / "models/silero_vad"]:
            subprocess.run([SISD, "models", "install", "--from", src, "--models-dir", self.models],
                           check=True, capture_output=True)
        self.generation = 0
        self.proc = None
        self.start()

    def start(self):
        self.generation += 1
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.work / f"sisd.{self.generation}.log"
        data = self.work / f"data.{self.generation}"
        self.proc = subprocess.Popen(
            [SISD, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data, "--models", self.models,
             "--no-probe"], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sisd exited with {self.proc.returncode} at start:\n{self.tail()}")
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("sisd did not become healthy")

    def dead(self):
        if self.proc.poll() is not None:
            return f"sisd exited with status {self.proc.returncode}"
        try:
            r = requests.get(self.base + "/health", timeout=10)
        except requests.RequestException as e:
            try:
                return f"sisd exited with status {self.proc.wait(2)}"
            except subprocess.TimeoutExpired:
                return f"GET /health failed: {e!r}"
        return None if r.status_code == 200 else f"GET /health answered {r.status_code}"

    def tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.start()


# ------------------------------------------------------------------ corpus

def ff(args, data=None, suffix=None):
    """ffmpeg: stdin -> stdout, or to a temporary file (complete headers) when `suffix` is given."""
    base = ["ffmpeg", "-v", "error", "-y", *args]
    if suffix is None:
        return subprocess.run([*base, "pipe:1"], input=data, check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / f"out{suffix}"
        subprocess.run([*base, str(out)], input=data, check=True, capture_output=True)
        return out.read_bytes()


def raw_in(rate):
    return ["-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]


def amr_encode(pcm, wb):
    with tempfile.TemporaryDirectory() as d:
        i, o = Path(d) / "in.raw", Path(d) / "out.amr"
        i.write_bytes(pcm)
        subprocess.run([AMR_ENCODE, "wb" if wb else "nb", i, o], check=True, capture_output=True)
        return o.read_bytes()


# name -> (declared audio_format, rate, encoder(pcm s16le at rate))
VARIANTS = {
    "pcm16k16bit": ("pcm16k16bit", 16000, lambda p: p),
    "pcm8k16bit": ("pcm8k16bit", 8000, lambda p: p),
    "ulaw16k8bit": ("ulaw16k8bit", 16000, lambda p: ff([*raw_in(16000), "-f", "mulaw"], p)),
    "ulaw8k8bit": ("ulaw8k8bit", 8000, lambda p: ff([*raw_in(8000), "-f", "mulaw"], p)),
    "alaw16k8bit": ("alaw16k8bit", 16000, lambda p: ff([*raw_in(16000), "-f", "alaw"], p)),
    "alaw8k8bit": ("alaw8k8bit", 8000, lambda p: ff([*raw_in(8000), "-f", "alaw"], p)),
    "wav-pcm16k": ("wav", 16000, lambda p: ff([*raw_in(16000), "-c:a", "pcm_s16le", "-f", "wav"], p, ".wav")),
    "wav-pcm8k": ("wav", 8000, lambda p: ff([*raw_in(8000), "-c:a", "pcm_s16le", "-f", "wav"], p, ".wav")),
    "wav-ulaw8k": ("wav", 8000, lambda p: ff([*raw_in(8000), "-c:a", "pcm_mulaw", "-f", "wav"], p, ".wav")),
    "wav-alaw16k": ("wav", 16000, lambda p: ff([*raw_in(16000), "-c:a", "pcm_alaw", "-f", "wav"], p, ".wav")),
    "amr": ("amr", 8000, lambda p: amr_encode(p, False)),
    "amrwb": ("amrwb", 16000, lambda p: amr_encode(p, True)),
    "mp3-16k": ("mp3", 16000, lambda p: ff([*raw_in(16000), "-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"], p, ".mp3")),
    "mp3-8k": ("mp3", 8000, lambda p: ff([*raw_in(8000), "-c:a", "libmp3lame", "-b:a", "16k", "-f", "mp3"], p, ".mp3")),
    "aac-adts-16k": ("aac", 16000, lambda p: ff([*raw_in(16000), "-c:a", "aac", "-b:a", "48k", "-f", "adts"], p, ".aac")),
    "aac-adts-8k": ("aac", 8000, lambda p: ff([*raw_in(8000), "-c:a", "aac", "-b:a", "24k", "-f", "adts"], p, ".aac")),
    "aac-m4a-16k": ("aac", 16000, lambda p: ff([*raw_in(16000), "-c:a", "aac", "-b:a", "48k", "-f", "mp4"], p, ".m4a")),
    "aac-m4a-frag-16k": ("aac", 16000, lambda p: ff([*raw_in(16000), "-c:a", "aac", "-b:a", "48k", "-movflags",
                                                     "frag_keyframe+empty_moov", "-f", "mp4"], p, ".m4a")),
}


class Corpus:
    """Real speech cut to at most SEED_SECONDS, encoded lazily into every variant."""

    def __init__(self, rng):
        self.rng = rng
        self.sources = sorted(p for p in SHARED.glob("audio/*/*.wav"))
        manifest = HELDOUT / "manifest.tsv"
        if manifest.is_file():
            ids = [line.split("\t")[0] for line in manifest.read_text(encoding="utf-8").splitlines()[1:] if line]
            self.sources += [HELDOUT / "16k" / f"{i}.wav" for i in rng.sample(ids, min(40, len(ids)))]
        if not self.sources:
            raise SystemExit("no source audio: ../shared/audio and the held-out set are missing")
        self.pcm = {}
        self.seeds = {}  # (variant, source index) -> bytes

    def pcm_of(self, i, rate):
        if (i, rate) not in self.pcm:
            pcm = ff(["-i", str(self.sources[i]), "-ac", "1", "-ar", str(rate), "-f", "s16le"])
            r = random.Random(f"{i}:{self.sources[i].name}")
            n = len(pcm) // 2
            keep = min(n, int(SEED_SECONDS * rate))
            if r.random() < 0.2:  # some very short cuts
                keep = min(n, r.randint(1, rate // 2))
            start = r.randint(0, n - keep) if n > keep else 0
            self.pcm[(i, rate)] = pcm[2 * start:2 * (start + keep)]
        return self.pcm[(i, rate)]

    def seed(self, variant, fresh=0.15):
        """An encoded seed of `variant`: a cached one, or (with probability
        `fresh`, or when none is cached) a newly encoded source."""
        cached = [k for k in self.seeds if k[0] == variant]
        if not cached or self.rng.random() < fresh:
            i = self.rng.randrange(len(self.sources))
            key = (variant, i)
            if key not in self.seeds:
                _, rate, enc = VARIANTS[variant]
                self.seeds[key] = enc(self.pcm_of(i, rate))
            return key, self.seeds[key]
        key = self.rng.choice(cached)
        return key, self.seeds[key]


# ---------------------------------------------------------------- mutators

INTERESTING8 = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x20, 0x40]
INTERESTING32 = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE]
MARKERS = [b"RIFF", b"WAVE", b"fmt ", b"data", b"LIST", b"fact", b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia",
           b"mdhd", b"hdlr", b"minf", b"stbl", b"stsd", b"mp4a", b"esds", b"stts", b"stsc", b"stsz", b"stco", b"co64",
           b"mdat", b"moof", b"mfhd", b"traf", b"tfhd", b"tfdt", b"trun", b"mvex", b"trex", b"ID3", b"Xing", b"Info",
           b"LAME", b"#!AMR"]


def m_bitflip(rng, d, other):
    d = bytearray(d)
    for _ in range(rng.choice([1, 1, 2, 4, 8, 32])):
        if not d:
            break
        hi = min(len(d), 512) if rng.random() < 0.5 else len(d)
        i = rng.randrange(hi)
        d[i] ^= 1 << rng.randrange(8)
    return bytes(d)


def m_bytes(rng, d, other):
    d = bytearray(d)
    for _ in range(rng.choice([1, 2, 4, 16])):
        if not d:
            break
        hi = min(len(d), 256) if rng.random() < 0.5 else len(d)
        d[rng.randrange(hi)] = rng.choice(INTERESTING8) if rng.random() < 0.7 else rng.randrange(256)
    return bytes(d)


def m_truncate(rng, d, other):
    n = len(d)
    cut = rng.choice([0, 1, 2, 3, 4, 7, 8, 12, 16, 32, 44, 45, 64, 100, 159, 160, 161, 319, 320, 321, 512, 1024,
                      n // 2, n - 1, rng.randrange(n + 1)])
    return d[:max(0, min(n, cut))]


def m_drop_front(rng, d, other):
    return d[rng.choice([1, 2, 4, 6, 9, 44, rng.randrange(len(d) + 1)]):]


def m_insert(rng, d, other):
    i = rng.randrange(len(d) + 1)
    blob = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 16, 64, 333])))
    if rng.random() < 0.3:
        blob = bytes([rng.choice(INTERESTING8)]) * rng.choice([1, 100, 4096])
    return d[:i] + blob + d[i:]


def m_delete(rng, d, other):
    if not d:
        return d
    i = rng.randrange(len(d))
    return d[:i] + d[i + rng.choice([1, 2, 4, 8, 100, 1000, rng.randrange(len(d) - i + 1)]):]


def m_duplicate(rng, d, other):
    if not d:
        return d
    i = rng.randrange(len(d))
    j = min(len(d), i + rng.choice([1, 4, 32, 417, 4096]))
    return d[:j] + d[i:j] * rng.choice([1, 2, 8]) + d[j:]


def m_splice(rng, d, other):
    a = rng.randrange(len(d) + 1)
    b = rng.randrange(len(other) + 1)
    return d[:a] + other[b:]


def m_length_field(rng, d, other):
    """Rewrites a 32-bit field next to a known marker (RIFF/WAVE chunk sizes,
    MP4 box sizes, ID3/Xing fields), or at a random early offset."""
    d = bytearray(d)
    spots = [i for m in MARKERS for i in _find_all(d, m)]
    if spots and rng.random() < 0.85:
        i = rng.choice(spots) + rng.choice([-4, 4, 8, 12, 16, 20])
    else:
        i = rng.randrange(max(1, min(len(d), 128)))
    if i < 0 or i + 4 > len(d):
        return bytes(d)
    v = rng.choice(INTERESTING32 + [len(d), len(d) - 8, len(d) + 1, len(d) - 1, rng.randrange(1 << 32)])
    d[i:i + 4] = struct.pack(rng.choice(["<I", ">I"]), v & 0xFFFFFFFF)
    return bytes(d)


def m_wav_fields(rng, d, other):
    """RIFF/WAVE fmt fields (tag, channels, rate, byte rate, align, bits)."""
    i = bytes(d).find(b"fmt ")
    if i < 0 or i + 24 > len(d):
        return m_length_field(rng, d, other)
    d = bytearray(d)
    off, size = rng.choice([(8, 2), (10, 2), (12, 4), (16, 4), (20, 2), (22, 2)])
    vals = [0, 1, 2, 3, 6, 7, 8, 16, 24, 32, 8000, 16000, 44100, 65535, 0xFFFFFFFF, 0xFFFE]
    d[i + off:i + off + size] = struct.pack("<I" if size == 4 else "<H", rng.choice(vals) & (0xFFFFFFFF if size == 4 else 0xFFFF))
    return bytes(d)


def m_frame_headers(rng, d, other):
    """MP3/ADTS sync words: rewrite header bits (ADTS frame length, MPEG
    bitrate/rate index); AMR frame type bytes."""
    d = bytearray(d)
    syncs = [i for i in range(min(len(d) - 7, 20000)) if d[i] == 0xFF and d[i + 1] & 0xE0 == 0xE0]
    if not syncs:
        if d[:5] == b"#!AMR" and len(d) > 10:
            j = rng.randrange(6, len(d))
            d[j] = rng.choice([0x3C, 0x44, 0x7C, 0x04, 0xFC, 0x00, rng.randrange(256)])
        return bytes(d)
    i = rng.choice(syncs)
    j = i + rng.choice([1, 2, 3, 4, 5])
    d[j] = rng.choice(INTERESTING8) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(d)


def _find_all(d, m):
    out, i = [], bytes(d).find(m)
    while i >= 0 and len(out) < 16:
        out.append(i)
        i = bytes(d).find(m, i + 1)
    return out


MUTATORS = [m_bitflip, m_bytes, m_truncate, m_drop_front, m_insert, m_delete, m_duplicate, m_splice, m_length_field,
            m_wav_fields, m_frame_headers]


def mutate(rng, data, other):
    if rng.random() < 0.04:
        return data, ["none"]
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        m = rng.choice(MUTATORS)
        data = m(rng, data, other)
        names.append(m.__name__[2:])
    return data, names


# ------------------------------------------------------------------- cases

def yes_no(rng):
    return rng.choice(["yes", "no", None, None]) if rng.random() > 0.005 else rng.choice(["YES", "", "1"])


def http_case(rng, corpus):
    variant = rng.choice(list(VARIANTS))
    key, data = corpus.seed(variant)
    _, other = corpus.seed(rng.choice(list(VARIANTS)), fresh=0)
    data, muts = mutate(rng, data, other)
    fmt, rate, _ = VARIANTS[variant]
    r = rng.random()
    if r < 0.12:
        fmt = "auto"
    elif r < 0.2:
        fmt = rng.choice(ALL_FORMATS)
    same = [p for p in PROPERTIES if RATE_OF[p] == rate]
    prop = rng.choice(same) if rng.random() < 0.75 else rng.choice(PROPERTIES)
    cfg = {"audio_format": fmt, "property": prop}
    for k in ("add_punc", "digit_norm", "need_word_info", "auto_language_detect"):
        v = yes_no(rng)
        if v is not None:
            cfg[k] = v
    if rng.random() < 0.1:
        cfg |= {"vad_head": rng.choice([0, 1, 60000]), "vad_tail": rng.choice([0, 3000]),
                "max_seconds": rng.choice([1, 60])}
    return {"transport": "http", "variant": variant, "source": str(corpus.sources[key[1]]), "mutations": muts,
            "config": cfg}, data


def ws_case(rng, corpus):
    mode = rng.choice(MODES)
    fmt = rng.choice(list(RAW))
    if rng.random() < 0.85:
        key, data = corpus.seed(fmt)
    else:  # any file's bytes as raw audio
        key, data = corpus.seed(rng.choice(list(VARIANTS)))
    _, other = corpus.seed(rng.choice(list(RAW)), fresh=0)
    data, muts = mutate(rng, data, other)
    rate, width = RAW[fmt]
    data = data[:rate * width * 4]  # at most ~4 s
    declared = fmt if rng.random() > 0.04 else rng.choice(["mp3", "wav", "auto", "pcm16k8bit", ""])
    same = [p for p in PROPERTIES if RATE_OF[p] == rate]
    prop = rng.choice(same) if rng.random() < 0.9 else rng.choice(PROPERTIES)
    cfg = {"audio_format": declared, "property": prop}
    pick = lambda lo, hi, extra: rng.choice([lo, hi, rng.randint(lo, hi)] + extra)  # noqa: E731
    if rng.random() < 0.9:
        cfg["vad_head"] = pick(0, 60000, [1, 10000])
    if rng.random() < 0.9:
        cfg["vad_tail"] = pick(0, 3000, [1, 200, 500])
    if rng.random() < 0.9:
        cfg["max_seconds"] = pick(1, 60, [2, 30])
    if rng.random() < 0.03:
        cfg[rng.choice(["vad_head", "vad_tail", "max_seconds"])] = rng.choice([-1, 60001, 3001, 61, "x", 1.5])
    for k in ("interim_results", "add_punc", "digit_norm", "need_word_info"):
        v = yes_no(rng)
        if v is not None:
            cfg[k] = v
    lo, hi = (160, 32768) if rate == 8000 else (320, 65536)
    frames, i = [], 0
    style = rng.choice(["tiny", "odd", "bounds", "sdk", "random", "max", "mixed"])
    while i < len(data) and len(frames) < 4000:
        s = style if style != "mixed" else rng.choice(["tiny", "odd", "bounds", "sdk", "random", "max"])
        n = {"tiny": lambda: rng.choice([0, 1, 2, 3, 5, 8]),
             "odd": lambda: rng.randrange(1, 4000) | 1,
             "bounds": lambda: rng.choice([lo - 1, lo, lo + 1, 2 * lo - 1, 2 * lo + 1]),
             "sdk": lambda: rng.choice([3200, 4000]),
             "random": lambda: rng.randint(1, hi),
             "max": lambda: hi if rng.random() > 0.03 else hi + 1}[s]()
        frames.append(("bin", n))
        i += max(n, 1) if n else 0
        if n == 0 and rng.random() < 0.5:
            i += 1  # an empty frame, then go on
    if frames and rng.random() < 0.08:  # a stray text frame mid-session
        frames.insert(rng.randrange(len(frames)), ("text", rng.choice([
            '{"command":"START","config":{}}', "{not json", '{"command":"PAUSE"}', '{"command":"END","cancel":"maybe"}',
            "", "null"])))
    end = rng.choice(['{"command": "END", "cancel": "false"}', '{"command":"END"}', '{"command":"END","cancel":true}',
                      '{"command":"END","cancel":"true"}', None if rng.random() < 0.1 else '{"command":"END"}'])
    return {"transport": "ws", "mode": mode, "variant": fmt, "source": str(corpus.sources[key[1]]), "mutations": muts,
            "start": {"command": "START", "config": cfg}, "frames": frames, "end": end}, data


# ------------------------------------------------------------------ sending

def send_http(srv, case, data):
    body = {"data": base64.b64encode(data).decode(), "config": case["config"]}
    try:
        r = requests.post(f"{srv.base}/v1/{PROJECT}/asr/short-audio", data=json.dumps(body),
                          headers={"Content-Type": "application/json"}, timeout=120)
    except requests.RequestException as e:
        return "http drop", f"no HTTP response: {e!r}"
    try:
        j = r.json()
    except ValueError:
        j = None
    code = j.get("error_code") if isinstance(j, dict) else None
    tag = f"http {r.status_code} {code or ''}".strip()
    if r.status_code >= 500:
        return tag, f"HTTP {r.status_code}: {r.text[:500]}"
    if r.status_code == 200 and not (isinstance(j, dict) and isinstance((j.get("result") or {}).get("text"), str)):
        return tag, f"200 without result.text: {r.text[:500]}"
    if r.status_code != 200 and not (isinstance(code, str) and code.startswith("SIS.")):
        return tag, f"HTTP {r.status_code} without a SIS error_code: {r.text[:500]}"
    return tag, None


def send_ws(srv, case, data):
    url = srv.base.replace("http", "ws", 1) + f"/v1/{PROJECT}/rasr/{case['mode']}"
    prefix = f"ws {case['mode']}"
    try:
        ws = websocket.create_connection(url, timeout=30)
    except Exception as e:
        return f"{prefix} connect-failed", f"WebSocket connect failed: {e!r}"
    msgs = []
    try:
        def recv():
            m = ws.recv()
            if isinstance(m, bytes):
                raise ValueError(f"binary message {m[:40]!r}")
            msgs.append(json.loads(m))
            return msgs[-1]

        ws.send(json.dumps(case["start"]))
        first = recv()
        if first.get("resp_type") == "ERROR":
            return f"{prefix} START-refused {first.get('error_code')}", _check_msgs(msgs)
        if first.get("resp_type") != "START":
            return f"{prefix} {first.get('resp_type')}", f"START answered {first}"
        i = 0
        try:
            for kind, v in case["frames"]:
                if kind == "text":
                    ws.send(v)
                else:
                    ws.send_binary(data[i:i + v])
                    i += v
            if case["end"] is None:
                return f"{prefix} closed-without-END", _check_msgs(msgs)
            ws.send(case["end"])
        except (websocket.WebSocketException, OSError):
            # the server may close after FATAL_ERROR; read what it sent
            pass
        while msgs[-1].get("resp_type") not in ("END", "FATAL_ERROR"):
            try:
                recv()
            except websocket.WebSocketTimeoutException:
                return f"{prefix} stuck", f"no END within 30 s; got {[m.get('resp_type') for m in msgs]}"
            except (websocket.WebSocketException, OSError) as e:
                return f"{prefix} eof", f"EOF without END/FATAL_ERROR ({e!r}); got {[m.get('resp_type') for m in msgs]}"
        last = msgs[-1]
        tag = f"{prefix} {last['resp_type']} {last.get('reason') or last.get('error_code') or ''}".strip()
        problem = _check_msgs(msgs)
        if last["resp_type"] == "FATAL_ERROR" and last.get("error_code") in INTERNAL:
            problem = problem or f"FATAL_ERROR with an internal-error code: {last}"
        return tag, problem
    except (websocket.WebSocketException, OSError, ValueError) as e:
        return f"{prefix} eof", f"EOF or bad message without END/FATAL_ERROR ({e!r}); got {msgs[-3:]}"
    finally:
        try:
            ws.close(timeout=2)
        except Exception:
            pass


def _check_msgs(msgs):
    for m in msgs:
        if not m.get("trace_id"):
            return f"message without trace_id: {m}"
        if m.get("resp_type") in ("ERROR", "FATAL_ERROR") and not str(m.get("error_code", "")).startswith("SIS."):
            return f"{m.get('resp_type')} without a SIS error_code: {m}"
    return None


# --------------------------------------------------------------------- main

class Findings:
    def __init__(self, out: Path, limit=200):
        self.out, self.limit, self.items = out, limit, []

    def save(self, kind, case, data, detail, log_tail):
        self.items.append((kind, detail, case))
        if len(self.items) > self.limit:
            return None
        d = self.out / f"{len(self.items):03d}-{kind}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "input.bin").write_bytes(data)
        (d / "case.json").write_text(json.dumps({**case, "detail": detail}, ensure_ascii=False, indent=1))
        (d / "sisd.log.tail").write_text(log_tail)
        return d


def run_one(srv, case, data):
    return send_http(srv, case, data) if case["transport"] == "http" else send_ws(srv, case, data)


def replay(path: Path, work: Path):
    case = json.loads((path / "case.json").read_text())
    data = (path / "input.bin").read_bytes()
    srv = Sisd(work)
    try:
        tag, problem = run_one(srv, case, data)
        dead = srv.dead()
        print(f"{tag}: {problem or 'ok'}; server: {dead or 'alive'}")
        if dead:
            print(srv.tail())
        return 1 if (problem or dead) else 0
    finally:
        srv.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float)
    p.add_argument("--seconds", type=float)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    p.add_argument("--http-share", type=float, default=0.6, help="share of inputs sent as short-audio (rest: RASR)")
    p.add_argument("--out", type=Path, default=ROOT / "target" / "fuzz-findings")
    p.add_argument("--replay", type=Path, help="resend one saved finding to a fresh server")
    args = p.parse_args()
    if not SISD.is_file():
        raise SystemExit(f"{SISD} is missing: cargo build --release -p sisd -p sis-testkit")
    work = Path(tempfile.mkdtemp(prefix="sis-fuzz-"))
    try:
        if args.replay:
            return replay(args.replay, work)
        seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 1)
        seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
        rng = random.Random(seed)
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-seed{seed}"
        findings = Findings(args.out / run_id)
        print(f"fuzz: {seconds:.0f} s, seed {seed}, sisd {SISD}", flush=True)
        corpus = Corpus(rng)
        srv = Sisd(work)
        counts, by_mut = Counter(), Counter()
        by_format = defaultdict(Counter)
        n = deaths = 0
        t0 = time.time()
        last_print = t0
        try:
            while time.time() - t0 < seconds:
                case, data = (http_case if rng.random() < args.http_share else ws_case)(rng, corpus)
                n += 1
                tag, problem = run_one(srv, case, data)
                counts[tag] += 1
                by_format[f"{case['transport']} {case['variant']}"][tag.split()[-1] if tag.startswith("http")
                                                                    else tag.split(" ", 2)[-1]] += 1
                for m in case["mutations"]:
                    by_mut[m] += 1
                dead = srv.dead()
                if dead:
                    deaths += 1
                    tail = srv.tail()
                    d = findings.save("death", case, data, f"{dead}; client saw: {tag}: {problem}", tail)
                    print(f"[{n}] DEATH after {tag} ({case['transport']} {case['variant']} {case['mutations']}): "
                          f"{dead} -> {d}\n    " + "\n    ".join(tail.splitlines()[-6:]), flush=True)
                    srv.restart()
                elif problem:
                    kind = tag.split()[-1] if "eof" in tag or "stuck" in tag else tag.replace(" ", "-")
                    d = findings.save(kind.replace(".", ""), case, data, problem, srv.tail())
                    print(f"[{n}] FINDING {tag}: {problem[:300]} -> {d}", flush=True)
                if time.time() - last_print > 30:
                    last_print = time.time()
                    print(f"  {n} inputs, {deaths} deaths, {len(findings.items)} findings, "
                          f"{time.time() - t0:.0f} s", flush=True)
        finally:
            srv.stop()
        elapsed = time.time() - t0
        print(f"\nfuzz: {n} inputs in {elapsed:.0f} s (seed {seed}): {deaths} deaths, "
              f"{len(findings.items)} findings")
        for tag, c in sorted(counts.items()):
            print(f"  {c:7d}  {tag}")
        print("  by source format:")
        for k, c in sorted(by_format.items()):
            print(f"    {k:24s} " + ", ".join(f"{t} {v}" for t, v in sorted(c.items())))
        print("  mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(by_mut.items())))
        if findings.items:
            findings.out.mkdir(parents=True, exist_ok=True)
            (findings.out / "summary.json").write_text(json.dumps(
                {"seed": seed, "seconds": elapsed, "inputs": n, "deaths": deaths, "counts": counts,
                 "findings": [{"kind": k, "detail": d} for k, d, _ in findings.items]}, ensure_ascii=False, indent=1))
            print(f"findings saved under {findings.out}")
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
