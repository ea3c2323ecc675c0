"""Logs people can use (issue 13): against a real sisd on loopback with
--auth sis, a token request, short-audio requests (signed and with the
token, one refused), a real-time session (and a refused START) and a job
each leave exactly one line with their fields, the trace id the client got
among them; no secret, signature, token, password or audio reaches the log.
RUST_LOG wins over SIS_LOG, and sqlx stays quiet at debug."""

import base64
import json
import re
import shutil
import time
import wave

import pytest
import requests
import websocket

from conftest import Server, cli, sis_store
from signer import sdk_date, sign
from test_jobs import Files

PID = "00112233445566778899aabbccddeeff"
PASSWORD = "correct-horse-battery-staple"
LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(\S+): (.*)$")
FIELD = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse(text):
    """Log lines as (level, target, message, fields)."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        level, target, rest = m.groups()
        first = FIELD.search(" " + rest)
        message = (" " + rest)[:first.start()].strip() if first else rest
        fields = {k: json.loads(v) if v.startswith('"') else v for k, v in FIELD.findall(" " + rest)}
        out.append((level, target, message, fields))
    return out


def with_field(lines, key, value):
    return [l for l in lines if l[3].get(key) == value]


def wav_seconds(path):
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def logged(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("logs")
    env, cred = sis_store(d, PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    files = d / "files"
    files.mkdir()
    shutil.copy(root / "16k" / f"{sent[0]['id']}.wav", files / "a.wav")
    fs = Files(files)
    log = d / "sisd.log"
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=log,
                    env={**env, "SIS_FETCH_ALLOW": "127.0.0.1", "RUST_LOG": "", "SIS_LOG": ""})
    yield dict(server=server, cred=cred, env=env, log=log, root=root, rows=sent, fs=fs, files=files,
               key=(d / "mk").read_text().strip())
    fs.shutdown()
    server.stop()


def short_audio_body(path):
    audio = path.read_bytes()
    b64 = base64.b64encode(audio).decode()
    body = json.dumps({"config": {"audio_format": "wav", "property": "chinese_16k_common", "digit_norm": "no"},
                       "data": b64}).encode()
    return body, b64


def signed(server, cred, path, body, sk=None):
    port = server.base.rsplit(":", 1)[1]
    h = {"Content-Type": "application/json", "X-Sdk-Date": sdk_date(), "Host": f"127.0.0.1:{port}"}
    h["Authorization"] = sign(cred["access_key"], sk or cred["secret_key"], "POST", path, None, h, body)
    r = requests.post(server.base + path, data=body, headers=h, timeout=60)
    return r, h["Authorization"].rsplit("Signature=", 1)[1]


def test_one_line_per_request_session_and_job_and_no_secret(logged):
    s, cred = logged["server"], logged["cred"]
    secrets = [PASSWORD, cred["secret_key"], logged["key"]]
    expected = {}  # trace id -> (message, fields that must be there)

    # a token (IAM password sign-in)
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}}},
        "scope": {"project": {"id": PID}}}}
    r = requests.post(s.base + "/v3/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    secrets.append(token)
    expected[r.headers["X-Request-Id"]] = ("request", {"api": "tokens.issue", "status": "201", "project": PID,
                                                       "user": "acme/alice"})

    # short audio: signed, with the token, and refused (a wrong secret key)
    clip = logged["root"] / "16k" / f"{logged['rows'][0]['id']}.wav"
    sa_body, b64 = short_audio_body(clip)
    secrets += [b64, b64[len(b64) // 2:len(b64) // 2 + 48]]
    path = f"/v1/{PID}/asr/short-audio"
    r, sig = signed(s, cred, path, sa_body)
    assert r.status_code == 200, r.text
    secrets.append(sig)
    rid = r.headers["X-Request-Id"]
    assert r.json()["trace_id"] == rid, "the body's trace id is the request id"
    expected[rid] = ("request", {"api": "short-audio", "status": "200", "project": PID})
    r = requests.post(s.base + path, data=sa_body, timeout=60,
                      headers={"Content-Type": "application/json", "X-Auth-Token": token})
    assert r.status_code == 200, r.text
    expected[r.headers["X-Request-Id"]] = ("request", {"api": "short-audio", "status": "200", "project": PID})
    r, sig = signed(s, cred, path, sa_body, sk="not-the-secret-key-of-this-access-key")
    assert r.status_code == 401, r.text
    secrets.append(sig)
    expected[r.headers["X-Request-Id"]] = ("authentication refused", {
        "api": "short-audio", "status": "401", "code": "APIG.0301", "project": PID})

    # a real-time session with the token, and a START refused
    host = s.base.split("//", 1)[1]
    ws = websocket.create_connection(f"ws://{host}/v1/{PID}/rasr/short-stream",
                                     header={"X-Auth-Token": token}, timeout=30)
    cfg = {"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "digit_norm": "no"}
    ws.send(json.dumps({"command": "START", "config": {**cfg, "property": "english_16k_nothing"}}))
    refused = json.loads(ws.recv())
    assert refused["resp_type"] == "ERROR", refused
    with wave.open(str(clip)) as w:
        pcm = w.readframes(w.getnframes())
    pcm += b"\0" * (-len(pcm) % 3200)
    ws.send(json.dumps({"command": "START", "config": cfg}))
    start = json.loads(ws.recv())
    assert start["resp_type"] == "START", start
    for i in range(0, len(pcm), 3200):
        ws.send_binary(pcm[i:i + 3200])
    ws.send(json.dumps({"command": "END"}))
    msgs = []
    while not msgs or msgs[-1]["resp_type"] != "END":
        msgs.append(json.loads(ws.recv()))
    ws.close()
    finals = [g for m in msgs if m["resp_type"] == "RESULT" for g in m["segments"] if g["is_final"]]
    assert len(finals) == 1 and msgs[-1]["reason"] == "NORMAL", msgs

    # a job, created and polled with the token
    auth = {"X-Auth-Token": token}
    r = requests.post(f"{s.base}/v1/{PID}/asr/transcriber/jobs", headers=auth, timeout=30, json={
        "data_url": logged["fs"].url + "/a.wav",
        "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}})
    assert r.status_code == 200, r.text
    job = r.json()["job_id"]
    expected[r.headers["X-Request-Id"]] = ("request", {"api": "jobs.create", "status": "200", "job_id": job})
    deadline = time.time() + 60
    while True:
        r = requests.get(f"{s.base}/v1/{PID}/asr/transcriber/jobs/{job}", headers=auth, timeout=30)
        expected[r.headers["X-Request-Id"]] = ("request", {"api": "jobs.get", "status": "200", "job_id": job})
        if r.json()["status"] != "WAITING" or time.time() > deadline:
            break
        time.sleep(0.3)
    assert r.json()["status"] == "FINISHED", r.text
    assert r.json()["segments"][0]["result"]["text"] == logged["rows"][0]["text"]

    deadline = time.time() + 10
    while "job done" not in logged["log"].read_text() and time.time() < deadline:
        time.sleep(0.1)
    text = logged["log"].read_text()
    lines = parse(text)

    for rid, (message, want) in expected.items():
        got = with_field(lines, "trace_id", rid)
        assert len(got) == 1, (rid, message, got)
        level, _, msg, fields = got[0]
        assert (level, msg) == ("INFO", message), got
        for k, v in want.items():
            assert fields.get(k) == v, (k, v, fields)
        assert int(fields["latency_ms"]) >= 0
    for level, _, msg, fields in lines:
        if fields.get("api") == "short-audio" and fields.get("status") == "200":
            assert abs(float(fields["audio_s"]) - wav_seconds(clip)) < 0.02, fields
    # the refusal is logged once, as its request's line (no second error line)
    assert text.count("authentication refused") == 1

    (sess,) = with_field(lines, "trace_id", start["trace_id"])
    level, _, msg, f = sess
    assert (level, msg) == ("INFO", "real-time session"), sess
    assert (f["api"], f["mode"], f["project"], f["property"], f["end"], f["sentences"]) == \
        ("rasr", "short-stream", PID, "chinese_16k_general", "end", "1"), f
    assert abs(float(f["audio_s"]) - len(pcm) / 32000) < 0.02, f
    assert int(f["duration_ms"]) > 0 and f["request_id"]
    (ref,) = [l for l in lines if l[2] == "real-time session refused"]
    assert ref[3]["property"] == "english_16k_nothing" and ref[3]["code"] == "SIS.0032", ref
    assert ref[3]["trace_id"] == refused["trace_id"]
    # the upgrade is not an info line of its own: the session's line names it
    upgrades = with_field(lines, "trace_id", f["request_id"])
    assert all(l[0] == "DEBUG" for l in upgrades), upgrades

    (done,) = [l for l in lines if l[2] == "job done" and l[3].get("job_id") == job]
    f = done[3]
    assert (done[0], f["project"], f["status"]) == ("INFO", PID, "FINISHED"), done
    assert abs(float(f["audio_s"]) - wav_seconds(clip)) < 0.02, f
    assert int(f["latency_ms"]) >= int(f["run_ms"]) >= 0
    assert not [l for l in lines if l[3].get("job_id") == job and l[2] in ("job failed", "job accepted")]

    for secret in secrets:
        assert secret not in text, "a secret, signature, token or audio reached the log"
    for never in ["SDK-HMAC-SHA256", "Signature=", "/a.wav", "sis1."]:
        assert never not in text, never


def test_rust_log_wins_over_sis_log_and_sqlx_stays_quiet(models_dir, tmp_path):
    log = tmp_path / "debug.log"
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=log,
               env={"RUST_LOG": "debug", "SIS_LOG": "error"})
    assert s.short_audio(b"RIFF", "wav", "chinese_16k_common").status_code == 400
    time.sleep(1)  # job workers poll the store meanwhile
    s.stop()
    lines = parse(log.read_text())
    assert [l for l in lines if l[0] == "DEBUG" and l[3].get("api") == "health"], "RUST_LOG=debug ignored"
    assert [l for l in lines if l[2] == "request refused" and l[3].get("api") == "short-audio"]
    # (sqlx may still warn of a slow statement)
    assert not [l for l in lines if l[1].startswith("sqlx") and l[0] in ("TRACE", "DEBUG", "INFO")], \
        "sqlx logs every statement at debug"

    log = tmp_path / "warn.log"
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=log, env={"RUST_LOG": "", "SIS_LOG": "warn"})
    assert s.short_audio(b"RIFF", "wav", "chinese_16k_common").status_code == 400
    s.stop()
    assert not [l for l in parse(log.read_text()) if l[0] in ("INFO", "DEBUG")], "SIS_LOG is still read"
