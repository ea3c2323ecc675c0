"""The `sis` command-line client (issue 19), built from crates/sis-client,
against a real sisd with --auth sis and the Huawei SDKs' credential
variables: `transcribe` (a short file by the short-audio API in text, JSON,
SRT and WebVTT; a file over 60 s uploaded and transcribed by a job, or
streamed through continue-stream, its SRT cues the sentences; a 30-minute
file by a job, with progress bars on a terminal, its SRT cues the segments
of the same file's job run here without the CLI), `stream` (interim and
final lines), `tts`, `vocab`, and every error case printing the SIS code and
a sentence."""

import json
import os
import pty
import re
import subprocess
import time
import wave

import pytest
import requests

import longaudio
from conftest import ROOT, Server, edit_distance, sis_store
from signer import sdk_date, sign

SIS = ROOT / "target" / "release" / "sis"
PID = "5150c11e00000000000000000000cafe"


@pytest.fixture(scope="module")
def cli_env(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("cli")
    env, cred = sis_store(d, PID)
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"]
    clips = [root / "16k" / f"{r['id']}.wav" for r in sent]
    # over 60 s: sentences with 1 s pauses
    n = 0
    total = 0.0
    for c in clips:
        with wave.open(str(c)) as w:
            total += w.getnframes() / w.getframerate() + 1.0
        n += 1
        if total > 75:
            break
    long = d / "long.wav"
    # each clip padded with 1 s of silence, then joined
    padded = []
    for i, c in enumerate(clips[:n]):
        p = d / f"p{i}.wav"
        subprocess.run(["sox", str(c), str(p), "pad", "0", "1"], check=True)
        padded.append(str(p))
    subprocess.run(["sox", *padded, str(long), "pad", "0.5", "0"], check=True)
    e = {**{k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "SIS_"))},
         "HUAWEICLOUD_SDK_AK": cred["access_key"], "HUAWEICLOUD_SDK_SK": cred["secret_key"],
         "HUAWEICLOUD_SDK_PROJECT_ID": PID, "SIS_ENDPOINT": server.base}
    yield dict(server=server, env=e, short=clips[0], short_text=sent[0]["text"], long=long,
               long_texts=[r["text"] for r in sent[:n]], dir=d, cred=cred)
    server.stop()


def sis(c, *args, env=None, stdin=None):
    return subprocess.run([SIS, "--digit-norm", "no", *map(str, args)], env={**c["env"], **(env or {})},
                          capture_output=True,
                          text=stdin is None, input=stdin, timeout=300)


