"""Quotas (issue 18): two sisd nodes share one real PostgreSQL store; an
operator sets limits with `sisd quotas set`; project A's sessions beyond its
limit are refused with HTTP 429 APIG.0308 on either node while project B
opens sessions on both; a closed session frees its place; requests per
second and open jobs are limited alike; every refusal is counted in
/metrics."""

import json
import subprocess
import time

import pytest
import requests
import websocket

from conftest import SISD, Server

A = "a0000000000000000000000000000001"
B = "b0000000000000000000000000000002"
C = "c0000000000000000000000000000003"
D = "d0000000000000000000000000000004"
CFG = {"audio_format": "pcm16k16bit", "property": "chinese_16k_general"}


def admin(env, *args):
    r = subprocess.run([SISD, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


@pytest.fixture(scope="module")
def nodes(models_dir, tmp_path_factory, postgres):
    import os
    d = tmp_path_factory.mktemp("quotas")
    env = {**os.environ, "SIS_STORE_URL": postgres}
    for pid in (A, B, C, D):
        admin(env, "projects", "create", "--domain", "quota-test", "--name", pid[:8], "--id", pid)
    admin(env, "quotas", "set", "--project", A, "--sessions", "2")
    admin(env, "quotas", "set", "--project", C, "--jobs", "0")
    admin(env, "quotas", "set", "--project", D, "--rps", "3")
    listed = {q["scope"]: q for q in admin(env, "quotas", "list")}
    assert listed[A] == {"scope": A, "sessions": 2, "jobs": None, "rps": None}
    ns = [Server([models_dir], d / f"data{i}", extra=["--no-probe"], log=d / f"node{i}.log",
                 env={"SIS_STORE_URL": postgres}) for i in range(2)]
    yield dict(nodes=ns, env=env)
    for n in ns:
        n.stop()
    for pid in (A, C, D):
        admin(env, "quotas", "clear", "--project", pid)


def open_session(node, project):
    host = node.base.split("//", 1)[1]
    ws = websocket.create_connection(f"ws://{host}/v1/{project}/rasr/short-stream", timeout=30)
    ws.send(json.dumps({"command": "START", "config": CFG}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    return ws


def refused_session(node, project):
    host = node.base.split("//", 1)[1]
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(f"ws://{host}/v1/{project}/rasr/short-stream", timeout=30)
    assert e.value.status_code == 429
    body = json.loads(e.value.resp_body)
    assert body["error_code"] == "APIG.0308", body
    assert "throttling threshold" in body["error_msg"]


def metric(node, name, **labels):
    text = requests.get(node.base + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_sessions_over_the_limit_on_two_nodes(nodes):
    n1, n2 = nodes["nodes"]
    before = metric(n1, "sis_quota_refusals_total", limit="sessions") + \
        metric(n2, "sis_quota_refusals_total", limit="sessions")
    a1 = open_session(n1, A)
    a2 = open_session(n2, A)
    # A's third, on either node, is refused; B is not limited on either
    refused_session(n1, A)
    refused_session(n2, A)
    bs = [open_session(n, B) for n in (n1, n2, n1, n2)]
    # the two that are open still work
    for ws in (a1, a2):
        ws.send_binary(b"\0" * 3200)
        ws.send(json.dumps({"command": "END"}))
        msgs = []
        while not msgs or msgs[-1]["resp_type"] != "END":
            msgs.append(json.loads(ws.recv()))
    # a closed session frees its place (its lease is removed as it ends)
    a1.close()
    deadline = time.time() + 5
    while True:
        try:
            a3 = open_session(n2, A)
            break
        except websocket.WebSocketBadStatusException:
            assert time.time() < deadline, "the closed session's place was not freed"
            time.sleep(0.1)
    refused_session(n1, A)
    for ws in [a2, a3, *bs]:
        ws.close()
    after = metric(n1, "sis_quota_refusals_total", limit="sessions") + \
        metric(n2, "sis_quota_refusals_total", limit="sessions")
    assert after - before >= 3


def test_requests_per_second(nodes):
    n1, n2 = nodes["nodes"]
    codes = {D: [], B: []}
    for i in range(12):
        for p in (D, B):
            node = (n1, n2)[i % 2]
            r = requests.get(f"{node.base}/v1/{p}/asr/transcriber/jobs/nope", timeout=10)
            if r.status_code == 429:
                assert r.json()["error_code"] == "APIG.0308" and r.headers["Retry-After"] == "1"
            codes[p].append(r.status_code)
    # 12 requests within a few seconds: most of D's over 3 a second refused,
    # none of B's (a job that does not exist: 404)
    assert codes[D].count(429) >= 3, codes
    assert 429 not in codes[B], codes
    assert metric(n1, "sis_quota_refusals_total", limit="rps") + \
        metric(n2, "sis_quota_refusals_total", limit="rps") == codes[D].count(429)


def test_open_jobs(nodes):
    n1, _ = nodes["nodes"]
    body = {"data_url": "http://127.0.0.1:9/a.wav", "config": {"audio_format": "auto",
                                                             "property": "chinese_16k_general"}}
    r = requests.post(f"{n1.base}/v1/{C}/asr/transcriber/jobs", json=body, timeout=10)
    assert r.status_code == 429 and r.json()["error_code"] == "APIG.0308", r.text
    assert "open recognition jobs" in r.json()["error_msg"]


def test_operator_commands_check_their_input(nodes):
    env = nodes["env"]
    r = subprocess.run([SISD, "quotas", "set", "--project", "f" * 32, "--rps", "1"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not found" in r.stderr
    r = subprocess.run([SISD, "quotas", "set", "--project", A, "--all", "--rps", "1"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0  # one scope at a time
    r = subprocess.run([SISD, "quotas", "set", "--default", "--rps", "-1"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
