"""API-level sweep (issue 11, deliverable 7): one sisd with the committed test
packs and the Silero VAD, driven over
  * short audio: every `audio_format` (raw, WAV pcm/u-law/A-law, AMR-NB/WB,
    MP3, AAC ADTS/M4A, `auto` over each container) x every served `property`
    x lengths 0..561 samples (every boundary of the 10/17/20/32/35 ms frames
    at 8 and 16 kHz) and 59.9 / 60 / 60.1 s, the options (add_punc,
    digit_norm, need_word_info yes/no/absent, auto_language_detect, the
    vad_head/vad_tail/max_seconds extremes short audio ignores) rotated;
  * RASR: every mode x every raw `audio_format` x 0 bytes (START, END),
    1 sample, 159/160/161 and 319/320/321 bytes, 300/511/512/513/700 samples,
    ~2 s of held-out speech under every combination of the vad_head (0, 1,
    60000) / vad_tail (0, 3000) / max_seconds (1, 60) / interim_results
    extremes, and 59.9 / 60.1 s of speech; END in each of its forms, with
    and without cancel; frames of fixed, SDK, odd, tiny and largest sizes;
    a mismatched property per mode and format;
  * jobs: every container (WAV, MP3, AAC ADTS, M4A, Ogg Vorbis, Ogg Opus,
    FLAC at 8 and 16 kHz mono and stereo; AMR-NB 8 kHz, AMR-WB 16 kHz), each
    whole and truncated to 0, 1, 100 bytes and half its length.
A second server with only the offline pack and the VAD runs the RASR sweep
again (its real-time path re-decodes a VAD-cut buffer) and raw short audio.

After every case the server must be alive: its process has not exited and
`GET /health` answers 200 - asserted per case, naming the case. When a case
kills it, the cases that were in flight are re-run one at a time on a
restarted server (fresh data directory) so the report names the one that did,
with the log tail; the sweep then goes on, so one run lists every failure (up
to SIS_SWEEP_MAX_DEATHS deaths per server, default 12, after which the rest of
that sweep is reported as not run). Every response must be a 200 with the
documented body or a 4xx with a SIS error_code (the documented one where the
spec names it: SIS.0301 for a rate mismatch, SIS.0032 past 60 s); every RASR
session must end with END (or an ERROR/END(ERROR) refusal of under 1 s of
audio), never EOF; every job must end FINISHED or ERROR (a whole file:
FINISHED). Cases run SIS_SWEEP_WORKERS (default 3) at a time; a report per
sweep is printed and written next to the server logs."""

import base64
import itertools
import json
import os
import random
import re
import subprocess
import tempfile
import time
import wave
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest
import requests
import websocket

from conftest import AMR_ENCODE, Server
from encode import amr
from test_jobs import Files, ffmpeg

WORKERS = int(os.environ.get("SIS_SWEEP_WORKERS", "3"))
MAX_DEATHS = int(os.environ.get("SIS_SWEEP_MAX_DEATHS", "12"))
PROJECT = "sweep-project"
PROPERTIES = ["chinese_16k_common", "chinese_16k_general", "chinese_8k_common", "chinese_8k_general"]
RATE_OF = {p: (16000 if "_16k_" in p else 8000) for p in PROPERTIES}
SIS_CODE = re.compile(r"^SIS\.\d{4}$")


# ---------------------------------------------------------------- the server