def test_transcribe_short_in_every_format(cli_env):
    c = cli_env
    r = sis(c, "transcribe", c["short"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == c["short_text"]
    r = sis(c, "transcribe", c["short"], "--format", "json")
    assert json.loads(r.stdout)["result"]["text"] == c["short_text"]
    r = sis(c, "transcribe", c["short"], "--format", "srt")
    assert re.fullmatch(r"1\n00:00:00,000 --> 00:00:0\d,\d{3}\n" + re.escape(c["short_text"]) + r"\n\n", r.stdout), r.stdout
    out = c["dir"] / "short.vtt"
    r = sis(c, "transcribe", c["short"], "--format", "vtt", "-o", out)
    assert r.returncode == 0 and out.read_text().startswith("WEBVTT\n\n00:00:00.000 --> ")


CUE = re.compile(r"^(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)\n$", re.M)


def cues_of(srt):
    """(number, start ms, end ms, text) of every SRT cue."""
    def ms(h, m, s, f):
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(f)
    return [(int(g[0]), ms(*g[1:5]), ms(*g[5:9]), g[9]) for g in CUE.findall(srt)]


@pytest.mark.parametrize("via", ["auto", "stream"])
def test_transcribe_long_file_to_srt(cli_env, via):
    """Over 60 s: by default uploaded and run as a job; --via stream
    through a continue-stream session."""
    c = cli_env
    out = c["dir"] / f"long-{via}.srt"
    r = sis(c, "transcribe", c["long"], "--via", via, "--format", "srt", "-o", out)
    assert r.returncode == 0, r.stderr
    cues = [(str(i), a, b, t) for i, a, b, t in cues_of(out.read_text())]
    texts = [t for _, _, _, t in cues]
    # one cue per sentence, in order; the streaming test pack's own errors
    # (about 1 % of characters on held-out speech) allowed
    assert len(texts) == len(c["long_texts"]), (texts, c["long_texts"])
    errors = sum(edit_distance(a, b) for a, b in zip(texts, c["long_texts"]))
    assert errors <= 0.03 * sum(len(t) for t in c["long_texts"]), (texts, c["long_texts"])
    assert [int(i) for i, _, _, _ in cues] == list(range(1, len(cues) + 1))
    times = [(a, b) for _, a, b, _ in cues]
    assert times == sorted(times) and all(a < b for a, b in times)


def signed(c, method, path, body=b"", content_type="application/json;charset=utf-8"):
    base = c["server"].base
    h = {"Content-Type": content_type, "X-Sdk-Date": sdk_date(), "Host": base.split("//", 1)[1]}
    if content_type == "application/octet-stream":
        # as the v3 SDK signs uploads (a signed body is read whole first, at most 12 MB)
        h["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    h["Authorization"] = sign(c["cred"]["access_key"], c["cred"]["secret_key"], method, path, None, h, body)
    return requests.request(method, base + path, data=body, headers=h, timeout=120)


def job_here(c, wav):
    """The file's job, run without the CLI: the document when FINISHED."""
    u = signed(c, "POST", f"/v1/{PID}/asr/transcriber/uploads", wav.read_bytes(), "application/octet-stream")
    assert u.status_code == 200, u.text
    body = {"data_url": u.json()["data_url"], "config": {
        "audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}}
    r = signed(c, "POST", f"/v1/{PID}/asr/transcriber/jobs", json.dumps(body).encode())
    assert r.status_code == 200, r.text
    deadline = time.time() + 900
    while time.time() < deadline:
        doc = signed(c, "GET", f"/v1/{PID}/asr/transcriber/jobs/{r.json()['job_id']}").json()
        if doc["status"] != "WAITING":
            return doc
        time.sleep(1)
    raise AssertionError("the job did not end in 15 minutes")


@pytest.mark.skipif(not longaudio.clips(), reason="../shared/audio missing")
def test_half_hour_file_by_a_job_with_progress(cli_env, tmp_path):
    c = cli_env
    wav = tmp_path / "half-hour.wav"
    longaudio.make(30 * 60, wav)
    out = tmp_path / "half-hour.srt"
    # on a terminal (a pty as standard error), as a person runs it: the
    # upload's bar and the job's spinner are drawn
    master, slave = pty.openpty()
    p = subprocess.Popen([SIS, "--digit-norm", "no", "transcribe", str(wav), "--format", "srt", "-o", str(out)],
                         env={**c["env"], "COLUMNS": "120"}, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0, shown[-2000:]
    shown = shown.decode(errors="replace")
    assert re.search(r"half-hour\.wav upload \[[^\]]*\] [\d.]+ \w?i?B/[\d.]+ MiB", shown), shown[-2000:]
    assert re.search(r"half-hour\.wav: job [0-9a-f]{32} WAITING", shown), shown[-2000:]
    cues = cues_of(out.read_text())
    assert len(cues) > 100, out.read_text()[:2000]
    doc = job_here(c, wav)
    assert doc["status"] == "FINISHED", doc
    segments = [(s["start_time"], s["end_time"], s["result"]["text"].strip())
                for s in doc["segments"] if s["result"]["text"].strip()]
    assert [(a, b, t) for _, a, b, t in cues] == segments
    assert [i for i, _, _, _ in cues] == list(range(1, len(cues) + 1))
    assert segments[-1][1] > 29 * 60 * 1000
    # the CLI deleted its upload; the one made here is still there
    left = list((c["dir"] / "data" / "uploads").rglob("*"))
    assert len([p for p in left if p.is_file()]) == 1, left


def test_stream_prints_interim_and_final_lines(cli_env):
    c = cli_env
    r = sis(c, "stream", c["short"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    interims = [l for l in lines if l.startswith("interim ")]
    finals = [l for l in lines if l.startswith("final ")]
    assert interims, lines
    assert len(finals) == 1 and finals[0].endswith(c["short_text"]), lines
    # from standard input: raw 16 kHz 16-bit PCM
    with wave.open(str(c["short"])) as w:
        pcm = w.readframes(w.getnframes())
    r = sis(c, "stream", "-", stdin=pcm)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[-1].endswith(c["short_text"])


def test_tts_and_vocab(cli_env):
    c = cli_env
    out = c["dir"] / "hello.wav"
    r = sis(c, "tts", "你好，世界", "-o", out)
    assert r.returncode == 0, r.stderr
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 8000
    # real-time synthesis: the pcm pieces as they come, the same audio as /tts
    whole, streamed = c["dir"] / "hello.pcm", c["dir"] / "hello-rt.pcm"
    assert sis(c, "tts", "你好。世界。", "-o", whole, "--format", "pcm").returncode == 0
    r = sis(c, "tts", "你好。世界。", "-o", streamed, "--format", "pcm", "--realtime")
    assert r.returncode == 0, r.stderr
    assert re.search(r"first audio after \d+ ms", r.stderr), r.stderr
    assert streamed.read_bytes() == whole.read_bytes() and len(whole.read_bytes()) > 16000
    r = sis(c, "tts", "你好", "-o", streamed, "--realtime")
    assert r.returncode == 1 and "pcm only" in r.stderr, r.stderr
    r = sis(c, "vocab", "create", "--name", "cli", "华为云", "语音识别")
    assert r.returncode == 0, r.stderr
    vid = json.loads(r.stdout)["vocabulary_id"]
    assert vid in sis(c, "vocab", "list").stdout
    shown = json.loads(sis(c, "vocab", "show", vid).stdout)
    assert shown["contents"] == ["华为云", "语音识别"]
    r = sis(c, "vocab", "update", vid, "--name", "cli", "华为")
    assert r.returncode == 0, r.stderr
    assert json.loads(sis(c, "vocab", "show", vid).stdout)["contents"] == ["华为"]
    assert sis(c, "vocab", "delete", vid).returncode == 0
    r = sis(c, "vocab", "show", vid)
    assert r.returncode == 1 and re.search(r"sis: SIS\.\d{4}: ", r.stderr), r.stderr


@pytest.mark.parametrize("case", ["bad-secret", "other-project", "no-server", "bad-file", "bad-property",
                                  "bad-voice", "half-credentials"])
def test_errors_print_the_code_and_a_sentence(cli_env, case):
    c = cli_env
    junk = c["dir"] / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\0" * 64)
    args, env, code = {
        "bad-secret": (["transcribe", c["short"]], {"HUAWEICLOUD_SDK_SK": "x" * 40}, "APIG.0301"),
        "other-project": (["transcribe", c["short"]], {"HUAWEICLOUD_SDK_PROJECT_ID": "f" * 32}, "APIG.0302"),
        "no-server": (["transcribe", c["short"]], {"SIS_ENDPOINT": "http://127.0.0.1:9"}, None),
        "bad-file": (["transcribe", junk], {}, None),
        "bad-property": (["transcribe", c["short"], "--property", "klingon_16k_general"], {}, "SIS."),
        "bad-voice": (["tts", "你好", "-o", c["dir"] / "x.wav", "--voice", "nobody"], {}, "SIS."),
        "half-credentials": (["transcribe", c["short"]], {"HUAWEICLOUD_SDK_SK": ""}, None),
    }[case]
    if case == "half-credentials":
        env = {}
        e = {k: v for k, v in c["env"].items() if k != "HUAWEICLOUD_SDK_SK"}
        r = subprocess.run([SIS, *map(str, args)], env=e, capture_output=True, text=True, timeout=60)
    else:
        r = sis(c, *args, env=env)
    assert r.returncode == 1, (r.stdout, r.stderr)
    first, *rest = r.stderr.strip().splitlines()
    assert first.startswith("sis: "), r.stderr
    if code:
        assert first.startswith(f"sis: {code}"), r.stderr
        assert rest and rest[0].endswith("."), r.stderr  # the sentence for a person
    if case == "no-server":
        assert "cannot reach http://127.0.0.1:9" in first and "Is sisd running" in r.stderr
    if case == "bad-file":
        assert "junk.wav" in first
    assert c["server"].proc.poll() is None


def test_the_load_generator_signs_with_the_client_library(cli_env):
    """rasr-load (crates/sis-testkit) signs each stream's upgrade through
    sis-client when given --ak/--sk: against --auth sis every stream is
    served; without credentials every one is refused."""
    c = cli_env
    load = ROOT / "target" / "release" / "rasr-load"
    url = c["server"].base.replace("http://", "ws://") + f"/v1/{PID}/rasr/continue-stream"
    args = [load, "--proto", "sis", "--url", url, "-n", "4", "--duration", "2", "--stagger-ms", "200", c["short"]]
    env = {k: v for k, v in c["env"].items() if not k.startswith("HUAWEICLOUD_SDK_")}
    r = subprocess.run([*map(str, args), "--ak", c["cred"]["access_key"], "--sk", c["cred"]["secret_key"]],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["ok"], out["failures"]) == (4, 0), out
    r = subprocess.run([*map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["ok"], out["failures"]) == (0, 4), out
