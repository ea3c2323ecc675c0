"""Uploads for jobs (issue 19; a sisd extension): POST
/v1/{project_id}/asr/transcriber/uploads stores the body, and a job of the
same project names it as data_url "upload://ID". Against a real sisd with
--auth sis and signed requests: an uploaded held-out file is transcribed; a
job of another project, an unknown, malformed or deleted upload is refused
at creation; an empty body, one past --fetch-max-mb and a slow body are
refused with the SIS error and leave nothing behind; unauthenticated
uploads store nothing; a project may hold MAX uploads at once."""

import json
import socket
import time

import pytest
import requests

from conftest import Server, sis_store
from signer import sdk_date, sign

PID_A = "a0a0a0a0000000000000000000000001"
PID_B = "b0b0b0b0000000000000000000000002"
MAX = 100


@pytest.fixture(scope="module")
def world(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("uploads")
    env, cred_a = sis_store(d, PID_A)
    from conftest import cli
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-north-5", "--id", PID_B)
    cred_b = cli(env, "credentials", "create", "--project", PID_B)[0]
    server = Server([models_dir], d / "data",
                    extra=["--auth", "sis", "--no-probe", "--fetch-max-mb", "1", "--body-stall-s", "2"],
                    log=d / "sisd.log", env=env)
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:1]
    yield dict(server=server, creds={PID_A: cred_a, PID_B: cred_b}, data=d / "data",
               wav=(root / "16k" / f"{sent[0]['id']}.wav").read_bytes(), text=sent[0]["text"])
    server.stop()


def signed(w, method, path, body=b"", project=PID_A, content_type="application/json;charset=utf-8"):
    c = w["creds"][project]
    base = w["server"].base
    h = {"Content-Type": content_type, "X-Sdk-Date": sdk_date(), "Host": base.split("//", 1)[1]}
    h["Authorization"] = sign(c["access_key"], c["secret_key"], method, path, None, h, body)
    return requests.request(method, base + path, data=body, headers=h, timeout=60)


def upload(w, data, project=PID_A):
    return signed(w, "POST", f"/v1/{project}/asr/transcriber/uploads", data, project,
                  "application/octet-stream")


def job(w, data_url, project=PID_A):
    body = json.dumps({"data_url": data_url, "config": {"audio_format": "auto", "property": "chinese_16k_general",
                                                         "digit_norm": "no"}}).encode()
    return signed(w, "POST", f"/v1/{project}/asr/transcriber/jobs", body, project)


