"""The `sis` command-line client (issue 19), built from crates/sis-client,
against a real sisd with --auth sis and the Huawei SDKs' credential
variables: `transcribe` (a short file by the short-audio API in text, JSON,
SRT and WebVTT; a file over 60 s streamed through continue-stream, its SRT
cues the sentences), `stream` (interim and final lines), `tts`, `vocab`, and
every error case printing the SIS code and a sentence."""

import json
import os
import re
import subprocess
import wave

import pytest

from conftest import ROOT, Server, edit_distance, sis_store

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
               long_texts=[r["text"] for r in sent[:n]], dir=d)
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


def test_transcribe_long_file_to_srt(cli_env):
    c = cli_env
    out = c["dir"] / "long.srt"
    r = sis(c, "transcribe", c["long"], "--format", "srt", "-o", out)
    assert r.returncode == 0, r.stderr
    cues = re.findall(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n$", out.read_text(), re.M)
    texts = [t for _, _, _, t in cues]
    # one cue per sentence, in order; the streaming test pack's own errors
    # (about 1 % of characters on held-out speech) allowed
    assert len(texts) == len(c["long_texts"]), (texts, c["long_texts"])
    errors = sum(edit_distance(a, b) for a, b in zip(texts, c["long_texts"]))
    assert errors <= 0.03 * sum(len(t) for t in c["long_texts"]), (texts, c["long_texts"])
    assert [int(i) for i, _, _, _ in cues] == list(range(1, len(cues) + 1))
    times = [(a, b) for _, a, b, _ in cues]
    assert times == sorted(times) and all(a < b for a, b in times)


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
