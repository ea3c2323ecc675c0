"""Operations (issue 18): `/metrics` scraped from a real sisd on loopback
with --auth sis, every metric present and moving when its cause happens (a
short-audio request, a real-time session, a job, refused authentications);
`/metrics` on its own listener; `/ready` and `/health`; JSON logs carrying
the request's trace id and no secret."""

import base64
import json
import re
import shutil
import time
import wave

import pytest
import requests
import websocket

from conftest import Server, free_port, sis_store
from signer import sdk_date, sign
from test_jobs import Files

PID = "00112233445566778899aabbccddee01"
SAMPLE = re.compile(r'^([a-z_:]+)(\{[^}]*\})? (\S+)$')


def scrape(base):
    """{(name, frozenset(labels)): value} of one /metrics scrape."""
    r = requests.get(base + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """Sum over the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= set(l))


@pytest.fixture(scope="module")
def node(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("metrics")
    env, cred = sis_store(d, PID)
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    files = d / "files"
    files.mkdir()
    shutil.copy(root / "16k" / f"{sent[0]['id']}.wav", files / "a.wav")
    fs = Files(files)
    log = d / "sisd.log"
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe", "--log-format", "json"],
                    log=log, env={**env, "SIS_FETCH_ALLOW": "127.0.0.1", "RUST_LOG": "", "SIS_LOG": ""})
    yield dict(server=server, cred=cred, env=env, log=log, clip=root / "16k" / f"{sent[0]['id']}.wav",
               fs=fs, key=(d / "mk").read_text().strip())
    fs.shutdown()
    server.stop()


def headers(server, cred, method, path, body=b"", sk=None):
    port = server.base.rsplit(":", 1)[1]
    h = {"Content-Type": "application/json", "X-Sdk-Date": sdk_date(), "Host": f"127.0.0.1:{port}"}
    h["Authorization"] = sign(cred["access_key"], sk or cred["secret_key"], method, path, None, h, body)
    return h


def test_every_metric_moves_with_its_cause(node):
    s, cred = node["server"], node["cred"]
    before = scrape(s.base)
    # gauges known from the start
    assert value(before, "sis_model_packs_loaded", kind="offline_asr") >= 1
    assert value(before, "sis_model_packs_loaded", kind="streaming_asr") >= 1
    assert value(before, "sis_model_packs_loaded", kind="vad") == 1
    assert value(before, "sis_engine_workers_up") >= 1

    # short audio, signed: a request, a decode call, a queue wait, a real-time factor
    path = f"/v1/{PID}/asr/short-audio"
    body = json.dumps({"config": {"audio_format": "wav", "property": "chinese_16k_common"},
                       "data": base64.b64encode(node["clip"].read_bytes()).decode()}).encode()
    r = requests.post(s.base + path, data=body, headers=headers(s, cred, "POST", path, body), timeout=60)
    assert r.status_code == 200, r.text
    # refused authentications, by cause
    r = requests.post(s.base + path, data=body, timeout=30,
                      headers=headers(s, cred, "POST", path, body, sk="wrong-secret-key"))
    assert r.status_code == 401
    r = requests.post(s.base + path, data=body, timeout=30)
    assert r.status_code == 401
    r = requests.post(s.base + path, data=body, timeout=30, headers={"X-Auth-Token": "nonsense"})
    assert r.status_code == 401

    # a vocabulary and a synthesis: counted like every API
    vpath = f"/v1/{PID}/asr/vocabularies"
    vbody = json.dumps({"name": "metrics", "language": "chinese_mandarin", "contents": ["华为"]}).encode()
    r = requests.post(s.base + vpath, data=vbody, headers=headers(s, cred, "POST", vpath, vbody), timeout=30)
    assert r.status_code == 200, r.text
    tpath = f"/v1/{PID}/tts"
    tbody = json.dumps({"text": "你好"}).encode()
    r = requests.post(s.base + tpath, data=tbody, headers=headers(s, cred, "POST", tpath, tbody), timeout=60)
    assert r.status_code == 200, r.text

    # a real-time session, scraped while it is open
    host = s.base.split("//", 1)[1]
    url = f"/v1/{PID}/rasr/short-stream"
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(cred["access_key"], cred["secret_key"], "GET", url, None, h, b"")
    del h["host"]  # websocket-client sends its own
    ws = websocket.create_connection(f"ws://{host}{url}", header=h, timeout=30)
    with wave.open(str(node["clip"])) as w:
        pcm = w.readframes(w.getnframes())
    ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                       "property": "chinese_16k_general"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    during = scrape(s.base)
    assert value(during, "sis_rasr_sessions_open", mode="short-stream") == \
        value(before, "sis_rasr_sessions_open", mode="short-stream") + 1
    for i in range(0, len(pcm), 3200):
        ws.send_binary(pcm[i:i + 3200])
        time.sleep(0.01)
    ws.send(json.dumps({"command": "END"}))
    msgs = []
    while not msgs or msgs[-1]["resp_type"] != "END":
        msgs.append(json.loads(ws.recv()))
    ws.close()

    # a job, to its end
    jpath = f"/v1/{PID}/asr/transcriber/jobs"
    jbody = json.dumps({"data_url": node["fs"].url + "/a.wav",
                        "config": {"audio_format": "auto", "property": "chinese_16k_general"}}).encode()
    r = requests.post(s.base + jpath, data=jbody, headers=headers(s, cred, "POST", jpath, jbody), timeout=30)
    assert r.status_code == 200, r.text
    job = r.json()["job_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        g = f"{jpath}/{job}"
        st = requests.get(s.base + g, headers=headers(s, cred, "GET", g), timeout=30).json()["status"]
        if st not in ("WAITING", "RUNNING"):
            break
        time.sleep(0.2)
    assert st == "FINISHED"

    time.sleep(1.2)  # the engine's observations reach the server every 0.5-1 s
    after = scrape(s.base)

    def moved(name, **labels):
        a, b = value(after, name, **labels), value(before, name, **labels)
        assert a > b, f"{name} {labels}: {b} -> {a}"

    moved("sis_requests_total", api="short-audio", code="none", status="200")
    moved("sis_requests_total", api="short-audio", code="APIG.0301", status="401")
    moved("sis_requests_total", api="rasr", status="101")
    moved("sis_requests_total", api="jobs.create", status="200")
    moved("sis_requests_total", api="vocabularies.create", status="200")
    moved("sis_requests_total", api="tts", status="200")
    moved("sis_request_duration_seconds_count", api="short-audio")
    moved("sis_request_duration_seconds_bucket", api="short-audio", le="+Inf")
    moved("sis_auth_failures_total", cause="signature")
    moved("sis_auth_failures_total", cause="no_credentials")
    moved("sis_auth_failures_total", cause="token")
    moved("sis_rasr_sessions_total", mode="short-stream")
    assert value(after, "sis_rasr_sessions_open", mode="short-stream") == \
        value(before, "sis_rasr_sessions_open", mode="short-stream")
    moved("sis_rasr_first_result_seconds_count")
    moved("sis_rasr_final_result_seconds_count")
    moved("sis_decode_batch_size_count", path="utterance")
    moved("sis_decode_batch_size_count", path="stream")
    moved("sis_decode_queue_wait_seconds_count")
    moved("sis_decode_real_time_factor_count")
    moved("sis_jobs", state="FINISHED")
    # a real-time factor is a computed ratio, not a constant
    rtf_sum = value(after, "sis_decode_real_time_factor_sum")
    rtf_n = value(after, "sis_decode_real_time_factor_count")
    assert 0 < rtf_sum / rtf_n < 5
    assert value(after, "sis_jobs_oldest_waiting_seconds") == 0


def test_ready_and_health(node):
    s = node["server"]
    r = requests.get(s.base + "/ready", timeout=10)
    assert r.status_code == 200 and r.json() == {"ready": True, "reasons": []}, r.text
    assert requests.get(s.base + "/health", timeout=10).status_code == 200


def test_json_logs_carry_the_trace_id_and_no_secret(node):
    s, cred = node["server"], node["cred"]
    path = f"/v1/{PID}/asr/short-audio"
    body = json.dumps({"config": {"audio_format": "wav", "property": "chinese_16k_common"},
                       "data": base64.b64encode(node["clip"].read_bytes()).decode()}).encode()
    r = requests.post(s.base + path, data=body, headers=headers(s, cred, "POST", path, body), timeout=60)
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    time.sleep(0.3)
    text = node["log"].read_text()
    lines = [json.loads(l) for l in text.splitlines() if l.strip()]  # every line is JSON
    mine = [l for l in lines if l.get("fields", {}).get("trace_id") == rid]
    assert len(mine) == 1, mine
    assert mine[0]["fields"]["api"] == "short-audio" and mine[0]["fields"]["status"] == 200
    for secret in (cred["secret_key"], node["key"], base64.b64encode(node["clip"].read_bytes()).decode()[:64]):
        assert secret not in text


def test_metrics_on_their_own_listener(models_dir, tmp_path):
    port = free_port()
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--metrics-listen", f"127.0.0.1:{port}"])
    try:
        assert requests.get(s.base + "/metrics", timeout=10).status_code == 404
        samples = scrape(f"http://127.0.0.1:{port}")
        assert value(samples, "sis_model_packs_loaded", kind="offline_asr") >= 1
    finally:
        s.stop()


def test_ready_says_draining_during_a_graceful_stop(models_dir, tmp_path, heldout):
    """SIGTERM with a real-time session open: /ready answers 503 "draining"
    while the session may still finish (a load balancer stops sending new
    work), /health stays 200 until the process ends."""
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--shutdown-grace-s", "5"])
    try:
        host = s.base.split("//", 1)[1]
        ws = websocket.create_connection(f"ws://{host}/v1/p/rasr/continue-stream", timeout=30)
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                           "property": "chinese_16k_general"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        s.proc.terminate()
        deadline = time.time() + 5
        seen = None
        while time.time() < deadline:
            try:
                r = requests.get(s.base + "/ready", timeout=2)
            except requests.ConnectionError:
                # the listener closes at once on SIGTERM: nothing new is taken
                seen = "closed"
                break
            if r.status_code == 503:
                seen = r.json()
                break
            time.sleep(0.05)
        assert seen == "closed" or "draining" in seen["reasons"], seen
        ws.close()
    finally:
        s.stop()