def wait(w, job_id, project=PID_A, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = signed(w, "GET", f"/v1/{project}/asr/transcriber/jobs/{job_id}", project=project).json()
        if r["status"] != "WAITING" or time.time() > deadline:
            return r
        time.sleep(0.2)


def stored(w):
    d = w["data"] / "uploads" / "uploads"
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def delete(w, upload_id, project=PID_A):
    return signed(w, "DELETE", f"/v1/{project}/asr/transcriber/uploads/{upload_id}", project=project)


def test_an_upload_is_transcribed_by_a_job(world):
    w = world
    r = upload(w, w["wav"])
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["data_url"] == f"upload://{u['upload_id']}" and u["size"] == len(w["wav"])
    assert u["expire_time"].endswith("Z")
    assert u["upload_id"] in stored(w)
    r = job(w, u["data_url"])
    assert r.status_code == 200, r.text
    doc = wait(w, r.json()["job_id"])
    assert doc["status"] == "FINISHED", doc
    assert [s["result"]["text"] for s in doc["segments"]] == [w["text"]]
    # a second job may use the same upload; deleting it ends that
    doc = wait(w, job(w, u["data_url"]).json()["job_id"])
    assert doc["status"] == "FINISHED", doc
    assert delete(w, u["upload_id"]).status_code == 200
    assert u["upload_id"] not in stored(w)
    r = job(w, u["data_url"])
    assert (r.status_code, r.json()["error_code"]) == (400, "SIS.0032"), r.text
    assert "is not found" in r.json()["error_msg"]
    r = delete(w, u["upload_id"])
    assert (r.status_code, r.json()["error_code"]) == (400, "SIS.0032"), r.text


def test_another_projects_or_malformed_uploads_are_refused(world):
    w = world
    u = upload(w, w["wav"]).json()
    for url, project in [(u["data_url"], PID_B), ("upload://" + "0" * 32, PID_A), ("upload://../../x", PID_A),
                         ("upload://" + u["upload_id"].upper(), PID_A), ("upload://", PID_A)]:
        r = job(w, url, project)
        assert (r.status_code, r.json()["error_code"]) == (400, "SIS.0032"), (url, r.text)
    # nor can the other project delete it
    r = delete(w, u["upload_id"], PID_B)
    assert r.status_code == 400, r.text
    assert u["upload_id"] in stored(w)
    assert delete(w, u["upload_id"]).status_code == 200


def test_bad_bodies_leave_nothing(world):
    w = world
    before = stored(w)
    r = upload(w, b"")
    assert (r.status_code, r.json()["error_code"]) == (400, "SIS.0032"), r.text
    r = upload(w, b"\0" * (1024 * 1024 + 1))
    assert (r.status_code, r.json()["error_code"]) == (413, "APIG.0201"), r.text
    # unauthenticated, and a signature of another body
    base = w["server"].base
    r = requests.post(f"{base}/v1/{PID_A}/asr/transcriber/uploads", data=w["wav"], timeout=30)
    assert r.status_code == 401, r.text
    c = w["creds"][PID_A]
    h = {"Content-Type": "application/octet-stream", "X-Sdk-Date": sdk_date(), "Host": base.split("//", 1)[1]}
    h["Authorization"] = sign(c["access_key"], c["secret_key"], "POST", f"/v1/{PID_A}/asr/transcriber/uploads",
                              None, h, b"other")
    r = requests.post(f"{base}/v1/{PID_A}/asr/transcriber/uploads", data=w["wav"], headers=h, timeout=30)
    assert r.status_code == 401, r.text
    # a body that stops half-way (--body-stall-s 2): 408, nothing kept
    body = b"\0" * 4096
    h = {"Content-Type": "application/octet-stream", "X-Sdk-Date": sdk_date(), "Host": base.split("//", 1)[1]}
    # signed with X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD, as the v3 SDK signs uploads
    h["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    s = socket.create_connection(("127.0.0.1", w["server"].port))
    path = f"/v1/{PID_A}/asr/transcriber/uploads"
    h["Authorization"] = sign(c["access_key"], c["secret_key"], "POST", path, None, h)
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    s.sendall(f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body) * 2}\r\n\r\n".encode() + body)
    s.settimeout(15)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert stored(w) == before
    assert w["server"].proc.poll() is None
    assert upload(w, w["wav"]).status_code == 200


def test_a_project_holds_at_most_max_uploads(world):
    w = world
    ids = []
    for _ in range(MAX + 5):
        r = upload(w, b"RIFF", PID_B)
        if r.status_code != 200:
            break
        ids.append(r.json()["upload_id"])
    assert len(ids) == MAX, len(ids)
    assert (r.status_code, r.json()["error_code"]) == (400, "SIS.0032"), r.text
    assert "too many uploads" in r.json()["error_msg"]
    # the other project is not affected; deleting one makes room
    assert upload(w, b"RIFF", PID_A).status_code == 200
    assert delete(w, ids[0], PID_B).status_code == 200
    assert upload(w, b"RIFF", PID_B).status_code == 200


def test_uploads_past_the_retention_are_purged(models_dir, tmp_path):
    """The retention purge (at start, then every minute) deletes uploads
    older than --job-retention-h; younger ones stay."""
    data = tmp_path / "data"
    s = Server([models_dir], data, extra=["--no-probe"], log=tmp_path / "a.log")
    try:
        old = requests.post(f"{s.base}/v1/p/asr/transcriber/uploads", data=b"RIFF....", timeout=30).json()
    finally:
        s.stop()
    time.sleep(4)
    # 0.001 h = 3.6 s: the first upload is past it when the server starts
    s = Server([models_dir], data, extra=["--no-probe", "--job-retention-h", "0.001"], log=tmp_path / "b.log")
    try:
        young = requests.post(f"{s.base}/v1/p/asr/transcriber/uploads", data=b"RIFF....", timeout=30).json()
        deadline = time.time() + 10
        while time.time() < deadline and (data / "uploads" / "uploads" / "p" / old["upload_id"]).exists():
            time.sleep(0.2)
        left = sorted(p.name for p in (data / "uploads" / "uploads" / "p").iterdir())
        assert left == [young["upload_id"]], left
        r = requests.post(f"{s.base}/v1/p/asr/transcriber/jobs", timeout=30, json={
            "data_url": old["data_url"], "config": {"audio_format": "auto", "property": "chinese_16k_general"}})
        assert r.status_code == 400 and "is not found" in r.json()["error_msg"], r.text
    finally:
        s.stop()


def test_a_relative_data_dir_holds_the_uploads(models_dir, tmp_path):
    """--data-dir relative to the working directory (./scripts/serve gives
    `sisd-data`): the server starts and uploads land under it."""
    from conftest import SISD, free_port
    import subprocess
    port = free_port()
    log = open(tmp_path / "sisd.log", "w")
    p = subprocess.Popen([SISD, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", "rel-data", "--models",
                          models_dir, "--no-probe"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 30
        while True:
            assert p.poll() is None, (tmp_path / "sisd.log").read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline
            time.sleep(0.2)
        u = requests.post(f"http://127.0.0.1:{port}/v1/p/asr/transcriber/uploads", data=b"RIFF", timeout=10).json()
        assert (tmp_path / "rel-data" / "uploads" / "uploads" / "p" / u["upload_id"]).is_file()
    finally:
        p.terminate()
        p.wait(10)


def test_tiny_and_8k_uploads(world, heldout):
    """A one-sample upload's job ends in ERROR with the audio's reason (the
    next upload is served); an 8 kHz WAV is recognised like its 16 kHz twin."""
    w = world
    r = job(w, upload(w, b"\0").json()["data_url"])
    assert r.status_code == 200, r.text
    doc = wait(w, r.json()["job_id"])
    assert doc["status"] == "ERROR" and doc["error_code"].startswith("SIS."), doc
    root, rows = heldout
    sent = [x for x in rows if x["kind"] == "sentence"][0]
    wav8 = (root / "8k" / f"{sent['id']}.wav").read_bytes()
    doc = wait(w, job(w, upload(w, wav8).json()["data_url"]).json()["job_id"])
    assert doc["status"] == "FINISHED", doc
    assert [s["result"]["text"] for s in doc["segments"]] == [w["text"]]


def test_sigterm_during_an_upload(models_dir, tmp_path):
    """SIGTERM while an upload's body is arriving: the server stops (the
    stalled body ends with --body-stall-s), keeps no partial upload or
    spooled file, and a restarted server serves uploads."""
    data = tmp_path / "data"
    s = Server([models_dir], data, extra=["--no-probe", "--body-stall-s", "2"], log=tmp_path / "a.log")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /v1/p/asr/transcriber/uploads HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n" + b"\0" * 65536)
    time.sleep(0.5)
    s.proc.terminate()
    assert s.proc.wait(30) == 0
    sock.close()
    assert not (data / "uploads").exists() or [p for p in (data / "uploads").rglob("*") if p.is_file()] == []
    assert [p.name for p in (data / "jobs").glob("upload-*")] == []
    s = Server([models_dir], data, extra=["--no-probe"], log=tmp_path / "b.log")
    try:
        assert requests.post(f"{s.base}/v1/p/asr/transcriber/uploads", data=b"RIFF", timeout=10).status_code == 200
    finally:
        s.stop()