class Live:
    """A sisd checked after every case, restarted (fresh data directory, new
    log) after a death so the sweep can go on."""

    def __init__(self, name, models, root: Path, extra=()):
        self.name, self.models, self.root, self.extra = name, models, root, list(extra)
        self.generation = 0
        self.server = None
        root.mkdir(parents=True, exist_ok=True)
        self.start()

    def start(self):
        self.generation += 1
        self.log = self.root / f"sisd.{self.generation}.log"
        self.server = Server(self.models, self.root / f"data.{self.generation}", extra=self.extra, log=self.log)

    def restart(self):
        self.server.stop()
        self.start()

    @property
    def base(self):
        return self.server.base

    def dead(self) -> Optional[str]:
        """None when alive; otherwise why not."""
        p = self.server.proc
        if p.poll() is not None:
            return f"sisd exited with status {p.returncode}"
        try:
            r = requests.get(self.base + "/health", timeout=10)
        except requests.RequestException as e:
            try:
                return f"sisd exited with status {p.wait(2)}"
            except subprocess.TimeoutExpired:
                return f"GET /health failed: {e!r}"
        if r.status_code != 200:
            return f"GET /health answered {r.status_code}"
        return None

    def log_tail(self, n=30):
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self):
        self.server.stop()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def live(models_dir, sweep_dir):
    s = Live("full", [models_dir], sweep_dir / "full",
             extra=["--no-probe", "--fetch-allow", "127.0.0.1", "--job-lease-s", "5"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def live_offline(models_dir, sweep_dir):
    packs = [p for p in models_dir.iterdir() if p.is_dir() and "streaming" not in p.name]
    assert len(packs) == 2, packs
    s = Live("offline-only", packs, sweep_dir / "offline", extra=["--no-probe"])
    kinds = {p["kind"] for p in requests.get(s.base + "/health").json()["packs"]}
    assert kinds == {"offline_asr", "vad"}, kinds
    yield s
    s.stop()


# ------------------------------------------------------------ the runner


@dataclass
class Case:
    name: str
    run: Callable  # run(live) -> (tag, [problems])


@dataclass
class Result:
    tag: str = ""
    problems: list = field(default_factory=list)
    dead: Optional[str] = None
    log: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    title: str
    tags: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    deaths: int = 0
    run: int = 0
    not_run: int = 0
    seconds: float = 0.0

    def add(self, case, res):
        self.run += 1
        self.tags[res.tag] += 1
        for p in res.problems:
            self.failures.append(f"[{case.name}] {p}")

    def death(self, case_names, res, log):
        self.deaths += 1
        self.failures.append(f"[{' | '.join(case_names)}] SERVER DEATH after the case: {res.dead}\n"
                             f"    server log tail:\n" + "\n".join("      " + x for x in log.splitlines()))

    def summary(self):
        lines = [f"== sweep {self.title}: {self.run} cases in {self.seconds:.0f} s, {self.deaths} deaths, "
                 f"{len(self.failures)} failures, {self.not_run} not run"]
        for tag, n in sorted(self.tags.items()):
            lines.append(f"   {n:6d}  {tag}")
        return "\n".join(lines)

    def check(self, sweep_dir):
        text = self.summary() + "\n" + "\n".join(self.failures)
        print("\n" + text)
        (sweep_dir / f"report-{self.title}.txt").write_text(text)
        assert not self.failures, (f"{len(self.failures)} failures in sweep {self.title} "
                                   f"({self.run} cases, {self.deaths} deaths, {self.not_run} not run):\n"
                                   + "\n".join(self.failures[:60]))


def attempt(live, case) -> Result:
    t0 = time.time()
    res = Result()
    try:
        res.tag, res.problems = case.run(live)
    except Exception as e:  # a dropped connection, a timeout: the case failed
        res.tag, res.problems = f"exception {type(e).__name__}", [f"client error: {e!r}"]
    res.dead = live.dead()
    if res.dead:
        res.log = live.log_tail()
    res.seconds = time.time() - t0
    return res


def run_sweep(title, live, cases, sweep_dir, workers=WORKERS):
    """Runs `cases` `workers` at a time, checking the server after each. On a
    death, the cases in flight are re-run one by one on a restarted server to
    name the one that kills it."""
    report = Report(title)
    t0 = time.time()
    if live.dead():
        live.restart()
    i = 0
    with ThreadPoolExecutor(workers) as ex:
        inflight = {}
        while i < len(cases) or inflight:
            while i < len(cases) and len(inflight) < workers and report.deaths < MAX_DEATHS:
                inflight[ex.submit(attempt, live, cases[i])] = cases[i]
                i += 1
            if not inflight:
                break
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            results = [(inflight.pop(f), f.result()) for f in done]
            if not any(r.dead for _, r in results):
                for c, r in results:
                    report.add(c, r)
                continue
            # a death: wait for the rest, then re-run every suspect alone
            results += [(inflight[f], f.result()) for f in wait(inflight).done]
            inflight.clear()
            suspects = [c for c, _ in results]
            first = next(r for _, r in results if r.dead)
            reproduced = False
            for c in suspects:
                live.restart()
                r = attempt(live, c)
                if r.dead:
                    reproduced = True
                    report.add(c, r)
                    report.death([c.name], r, r.log)
                else:
                    report.add(c, r)
            if not reproduced:
                report.death([c.name for c in suspects] + ["(none kills it alone)"], first, first.log)
            if live.dead():
                live.restart()
    report.not_run = len(cases) - i
    if report.not_run:
        report.failures.append(f"{report.not_run} cases not run: more than {MAX_DEATHS} server deaths")
    report.seconds = time.time() - t0
    return report


# -------------------------------------------------------------- audio


def read_pcm(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getframerate(), w.readframes(w.getnframes())


@pytest.fixture(scope="module")
def speech(heldout):
    """Long real speech at 16 and 8 kHz (held-out sentences back to back,
    > 61 s), and the held-out clip closest to 2 s at both rates."""
    root, rows = heldout
    long = {}
    for sub, rate in (("16k", 16000), ("8k", 8000)):
        parts, n = [], 0
        for r in rows:
            if r["kind"] != "sentence":
                continue
            got_rate, pcm = read_pcm(root / sub / f"{r['id']}.wav")
            assert got_rate == rate
            parts.append(pcm)
            n += len(pcm)
            if n > rate * 2 * 62:
                break
        long[rate] = b"".join(parts)
    durations = {r["id"]: len(read_pcm(root / "16k" / f"{r['id']}.wav")[1]) / 32000 for r in rows[:60]}
    clip = min(durations, key=lambda k: abs(durations[k] - 2.0))
    short = {rate: read_pcm(root / sub / f"{clip}.wav")[1] for sub, rate in (("16k", 16000), ("8k", 8000))}
    return dict(long=long, short=short, clip=clip, root=root, rows=rows)


def ff_raw(pcm: bytes, rate: int, *out_args, suffix=None) -> bytes:
    """s16le mono at `rate` -> ffmpeg with `out_args`; through a file when
    `suffix` is given (a seekable output: complete headers)."""
    base = ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0", *out_args]
    if suffix is None:
        return subprocess.run([*base, "pipe:1"], input=pcm, check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / f"out{suffix}"
        subprocess.run([*base, str(out)], input=pcm, check=True, capture_output=True)
        return out.read_bytes()


def wav_pcm(pcm: bytes, rate: int) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        return p.read_bytes()


def amr_raw(pcm: bytes, wb: bool) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        i, o = Path(d) / "in.raw", Path(d) / "out.amr"
        i.write_bytes(pcm)
        subprocess.run([AMR_ENCODE, "wb" if wb else "nb", i, o], check=True, capture_output=True)
        return o.read_bytes()


def g711(pcm, rate, law):
    return b"" if not pcm else ff_raw(pcm, rate, "-f", law)


@dataclass
class Variant:
    name: str
    audio_format: str
    rate: int
    # raw: headerless, rate declared by the name; exact: a container that keeps
    # the sample count; lossy: a codec that adds priming/padding samples
    kind: str
    encode: Callable  # encode(pcm s16le at rate) -> bytes


MP3 = ["-c:a", "libmp3lame", "-b:a", "32k"]
AAC = ["-c:a", "aac", "-b:a", "48k"]
CONTAINERS = [
    ("wav-pcm16k", "wav", 16000, "exact", lambda p: wav_pcm(p, 16000)),
    ("wav-pcm8k", "wav", 8000, "exact", lambda p: wav_pcm(p, 8000)),
    ("wav-ulaw16k", "wav", 16000, "exact", lambda p: ff_raw(p, 16000, "-c:a", "pcm_mulaw", "-f", "wav", suffix=".wav")),
    ("wav-ulaw8k", "wav", 8000, "exact", lambda p: ff_raw(p, 8000, "-c:a", "pcm_mulaw", "-f", "wav", suffix=".wav")),
    ("wav-alaw16k", "wav", 16000, "exact", lambda p: ff_raw(p, 16000, "-c:a", "pcm_alaw", "-f", "wav", suffix=".wav")),
    ("wav-alaw8k", "wav", 8000, "exact", lambda p: ff_raw(p, 8000, "-c:a", "pcm_alaw", "-f", "wav", suffix=".wav")),
    ("amr", "amr", 8000, "exact", lambda p: amr_raw(p, False)),
    ("amrwb", "amrwb", 16000, "exact", lambda p: amr_raw(p, True)),
    ("mp3-16k", "mp3", 16000, "lossy", lambda p: ff_raw(p, 16000, *MP3, "-f", "mp3", suffix=".mp3")),
    ("mp3-8k", "mp3", 8000, "lossy", lambda p: ff_raw(p, 8000, *MP3[:2], "-b:a", "16k", "-f", "mp3", suffix=".mp3")),
    ("aac-adts-16k", "aac", 16000, "lossy", lambda p: ff_raw(p, 16000, *AAC, "-f", "adts", suffix=".aac")),
    ("aac-adts-8k", "aac", 8000, "lossy", lambda p: ff_raw(p, 8000, *AAC[:2], "-b:a", "24k", "-f", "adts", suffix=".aac")),
    ("aac-m4a-16k", "aac", 16000, "lossy", lambda p: ff_raw(p, 16000, *AAC, "-f", "mp4", suffix=".m4a")),
    ("aac-m4a-frag-16k", "aac", 16000, "lossy",
     lambda p: ff_raw(p, 16000, *AAC, "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", suffix=".m4a")),
]
VARIANTS = [
    Variant("pcm16k16bit", "pcm16k16bit", 16000, "raw", lambda p: p),
    Variant("pcm8k16bit", "pcm8k16bit", 8000, "raw", lambda p: p),
    Variant("ulaw16k8bit", "ulaw16k8bit", 16000, "raw", lambda p: g711(p, 16000, "mulaw")),
    Variant("ulaw8k8bit", "ulaw8k8bit", 8000, "raw", lambda p: g711(p, 8000, "mulaw")),
    Variant("alaw16k8bit", "alaw16k8bit", 16000, "raw", lambda p: g711(p, 16000, "alaw")),
    Variant("alaw8k8bit", "alaw8k8bit", 8000, "raw", lambda p: g711(p, 8000, "alaw")),
    *[Variant(*c) for c in CONTAINERS],
    # `auto`: the server detects the container
    *[Variant("auto:" + n, "auto", r, k, e) for (n, _, r, k, e) in CONTAINERS
      if n in ("wav-pcm16k", "wav-alaw8k", "amr", "amrwb", "mp3-16k", "mp3-8k", "aac-adts-16k", "aac-m4a-16k")],
    # `auto` over headerless PCM: nothing to detect; 200 or a SIS 4xx
    Variant("auto:raw-pcm16k", "auto", 16000, "undetectable", lambda p: p),
]
SMALL = [0, 1, 2, 3, 7, 16, 100, 159, 160, 161, 271, 272, 273, 319, 320, 321, 399, 400, 401, 511, 512, 513,
         559, 560, 561]
LONG_S = [59.9, 60.0, 60.1]
YES_NO = ["yes", "no", None]
EXTRAS = [{}, {"vad_head": 0, "vad_tail": 0, "max_seconds": 1}, {"vad_head": 60000, "vad_tail": 3000, "max_seconds": 60},
          {"auto_language_detect": "yes"}, {"auto_language_detect": "no", "vocabulary_id": ""}]
SA_OPTIONS = [{k: v for k, v in (("add_punc", a), ("digit_norm", d), ("need_word_info", w)) if v is not None} | x
              for a, d, w, x in itertools.product(YES_NO, YES_NO, YES_NO, EXTRAS)]


# ------------------------------------------------------ short-audio cases


def check_short_body(j, opts, dur_ms):
    problems = []
    if not isinstance(j.get("trace_id"), str) or not j["trace_id"]:
        problems.append(f"200 without a trace_id: {j}")
    res = j.get("result")
    if not isinstance(res, dict) or not isinstance(res.get("text"), str):
        return problems + [f"200 without result.text: {j}"]
    # the CTC test packs report no token probabilities (test_score.py)
    if "score" in res:
        problems.append(f"a score from a pack without probabilities: {res['score']!r}")
    if opts.get("need_word_info") == "yes":
        words = res.get("word_info")
        if not isinstance(words, list):
            problems.append(f"need_word_info=yes but no word_info list: {res}")
        else:
            for w in words:
                ok = (isinstance(w.get("word"), str) and isinstance(w.get("start_time"), int)
                      and isinstance(w.get("end_time"), int)
                      and 0 <= w["start_time"] <= w["end_time"] <= dur_ms + 1000)
                if not ok:
                    problems.append(f"bad word_info entry for {dur_ms} ms of audio: {w}")
                    break
    elif "word_info" in res:
        problems.append(f"word_info without need_word_info=yes: {res}")
    return problems


def short_audio_case(v: Variant, n: int, prop: str, opts: dict, data: bytes):
    mismatch = RATE_OF[prop] != v.rate
    dur_ms = n * 1000 // v.rate

    def run(live):
        body = {"data": base64.b64encode(data).decode(), "config": {"audio_format": v.audio_format, "property": prop, **opts}}
        r = requests.post(f"{live.base}/v1/{PROJECT}/asr/short-audio", data=json.dumps(body),
                          headers={"Content-Type": "application/json"}, timeout=120)
        problems = []
        try:
            j = r.json()
        except ValueError:
            j = None
        code = j.get("error_code") if isinstance(j, dict) else None
        tag = f"short-audio {r.status_code} {code or ''}".strip()
        if r.status_code >= 500:
            problems.append(f"HTTP {r.status_code} (never 5xx): {r.text[:300]}")
        elif r.status_code == 200:
            if not isinstance(j, dict):
                problems.append(f"200 with a body that is not JSON: {r.text[:200]!r}")
            else:
                problems += check_short_body(j, opts, dur_ms)
            if mismatch:
                problems.append(f"200 for {v.rate} Hz audio with {prop}: expected 400 SIS.0301")
            elif n > v.rate * 60 and v.kind != "undetectable":
                problems.append(f"200 for {n / v.rate:.2f} s of audio: expected 400 SIS.0032 (over 60 s)")
        elif 400 <= r.status_code < 500:
            if not isinstance(j, dict) or not isinstance(code, str) or not SIS_CODE.match(code) \
                    or not isinstance(j.get("error_msg"), str):
                problems.append(f"HTTP {r.status_code} without a SIS error_code/error_msg: {r.text[:300]}")
            elif mismatch:
                must_0301 = (v.kind == "raw" and n > 0) or (v.kind in ("exact", "lossy") and n >= 160)
                # decoded over 60 s (a lossy codec's padding can push 59.9 s over): SIS.0032 is right too
                maybe_over = n > v.rate * 60 or (v.kind == "lossy" and n > v.rate * 59.8)
                if must_0301 and code != "SIS.0301" and not (maybe_over and code == "SIS.0032"):
                    problems.append(f"{code} for {v.rate} Hz audio with {prop}: expected SIS.0301 ({j['error_msg']})")
            elif v.kind in ("raw", "exact") and 0 < n <= v.rate * 60 and n >= v.rate * 59:
                problems.append(f"{r.status_code} {code} for {n / v.rate:.2f} s of audio (within 60 s): "
                                f"expected 200 ({j['error_msg']})")
            elif n > v.rate * 60 and v.kind != "undetectable" and code != "SIS.0032":
                problems.append(f"{code} for {n / v.rate:.2f} s of audio: expected SIS.0032 ({j['error_msg']})")
        else:
            problems.append(f"unexpected HTTP {r.status_code}: {r.text[:300]}")
        return tag, problems

    shown = {k: v_ for k, v_ in opts.items()}
    return Case(f"short-audio {v.name} ({v.audio_format}) {n} samples ({dur_ms} ms, {len(data)} bytes) {prop} {shown}",
                run)


def encode_all(jobs):
    """Encodes (variant, pcm) pairs, 2 at a time (the machine has 2 cores)."""
    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(lambda a: a[0].encode(a[1]), jobs))


def short_audio_cases(speech, variants, props_for, long=True):
    """Every variant x every SMALL length (and 59.9 / 60 / 60.1 s when `long`)
    x props_for(variant, n) properties, the options rotated over the cases.
    Short cuts start 0.5 s into the speech."""
    plan = []
    for v in variants:
        src = speech["long"][v.rate]
        off = v.rate  # 0.5 s in bytes of 16-bit PCM
        lengths = SMALL + ([round(s * v.rate) for s in LONG_S] if long else [])
        for n in lengths:
            plan.append((v, n, src[off:off + 2 * n] if n < v.rate else src[:2 * n]))
    blobs = encode_all([(v, pcm) for v, n, pcm in plan])
    cases, k = [], 0
    for (v, n, _), blob in zip(plan, blobs):
        for prop in props_for(v, n):
            cases.append(short_audio_case(v, n, prop, SA_OPTIONS[k % len(SA_OPTIONS)], blob))
            k += 1
    return cases


def test_short_audio_sweep(live, speech, sweep_dir):
    cases = short_audio_cases(speech, VARIANTS, lambda v, n: PROPERTIES)
    # every format x every length, every property and option value at least once
    names = " ".join(c.name for c in cases)
    for v in VARIANTS:
        assert f"short-audio {v.name} (" in names
    for key in ("add_punc", "digit_norm", "need_word_info"):
        for val in ("yes", "no"):
            assert f"'{key}': '{val}'" in names
    report = run_sweep("short-audio", live, cases, sweep_dir)
    report.check(sweep_dir)


def test_short_audio_offline_only(live_offline, speech, sweep_dir):
    """The server without a streaming pack: raw formats x small lengths."""
    raw = [v for v in VARIANTS if v.kind == "raw"]
    cases = short_audio_cases(speech, raw, lambda v, n: [p for p in PROPERTIES if RATE_OF[p] == v.rate][n % 2:][:1],
                              long=False)
    report = run_sweep("short-audio-offline-only", live_offline, cases, sweep_dir)
    report.check(sweep_dir)


# ------------------------------------------------------------- RASR cases

RASR_FORMATS = [("pcm16k16bit", 16000, 2, None), ("pcm8k16bit", 8000, 2, None), ("ulaw16k8bit", 16000, 1, "mulaw"),
                ("ulaw8k8bit", 8000, 1, "mulaw"), ("alaw16k8bit", 16000, 1, "alaw"), ("alaw8k8bit", 8000, 1, "alaw")]
MODES = ["short-stream", "continue-stream", "sentence-stream"]
ENDS = [('{"command": "END", "cancel": "false"}', False), ('{"command":"END"}', False),
        ('{"command":"END","cancel":true}', True), ('{"command":"END","cancel":false}', False),
        ('{"command":"END","cancel":"true"}', True)]
# frame plans for the speech sessions: fixed sizes, the SDK's 4000, odd and tiny mixes, the largest allowed
FRAME_PLANS = [[3200], [4000], [1, 99, 3201, 0, 4000, 7, 320, 1601], [159, 160, 161, 319, 320, 321], ["max"]]
TERMINAL = ("END", "FATAL_ERROR")


def rasr_options(k):
    """The k-th session's options: the extremes, drawn independently with a fixed seed."""
    rng = random.Random(20261128 + k)
    cfg = {"vad_head": rng.choice([0, 1, 60000]), "vad_tail": rng.choice([0, 3000]),
           "max_seconds": rng.choice([1, 60]), "interim_results": rng.choice(["yes", "no"])}
    yn = rng.choice([None, "yes", "no"])
    if yn:
        cfg |= {"add_punc": yn, "digit_norm": "no" if yn == "yes" else "yes", "need_word_info": yn}
    return cfg, rng.choice(ENDS)


def frames_of(audio, plan, max_frame):
    out, i, k = [], 0, 0
    while i < len(audio):
        n = plan[k % len(plan)]
        n = max_frame if n == "max" else n
        out.append(audio[i:i + n])
        i += n
        k += 1
    return out


def recv_json(ws):
    m = ws.recv()
    if isinstance(m, bytes):
        raise AssertionError(f"binary message from the server: {m[:40]!r}")
    return json.loads(m)


def rasr_case(mode, fmt, rate, prop, audio, frames, cfg, end, label, exceeded=None, valid_audio_ms=1000):
    """One session on a new connection. `exceeded`: True when the audio is
    over the mode's limit (EXCEEDED_AUDIO or SIS.0309 required), False when
    it is within it (neither allowed), None: not checked."""
    end_text, cancel = end
    mismatch = RATE_OF[prop] != rate
    audio_ms = len(audio) * 1000 // ((2 if "pcm" in fmt else 1) * rate)

    def run(live):
        url = live.base.replace("http", "ws", 1) + f"/v1/{PROJECT}/rasr/{mode}"
        ws = websocket.create_connection(url, timeout=30)
        msgs, problems = [], []
        try:
            ws.send(json.dumps({"command": "START", "config": {"audio_format": fmt, "property": prop, **cfg}}))
            try:
                first = recv_json(ws)
            except (websocket.WebSocketException, OSError) as e:
                return "rasr EOF after START", [f"no reply to START ({e!r}): EOF without a SIS message"]
            if mismatch:
                ok = first.get("resp_type") == "ERROR" and first.get("error_code") == "SIS.0301" and first.get("trace_id")
                if not ok:
                    problems.append(f"START with {rate} Hz audio and {prop}: expected ERROR SIS.0301, got {first}")
                return f"rasr START-refused {first.get('error_code')}", problems
            if first.get("resp_type") != "START" or not first.get("trace_id"):
                return f"rasr START-refused {first.get('error_code')}", [f"START answered {first}"]
            try:
                for f in frames:
                    ws.send_binary(f)
                ws.send(end_text)
            except (websocket.WebSocketException, OSError) as e:
                problems.append(f"connection dropped while sending audio: {e!r}")
            msgs = [first]
            while msgs[-1].get("resp_type") not in TERMINAL:
                try:
                    msgs.append(recv_json(ws))
                except websocket.WebSocketTimeoutException:
                    problems.append(f"no END within 30 s after END; got {[m.get('resp_type') for m in msgs]}")
                    break
                except (websocket.WebSocketException, OSError) as e:
                    problems.append(f"EOF without END/FATAL_ERROR ({e!r}); got {[m.get('resp_type') for m in msgs]}")
                    break
        finally:
            try:
                ws.close(timeout=2)
            except Exception:
                pass
        last = msgs[-1] if msgs else {}
        kinds = [m.get("resp_type") for m in msgs]
        tag = f"rasr {last.get('resp_type')} {last.get('reason') or last.get('error_code') or ''}".strip()
        problems += check_rasr_messages(mode, msgs, audio_ms)
        if last.get("resp_type") == "END":
            errors = [m for m in msgs if m.get("resp_type") == "ERROR"]
            want = "CANCEL" if cancel else "NORMAL"
            if last.get("reason") == "ERROR":
                if not errors or not all(SIS_CODE.match(str(m.get("error_code"))) for m in errors):
                    problems.append(f"END(ERROR) without an ERROR carrying a SIS code: {msgs}")
                elif audio_ms >= valid_audio_ms:
                    problems.append(f"valid {audio_ms} ms session refused: {errors}")
            elif last.get("reason") != want:
                problems.append(f"END reason {last.get('reason')!r}, expected {want} ({end_text}); {kinds}")
        elif last.get("resp_type") == "FATAL_ERROR":
            problems.append(f"FATAL_ERROR for a valid session: {last}")
        over = [m for m in msgs if m.get("event") == "EXCEEDED_AUDIO" or m.get("error_code") == "SIS.0309"]
        if exceeded and not over:
            problems.append(f"{audio_ms} ms in {mode}: no EXCEEDED_AUDIO event or SIS.0309; {kinds}")
        elif exceeded is False and over:
            problems.append(f"{audio_ms} ms in {mode} (within its limit): {over}")
        return tag, problems

    return Case(f"rasr {mode} {fmt} {prop} {label} ({len(audio)} bytes in {len(frames)} frames) {cfg} {end_text}", run)


def check_rasr_messages(mode, msgs, audio_ms):
    problems = []
    limit = audio_ms + 1000
    events = Counter()
    for m in msgs:
        if not m.get("trace_id"):
            problems.append(f"message without trace_id: {m}")
        t = m.get("resp_type")
        if t == "RESULT":
            for s in m.get("segments") or [None]:
                ok = (isinstance(s, dict) and isinstance(s.get("start_time"), int) and isinstance(s.get("end_time"), int)
                      and 0 <= s["start_time"] <= s["end_time"] <= limit and isinstance(s.get("is_final"), bool)
                      and isinstance((s.get("result") or {}).get("text"), str))
                if not ok:
                    problems.append(f"bad RESULT segment for {audio_ms} ms of audio: {m}")
        elif t == "EVENT":
            ev = m.get("event")
            events[ev] += 1
            if ev not in ("VOICE_START", "VOICE_END", "EXCEEDED_SILENCE", "EXCEEDED_AUDIO"):
                problems.append(f"unknown event: {m}")
            elif ev != "EXCEEDED_AUDIO" and mode != "sentence-stream":
                problems.append(f"{ev} in {mode} (only sentence-stream emits it): {m}")
            if not isinstance(m.get("timestamp"), int) or not 0 <= m["timestamp"] <= limit:
                problems.append(f"EVENT timestamp outside the {audio_ms} ms stream: {m}")
        elif t in ("ERROR", "FATAL_ERROR"):
            if not SIS_CODE.match(str(m.get("error_code"))) or not isinstance(m.get("error_msg"), str):
                problems.append(f"{t} without a SIS error_code/error_msg: {m}")
        elif t not in ("START", "END"):
            problems.append(f"unknown resp_type: {m}")
    if events["VOICE_START"] > 1 or events["VOICE_END"] > 1:
        problems.append(f"more than one VOICE_START/VOICE_END: {dict(events)}")
    return problems


def rasr_cases(speech):
    enc, long = {}, {}
    for fmt, rate, width, law in RASR_FORMATS:
        clip, src = speech["short"][rate], speech["long"][rate][:int(60.2 * rate) * 2]
        enc[fmt] = clip if law is None else g711(clip, rate, law)
        long[fmt] = src if law is None else g711(src, rate, law)
    cases, k = [], 0
    for mode, (fmt, rate, width, law) in itertools.product(MODES, RASR_FORMATS):
        audio = enc[fmt]
        mid = audio[rate * width // 2:]  # 0.5 s in: speech
        max_frame = 32768 if rate == 8000 else 65536
        same = [p for p in PROPERTIES if RATE_OF[p] == rate]
        other = [p for p in PROPERTIES if RATE_OF[p] != rate]
        lengths = [("0 samples (START, END)", b""), ("1 sample", mid[:width])]
        lengths += [(f"{n} bytes", mid[:n]) for n in (159, 160, 161, 319, 320, 321)]
        lengths += [(f"{n} samples", mid[:n * width]) for n in (300, 511, 512, 513, 700)]
        for label, a in lengths:
            cfg, end = rasr_options(k)
            cases.append(rasr_case(mode, fmt, rate, same[k % 2], a, [a] if a else [], cfg, end, label))
            k += 1
        # real speech under every combination of the extremes; frame plan, END and the rest rotated
        for head, tail, secs, interim in itertools.product([0, 1, 60000], [0, 3000], [1, 60], ["yes", "no"]):
            cfg, end = rasr_options(k)
            cfg |= {"vad_head": head, "vad_tail": tail, "max_seconds": secs, "interim_results": interim}
            plan = FRAME_PLANS[k % len(FRAME_PLANS)]
            cases.append(rasr_case(mode, fmt, rate, same[k % 2], audio, frames_of(audio, plan, max_frame), cfg, end,
                                   f"speech {speech['clip']} ({len(audio) // width * 1000 // rate} ms, frames {plan})"))
            k += 1
        for secs in (59.9, 60.1):  # around the 60 s limit of short-stream and sentence-stream
            a = long[fmt][:int(secs * rate) * width]
            cfg, end = rasr_options(k)
            exceeded = {"short-stream": secs > 60, "continue-stream": False}.get(mode) if secs > 60 else False
            cases.append(rasr_case(mode, fmt, rate, same[k % 2], a, frames_of(a, [[4000], ["max"]][k % 2], max_frame),
                                   cfg, end, f"{secs} s of speech", exceeded=exceeded))
            k += 1
        cfg, end = rasr_options(k)
        cases.append(rasr_case(mode, fmt, rate, other[k % 2], audio, [], cfg, end, "mismatched property"))
        k += 1
    return cases


def check_rasr_coverage(cases):
    names = " ".join(c.name for c in cases)
    for m, (f, *_) in itertools.product(MODES, RASR_FORMATS):
        assert f"rasr {m} {f} " in names
    for needle in ["'vad_head': 0,", "'vad_head': 1,", "'vad_head': 60000", "'vad_tail': 0,", "'vad_tail': 3000",
                   "'max_seconds': 1,", "'max_seconds': 60", "'interim_results': 'yes'", "'interim_results': 'no'",
                   '"cancel":true']:
        assert needle in names, needle


def test_rasr_sweep(live, speech, sweep_dir):
    cases = rasr_cases(speech)
    check_rasr_coverage(cases)
    run_sweep("rasr", live, cases, sweep_dir).check(sweep_dir)


def test_rasr_sweep_offline_only(live_offline, speech, sweep_dir):
    cases = rasr_cases(speech)
    run_sweep("rasr-offline-only", live_offline, cases, sweep_dir).check(sweep_dir)


# ------------------------------------------------------------- job cases

JOB_CONTAINERS = [
    ("wav", ["-c:a", "pcm_s16le"], "wav"),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
    ("aac-adts", ["-c:a", "aac", "-b:a", "48k", "-f", "adts"], "aac"),
    ("m4a", ["-c:a", "aac", "-b:a", "48k"], "m4a"),
    ("ogg-vorbis", ["-c:a", "libvorbis", "-q:a", "4"], "ogg"),
    ("ogg-opus", ["-c:a", "libopus", "-b:a", "24k"], "opus"),
    ("flac", ["-c:a", "flac"], "flac"),
]


@pytest.fixture(scope="module")
def job_files(speech, sweep_dir):
    """Every container at 8 and 16 kHz, mono and stereo (AMR: NB 8 kHz and WB
    16 kHz, mono - the storage format has no stereo the encoders write), each
    whole and truncated to 0, 1, 100 bytes and half its length."""
    root, rows = speech["root"], speech["rows"]
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    d = sweep_dir / "files"
    d.mkdir()
    a, b = root / "16k" / f"{sent[0]['id']}.wav", root / "16k" / f"{sent[1]['id']}.wav"
    subprocess.run(["sox", a, b, d / "mono.wav", "pad", "0.3", "0.5"], check=True)
    # stereo: sentence A on the left, B on the right, later
    subprocess.run(["sox", a, d / "l.wav", "pad", "0.3", "3"], check=True)
    subprocess.run(["sox", b, d / "r.wav", "pad", "2.5", "0.8"], check=True)
    subprocess.run(["sox", "-M", d / "l.wav", d / "r.wav", d / "stereo.wav"], check=True)
    whole = []

    def make(args):
        name, codec, ext, rate, ch = args
        out = d / f"{name}-{rate // 1000}k-{'stereo' if ch == 2 else 'mono'}.{ext}"
        ffmpeg(["-i", d / ("stereo.wav" if ch == 2 else "mono.wav"), "-ar", str(rate), "-ac", str(ch), *codec], out)
        return out

    specs = [(n, c, e, rate, ch) for (n, c, e) in JOB_CONTAINERS for rate in (8000, 16000) for ch in (1, 2)]
    with ThreadPoolExecutor(2) as ex:
        whole += list(ex.map(make, specs))
    for wb in (False, True):
        out = d / ("amrwb-16k-mono.amr" if wb else "amrnb-8k-mono.amr")
        out.write_bytes(amr(d / "mono.wav", wb))
        whole.append(out)
    files = []
    for f in whole:
        data = f.read_bytes()
        files.append((f.name, "whole", 16000 if "-16k-" in f.name else 8000, "stereo" in f.name))
        for label, cut in (("0 bytes", 0), ("1 byte", 1), ("100 bytes", 100), ("half", len(data) // 2)):
            t = d / f"{f.stem}.{label.replace(' ', '')}{f.suffix}"
            t.write_bytes(data[:cut])
            files.append((t.name, label, 16000 if "-16k-" in f.name else 8000, "stereo" in f.name))
    fs = Files(d)
    yield fs, files
    fs.shutdown()


def job_case(fs, name, label, rate, stereo, k):
    prop = f"chinese_{rate // 1000}k_{'general' if k % 2 else 'common'}"
    cfg = {"audio_format": "auto", "property": prop, "add_punc": "yes" if k % 3 == 0 else "no",
           "need_word_info": "yes" if k % 2 else "no"}
    if stereo and k % 2:
        cfg["need_analysis_info"] = {"diarization": True, "channel": "LEFT_AGENT" if k % 4 == 1 else "RIGHT_AGENT"}

    def run(live):
        r = requests.post(f"{live.base}/v1/{PROJECT}/asr/transcriber/jobs",
                          json={"data_url": f"{fs.url}/{name}", "config": cfg}, timeout=30)
        if r.status_code != 200:
            return f"job create {r.status_code}", [f"job creation answered {r.status_code}: {r.text[:300]}"]
        job = r.json()["job_id"]
        deadline = time.time() + 90
        while time.time() < deadline:
            g = requests.get(f"{live.base}/v1/{PROJECT}/asr/transcriber/jobs/{job}", timeout=30)
            if g.status_code != 200:
                return f"job get {g.status_code}", [f"GET job answered {g.status_code}: {g.text[:300]}"]
            doc = g.json()
            if doc["status"] in ("FINISHED", "ERROR"):
                break
            if live.server.proc.poll() is not None:
                return "job server-dead", []
            time.sleep(0.2)
        else:
            return "job stuck", [f"job {job} still {doc['status']} after 90 s"]
        problems = []
        tag = f"job {label}: {doc['status']} {doc.get('error_code') or ''}".strip()
        if doc["status"] == "ERROR" and not SIS_CODE.match(str(doc.get("error_code"))):
            problems.append(f"ERROR without a SIS error_code: {doc}")
        if label == "whole":
            if doc["status"] != "FINISHED":
                problems.append(f"a whole, valid file ended {doc['status']}: {doc}")
            elif not doc.get("segments"):
                problems.append(f"a whole file of speech gave no segment: {doc}")
        return tag, problems

    return Case(f"job {name} ({label}, {rate} Hz, {'stereo' if stereo else 'mono'}) {cfg}", run)


def test_jobs_sweep(live, job_files, sweep_dir):
    fs, files = job_files
    cases = [job_case(fs, name, label, rate, stereo, k) for k, (name, label, rate, stereo) in enumerate(files)]
    for c in ("wav", "mp3", "aac-adts", "m4a", "ogg-vorbis", "ogg-opus", "flac"):
        for rate, ch in itertools.product((8, 16), ("mono", "stereo")):
            assert any(f"job {c}-{rate}k-{ch}." in x.name for x in cases), (c, rate, ch)
    run_sweep("jobs", live, cases, sweep_dir).check(sweep_dir)
