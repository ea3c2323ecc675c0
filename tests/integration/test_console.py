"""The web console (/console) end to end: Debian's chromium, headless, driven
by playwright-core (tests/node/console_e2e.js) against a real sisd with
--auth sis, the test packs and the real VAD. The fake microphone plays
held-out speech once (Chromium's --use-file-for-fake-audio-capture); the
live page must show its sentences as the streaming pack recognises them.
Also: a wrong password's error, file transcription with segments and word
times, speech synthesis into a playable audio element, the vocabulary
editor, sign-out, the console's headers, and the token subprotocol of the
WebSocket upgrade as the browser uses it. Screenshots of every page go to
docs/console/ when SISD_CONSOLE_SHOTS=1."""

import json
import os
import re
import shutil
import subprocess
import time
import wave

import pytest
import requests

from conftest import ROOT, Server, cli, edit_distance, sis_store

PID = "0123456789abcdef0123456789abcdef"
PASSWORD = "correct-horse-battery"
NODE_DIR = ROOT / "tests" / "node"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# punctuation the console's requests ask for (add_punc), not in the references
PUNCT = re.compile(r"[，。？！、,.?!\s]")


@pytest.fixture(scope="module")
def site(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("console")
    env, _ = sis_store(d, PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    yield dict(server=server, root=root, rows=rows, dir=d, data=d / "data")
    server.stop()


def pcm16k(root, uid):
    with wave.open(str(root / "16k" / f"{uid}.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes())


def write_wav(path, pcm, rate=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def silence(s):
    return b"\0" * (int(16000 * s) * 2)


def speech(root, rows, lead=0.6, gap=1.5, tail=3.0):
    """The rows' held-out sentences in a row, with pauses the VAD splits at."""
    return silence(lead) + silence(gap).join(pcm16k(root, r["id"]) for r in rows) + silence(tail)


def run_console(site, tmp_path, live_rows, file_rows, shots=None):
    if not os.path.exists(CHROMIUM) or not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("Debian's chromium or playwright-core is missing: run ./scripts/setup")
    mic, file = tmp_path / "mic.wav", tmp_path / "file.wav"
    write_wav(mic, speech(site["root"], live_rows))
    write_wav(file, speech(site["root"], file_rows, lead=0.4, gap=1.0, tail=0.5))
    long = tmp_path / "long.wav"
    write_wav(long, speech(site["root"], file_rows, lead=0.4, gap=1.0, tail=0.5) + silence(60))
    cfg = {"chromium": CHROMIUM, "base": site["server"].base, "domain": "acme", "user": "alice",
           "password": PASSWORD, "project": "cn-north-4", "mic_wav": str(mic), "file_wav": str(file), "long_wav": str(long),
           "sentences": len(live_rows), "shots": str(shots) if shots else None,
           "vocabulary_name": "console_e2e", "live_timeout_ms": 60000}
    out = subprocess.run(["node", NODE_DIR / "console_e2e.js", json.dumps(cfg)], capture_output=True, text=True,
                         timeout=300, cwd=NODE_DIR)
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr
    result = json.loads(lines[-1])
    assert out.returncode == 0 and "failure" not in result, (result.get("failure"), out.stderr, result)
    return result


def sentences(site):
    return [r for r in site["rows"] if r["kind"] == "sentence"]


@pytest.fixture(scope="module")
def seen(site, tmp_path_factory):
    """One browser session through every page (the pages share the sign-in)."""
    rows = sentences(site)
    shots = None
    if os.environ.get("SISD_CONSOLE_SHOTS") == "1":
        shots = ROOT / "docs" / "console"
        shots.mkdir(parents=True, exist_ok=True)
    out = run_console(site, tmp_path_factory.mktemp("browser"), live_rows=rows[10:12], file_rows=rows[20:23],
                      shots=shots)
    return dict(out=out, live_rows=rows[10:12], file_rows=rows[20:23])


def test_console_is_served_with_a_strict_policy(site):
    base = site["server"].base
    r = requests.get(base + "/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    for path in re.findall(r'(?:src|href)="(/console/[^"]+)"', r.text):
        a = requests.get(base + path)
        assert a.status_code == 200, path
        assert a.headers["content-security-policy"] == csp
    assert requests.get(base + "/console/console.js").headers["content-type"].startswith("text/javascript")
    assert requests.get(base + "/console/console.css").headers["content-type"].startswith("text/css")
    voices = requests.get(base + "/console/voices.json").json()["voices"]
    assert any(v["property"] == "chinese_xiaoyan_common" for v in voices)
    r = requests.get(base + "/console/nothing.js")
    assert r.status_code == 404 and r.json()["error_code"] == "APIG.0101"
    # the console is public; the API behind it is not
    assert requests.get(base + f"/v1/{PID}/asr/vocabularies").status_code == 401


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_capture_worklet_makes_16k_pcm_frames(rate):
    """The live page's AudioWorklet, run in Node with the worklet globals
    stubbed (no browser): 100 ms frames of 16 kHz PCM from any input rate
    (3200 bytes, inside SIS's [320, 65536]), the last one flushed at Stop and
    at least 10 ms, a 1 kHz stereo tone kept at its level, and an 11 kHz
    tone (beyond what 16 kHz carries) filtered out instead of folding back
    into the speech band."""
    out = subprocess.run(["node", NODE_DIR / "capture_worklet_check.js",
                          ROOT / "crates/sisd/console/capture-worklet.js", str(rate)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    band = r["speech_band"]
    assert set(band["frame_bytes"]) == {3200} and 320 <= band["last_frame_bytes"] <= 3200, band
    assert abs(band["samples"] - 32800) <= 2 and band["flushed"], band
    assert 0.47 <= band["amplitude"] <= 0.53, band
    if rate > 22000:
        assert r["above_nyquist"]["peak"] < 0.02, r["above_nyquist"]


def test_wrong_password_shows_the_error(seen):
    e = seen["out"]["wrong_password"]
    assert e["code"] == "401", e
    assert "The username or password is wrong." in e["text"]
    assert seen["out"]["signed_in_as"].startswith("alice @ acme")


def test_live_transcript_matches_the_microphone(seen):
    """The finals shown equal the held-out transcripts, as test_rasr's
    continue-stream check compares them (punctuation asked for by the
    console aside); interim results were shown on the way."""
    out = seen["out"]
    refs = [r["text"] for r in seen["live_rows"]]
    shown = [PUNCT.sub("", t) for t in out["live_finals"]]
    print(f"\nlive: shown {out['live_finals']}, held-out {refs}, {out['live_interims']} interim updates")
    assert out["live_error"] is None, out
    assert shown == refs, (shown, refs)
    assert out["live_interims"] > 0
    assert out["live_status"] == "Ended"


def test_refused_live_connection_shows_the_sis_error(seen):
    e = seen["out"]["live_refused"]
    assert e["code"] == "APIG.0301" and "decrypt token fail" in e["text"], e
    assert e["status"] == "Refused"


def test_file_transcription_shows_segments_and_words(seen):
    f = seen["out"]["file"]
    refs = [r["text"] for r in seen["file_rows"]]
    print(f"\nfile: {[s['text'] for s in f['segments']]}, held-out {refs}")
    assert f["error"] is None, f
    assert len(f["segments"]) == len(refs), f["segments"]
    errors = sum(edit_distance(ref, PUNCT.sub("", s["text"])) for ref, s in zip(refs, f["segments"]))
    assert errors == 0, (refs, f["segments"])
    assert PUNCT.sub("", f["text"]) == "".join(refs)
    # word marks: one per word of the response, inside their segment, in order
    words = [w for s in f["segments"] for w in s["words"]]
    assert f["canvas_words"] == len(words) and f["canvas_segments"] == len(refs)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for s in f["segments"]:
        assert all(s["start"] <= w["start"] < w["end"] <= s["end"] for w in s["words"]), s
    # segments in order, apart, within the file (0.4 s lead, 1 s pauses)
    for a, b in zip(f["segments"], f["segments"][1:]):
        assert a["end"] < b["start"]


def test_file_over_60_s_is_transcribed_by_a_job(seen, site):
    """Over 60 s the page uploads the file as it is, runs a job and shows its
    segments (the sentences the VAD split at the pauses) with their words;
    then it deletes the upload."""
    f = seen["out"]["long_file"]
    refs = [r["text"] for r in seen["file_rows"]]
    print(f"\nlong file: {[s['text'] for s in f['segments']]}, held-out {refs}, status {f['status']!r}")
    assert f["error"] is None, f
    assert [PUNCT.sub("", s["text"]) for s in f["segments"]] == refs, f["segments"]
    words = [w for s in f["segments"] for w in s["words"]]
    assert words and f["canvas_words"] == len(words) and f["canvas_segments"] == len(refs)
    for s in f["segments"]:
        assert all(s["start"] <= w["start"] < w["end"] <= s["end"] for w in s["words"]), s
    for a, b in zip(f["segments"], f["segments"][1:]):
        assert a["end"] < b["start"]
    left = [p for p in (site["data"] / "uploads").rglob("*") if p.is_file()]
    assert left == [], left


def test_tts_gives_playable_audio(seen):
    t = seen["out"]["tts"]
    assert t["error"] is None, t
    assert t["src_is_blob"] and t["duration"] > 0.5, t
    assert seen["out"]["tts_voices"] > 10
    e = seen["out"]["tts_too_long"]
    assert e["code"].startswith("SIS."), e


def test_vocabulary_editor(seen):
    out = seen["out"]
    assert "console_e2e" in out["vocab_after_create"]
    assert out["vocab_editor"]["title"] == "Edit console_e2e"
    assert out["vocab_editor"]["contents"].split("\n") == ["华为云", "语音识别|5", "实时转写"]
    assert out["vocab_bad_word"]["code"].startswith("SIS."), out["vocab_bad_word"]
    assert "console_e2e" not in out["vocab_after_delete"]
    assert "console_e2e_b" not in out["vocab_after_delete"]


def test_sign_out_revokes_the_token(seen, site):
    token = seen["out"]["token_after_sign_out"]
    url = site["server"].base + f"/v1/{PID}/asr/vocabularies"
    deadline = time.time() + 10
    while requests.get(url, headers={"X-Auth-Token": token}).status_code != 401 and time.time() < deadline:
        time.sleep(0.2)
    r = requests.get(url, headers={"X-Auth-Token": token})
    assert r.status_code == 401 and r.json()["error_code"] == "APIG.0301"


def test_no_console_errors(seen):
    """Nothing the page did was refused by its own policy or failed in
    script: the browser logs only the refusals the test provokes (the wrong
    password, the over-long text, the word with a digit, the unknown
    token's upgrade and the REST call that tells its reason)."""
    errors = seen["out"]["console_errors"]
    # (each answer over 400 is also logged, with no address: `refused` names them)
    provoked = re.compile(r"Failed to load resource: the server responded with a status of (400 \(Bad Request\)|401 \(Unauthorized\))$")
    ws = [e for e in errors if re.match(r"WebSocket connection to 'ws://[^']+/rasr/continue-stream' failed", e)]
    assert len(ws) == 1, errors
    assert all(provoked.match(e) for e in errors if e not in ws), errors
    refused = [re.sub(r"/vocabularies/[0-9A-F-]{36}$", "/vocabularies/VID", r) for r in seen["out"]["refused"]]
    assert sorted(refused) == sorted([
        "401 POST /v3/auth/tokens", f"400 POST /v1/{PID}/tts", f"400 PUT /v1/{PID}/asr/vocabularies/VID",
        f"401 GET /v1/{PID}/asr/vocabularies"])


def test_without_authentication(server, heldout, tmp_path):
    """`sisd` without --auth sis (the conftest server): a project id instead
    of a sign-in, and the API answers the page's calls without a token."""
    root, rows = heldout
    picked = [r for r in rows if r["kind"] == "sentence"][30:31]
    file = tmp_path / "file.wav"
    write_wav(file, speech(root, picked, lead=0.4, tail=0.5))
    cfg = {"chromium": CHROMIUM, "base": server.base, "project_id": "p1", "file_wav": str(file)}
    out = subprocess.run(["node", NODE_DIR / "console_e2e.js", json.dumps(cfg)], capture_output=True, text=True,
                         timeout=300, cwd=NODE_DIR)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, (result.get("failure"), out.stderr)
    assert result["signed_in_as"] == "project p1 (no authentication)"
    assert PUNCT.sub("", result["file"]["text"]) == picked[0]["text"]
    assert result["console_errors"] == [] and result["refused"] == [], result
