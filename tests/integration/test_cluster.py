"""Many nodes behind one address (issue 18): three `sisd` on loopback share
one real PostgreSQL store and one S3-compatible bucket (moto's server on
loopback), behind Debian's nginx
running the repository's own configuration (deploy/nginx/sisd.conf, with
the upstream addresses replaced by the nodes' and one test-only header
naming the node that served a request). Through nginx: the PyPI SDK
(short audio, jobs), the WebSocket SDK in ../shared/clients and
websocket-client work with AK/SK signatures; a node killed under load
loses no accepted job and only its own sessions, which see a close, not a
hang; a rolling restart of every node under steady load (20 real-time
sessions, jobs every 12 s, short audio) fails nothing."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave

import pytest
import requests
import websocket
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdksis.v1 import (CollectTranscriberJobRequest, PostTranscriberJobs,
                                  PushTranscriberJobsRequest, SisClient, TranscriberConfig)
from huaweicloudsdksis.v1.model import Config, PostShortAudioReq, RecognizeShortAudioRequest

from conftest import ROOT, SHARED, SISD, Server, free_port
from signer import sdk_date, sign
from test_jobs import Files
from test_jobs_objects import BUCKET, keys, s3  # noqa: F401  (s3 is a fixture)

sys.path.insert(0, str(SHARED / "clients"))
from huaweicloud_sis.bean.callback import RasrCallBack  # noqa: E402
from huaweicloud_sis.bean.rasr_request import RasrRequest  # noqa: E402
from huaweicloud_sis.bean.sis_config import SisConfig  # noqa: E402
from huaweicloud_sis.client.rasr_client import RasrClient  # noqa: E402

PID = "c1a5e7e40000000000000000000000aa"
CHUNK = 3200  # 100 ms of pcm16k16bit


def nginx_config(d, listen, ports):
    """deploy/nginx/sisd.conf with the nodes' addresses and a loopback
    listener, inside a minimal nginx.conf of its own."""
    conf = (ROOT / "deploy/nginx/sisd.conf").read_text()
    servers = re.findall(r"^\s*server 10\.0\.0\.\d+:8080[^;]*;$", conf, re.M)
    assert len(servers) == 3, servers
    for line, port in zip(servers, ports):
        conf = conf.replace(line, re.sub(r"10\.0\.0\.\d+:8080", f"127.0.0.1:{port}", line))
    assert "listen 80;" in conf
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    # test only: which node served a request
    conf = conf.replace("proxy_pass http://sisd;", "proxy_pass http://sisd;\n        add_header X-Upstream $upstream_addr always;")
    tmp = d / "nginx-tmp"
    tmp.mkdir(mode=0o777)
    os.chmod(tmp, 0o777)
    (d / "sisd.conf").write_text(conf)
    main = f"""worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {d}/sisd.conf;
}}
"""
    (d / "nginx.conf").write_text(main)
    return d / "nginx.conf"


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory, heldout, postgres, s3):  # noqa: F811
    d = tmp_path_factory.mktemp("cluster")
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (d / "mk").write_text(key)
    admin_env = {**os.environ, "SIS_STORE_URL": postgres, "SIS_MASTER_KEY_FILE": str(d / "mk")}

    def admin(*args):
        r = subprocess.run([SISD, *args], env=admin_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    admin("projects", "create", "--domain", "cluster", "--name", "cluster-1", "--id", PID)
    cred = admin("credentials", "create", "--project", PID)[0]
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    files = d / "files"
    files.mkdir()
    clip = root / "16k" / f"{sent[0]['id']}.wav"
    (files / "a.wav").write_bytes(clip.read_bytes())
    fs = Files(files)
    s3_client, s3_env = s3
    ports = [free_port() for _ in range(3)]
    env = {"SIS_STORE_URL": postgres, "SIS_MASTER_KEY_FILE": str(d / "mk"), "SIS_FETCH_ALLOW": "127.0.0.1",
           **s3_env}
    extra = ["--auth", "sis", "--no-probe", "--objects", f"s3://{BUCKET}/cluster", "--job-lease-s", "3",
             "--job-workers", "1", "--shutdown-grace-s", "20"]
    n = [0]

    def start(i):
        n[0] += 1
        return Server([models_dir], d / f"data{i}", extra=extra, env=env, port=ports[i],
                      log=d / f"node{i}-{n[0]}.log")

    nodes = [start(i) for i in range(3)]
    listen = free_port()
    conf = nginx_config(d, listen, ports)
    nginx = subprocess.run(["nginx", "-t", "-c", conf], capture_output=True, text=True)
    assert nginx.returncode == 0, nginx.stderr
    subprocess.run(["nginx", "-c", conf], check=True)
    base = f"http://127.0.0.1:{listen}"
    with wave.open(str(clip)) as w:
        pcm = w.readframes(w.getnframes())
    c = BasicCredentials(cred["access_key"], cred["secret_key"], PID)
    sdk = SisClient.new_builder().with_credentials(c).with_endpoint(base).build()
    yield dict(nodes=nodes, start=start, ports=ports, base=base, cred=cred, sdk=sdk, fs=fs,
               text=sent[0]["text"], clip=clip, pcm=pcm, dir=d, s3=s3_client)
    subprocess.run(["nginx", "-c", conf, "-s", "stop"], capture_output=True)
    fs.shutdown()
    for node in nodes:
        node.stop()


def ws_session(c, pcm, paced=True):
    """One short-stream session through nginx with websocket-client (signed
    like the SDK). Returns (node port, outcome, final text): outcome `ok`,
    `closed` (the connection ended: the node died) or `error:...`."""
    host = c["base"].split("//", 1)[1]
    url = f"/v1/{PID}/rasr/short-stream"
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(c["cred"]["access_key"], c["cred"]["secret_key"], "GET", url, None, h, b"")
    del h["host"]
    ws = websocket.create_connection(f"ws://{host}{url}", header=h, timeout=30)
    port = int(ws.getheaders().get("x-upstream", ":0").rsplit(":", 1)[1])
    try:
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                           "property": "chinese_16k_general",
                                                           "digit_norm": "no"}}))
        first = ws.recv()
        if not first:  # closed at once: the node began draining
            return port, "closed", None
        assert json.loads(first)["resp_type"] == "START"
        for i in range(0, len(pcm), CHUNK):
            ws.send_binary(pcm[i:i + CHUNK])
            if paced:
                time.sleep(0.1)
        ws.send(json.dumps({"command": "END"}))
        finals = []
        while True:
            raw = ws.recv()
            if not raw:
                return port, "closed", None
            m = json.loads(raw)
            if m["resp_type"] == "RESULT":
                finals += [s["result"]["text"] for s in m["segments"] if s["is_final"]]
            elif m["resp_type"] in ("ERROR", "FATAL_ERROR"):
                return port, f"error:{m.get('error_code')}", None
            elif m["resp_type"] == "END":
                return port, "ok", "".join(finals)
    except (websocket.WebSocketConnectionClosedException, ConnectionError, BrokenPipeError, OSError):
        return port, "closed", None
    finally:
        ws.close()


def short_audio(c):
    req = RecognizeShortAudioRequest(body=PostShortAudioReq(
        config=Config(audio_format="wav", _property="chinese_16k_common", digit_norm="no"),
        data=base64.b64encode(c["clip"].read_bytes()).decode()))
    return c["sdk"].recognize_short_audio(req).result.text


def push_job(c):
    cfg = TranscriberConfig(audio_format="auto", _property="chinese_16k_general", digit_norm="no")
    return c["sdk"].push_transcriber_jobs(PushTranscriberJobsRequest(
        body=PostTranscriberJobs(config=cfg, data_url=c["fs"].url + "/a.wav"))).job_id


def wait_jobs(c, ids, timeout=120):
    deadline = time.time() + timeout
    pending = set(ids)
    while pending and time.time() < deadline:
        for i in list(pending):
            r = c["sdk"].collect_transcriber_job(CollectTranscriberJobRequest(job_id=i))
            if r.status not in ("WAITING", "RUNNING"):
                assert r.status == "FINISHED", r
                assert "".join(s.result.text for s in r.segments) == c["text"], r
                pending.discard(i)
        time.sleep(0.3)
    assert not pending, f"{len(pending)} of {len(ids)} jobs never finished"


class Collect(RasrCallBack):
    def __init__(self):
        self.responses, self.errors = [], []
        self.ended = threading.Event()

    def on_response(self, message):
        self.responses.append(message)

    def on_error(self, error):
        self.errors.append(str(error))

    def on_end(self, message):
        self.ended.set()


def test_clients_through_nginx(cluster):
    c = cluster
    # the PyPI SDK: short audio and a job, whose result is in the shared bucket
    assert short_audio(c) == c["text"]
    job = push_job(c)
    wait_jobs(c, [job])
    assert any(k.startswith(f"cluster/results/{job}/") for k in keys(c["s3"], "cluster/")), \
        keys(c["s3"], "cluster/")
    # the WebSocket SDK (RasrClient, AK/SK)
    cb = Collect()
    config = SisConfig()
    config.set_connect_timeout(10)
    client = RasrClient(ak=c["cred"]["access_key"], sk=c["cred"]["secret_key"], use_aksk=True,
                        region="cn-north-4", project_id=PID, callback=cb, config=config,
                        service_endpoint="ws://" + c["base"].split("//", 1)[1])
    request = RasrRequest("pcm16k16bit", "chinese_16k_common")
    request.set_digit_norm("no")
    try:
        client.short_stream_connect(request)
        client.send_start()
        client.send_audio(c["pcm"], byte_len=4000, sleep_time=0)
        client.send_end()
        assert cb.ended.wait(30), (cb.errors, cb.responses)
    finally:
        client.close()
    assert not cb.errors, cb.errors
    finals = [s["result"]["text"] for m in cb.responses for s in m["segments"] if s["is_final"]]
    assert finals == [c["text"]]
    # websocket-client; and requests reach every node
    seen = set()
    for _ in range(6):
        port, outcome, text = ws_session(c, c["pcm"], paced=False)
        assert (outcome, text) == ("ok", c["text"])
        seen.add(port)
    assert seen == set(c["ports"]), seen


class Load:
    """Real-time sessions on `n` threads, short audio on one, jobs every
    `job_every` s, until stopped; every outcome recorded."""

    def __init__(self, c, n, job_every):
        self.c, self.stop, self.lock = c, threading.Event(), threading.Lock()
        # what the sessions' 3 s of audio reads as, from one unloaded session
        self.pcm = c["pcm"][:CHUNK * 30]
        port, outcome, self.expected = ws_session(c, self.pcm, paced=False)
        assert outcome == "ok" and self.expected, outcome
        self.sessions, self.short, self.jobs, self.job_errors = [], [], [], []
        self.threads = [threading.Thread(target=self.session_loop) for _ in range(n)]
        self.threads.append(threading.Thread(target=self.short_loop))
        self.threads.append(threading.Thread(target=self.job_loop, args=(job_every,)))
        for t in self.threads:
            t.start()

    def session_loop(self):
        while not self.stop.is_set():
            t0 = time.time()
            try:
                r = ws_session(self.c, self.pcm)
            except Exception as e:  # the upgrade itself failed
                r = (0, f"upgrade:{type(e).__name__}:{e}", None)
            with self.lock:
                self.sessions.append((t0, time.time(), *r))

    def short_loop(self):
        while not self.stop.is_set():
            try:
                self.short.append(short_audio(self.c) == self.c["text"])
            except Exception as e:
                self.short.append(repr(e))
            time.sleep(0.2)

    def job_loop(self, every):
        while not self.stop.is_set():
            try:
                self.jobs.append(push_job(self.c))
            except Exception as e:
                self.job_errors.append(repr(e))
            self.stop.wait(every)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_a_node_killed_under_load(cluster):
    c = cluster
    load = Load(c, 6, 1.0)
    time.sleep(4)
    victim = 1
    killed_at = time.time()
    c["nodes"][victim].proc.send_signal(signal.SIGKILL)
    c["nodes"][victim].proc.wait()
    time.sleep(6)
    load.finish()
    c["nodes"][victim] = c["start"](victim)
    # every accepted job finishes, whichever node took it
    assert not load.job_errors, load.job_errors
    wait_jobs(c, load.jobs)
    # sessions: the victim's that were open when it died see a close or an
    # error, never a hang; every other one succeeds
    bad = [s for s in load.sessions if s[3] != "ok" or s[4] != load.expected]
    for t0, t1, port, outcome, text in bad:
        assert port == c["ports"][victim] and t0 <= killed_at <= t1, (port, outcome)
        assert outcome in ("closed",) or outcome.startswith("error:"), outcome
    assert any(s[2] == c["ports"][victim] for s in load.sessions)
    assert sum(1 for s in load.sessions if s[3] == "ok") > 10
    # short audio: only requests in flight on the victim may fail
    assert sum(1 for s in load.short if s is not True) <= 1, load.short


def test_rolling_restart_under_load(cluster):
    c = cluster
    load = Load(c, 20, 12.0)
    started = time.time()
    time.sleep(3)
    drains = []  # (port, from, to)
    for i in range(3):
        node = c["nodes"][i]
        t0 = time.time()
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(40) == 0
        drains.append((c["ports"][i], t0, time.time()))
        c["nodes"][i] = c["start"](i)
        time.sleep(5)
    # at least 40 s of load in all
    time.sleep(max(3.0, 40 - (time.time() - started)))
    load.finish()
    assert not load.job_errors, load.job_errors
    wait_jobs(c, load.jobs)
    assert len(load.jobs) >= 3
    # nothing failed but sessions on a node while it drained, and those
    # ended cleanly (a close, never a hang or an error); sessions open
    # when the drain began finished within the grace period
    failed = [s for s in load.sessions if s[3] != "ok" or s[4] != load.expected]
    for t0, t1, port, outcome, text in failed:
        assert outcome == "closed" and any(p == port and a <= t1 and t0 <= b for p, a, b in drains), \
            (t0, t1, port, outcome, drains)
    assert len(failed) <= 3, failed
    assert len(load.sessions) >= 60
    assert all(s is True for s in load.short), [s for s in load.short if s is not True][:3]
