"""Issue 11, finding 6: a client's data_url or callback_url cannot stall the
job service. Against a real sisd on loopback with two job workers:

- a data_url that drips one byte a second, or that stops sending, ends its
  job in ERROR within the configured deadline / stall limit;
- one project's slow downloads cannot hold both workers: another project's
  job finishes in seconds meanwhile;
- a slow callback receiver does not delay another job's callback;
- a callback URL refused by the address policy is attempted once, not retried.

The audio and callback servers listen on 127.0.0.2, the only allow-listed
address, so that the machine's host name (resolving to 127.0.0.1 here) is a
name the policy refuses when a callback is sent (`localhost` itself is
refused when the job is created)."""

import http.server
import json
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import Server
from test_jobs import Files

HOST = "127.0.0.2"
STALL_S, TIMEOUT_S, MIN_RATE_KB = 3, 5, 1


class Slow(http.server.ThreadingHTTPServer):
    """Hostile and slow peers on loopback:

    - `GET /drip`: `Content-Length: 1000000`, then one byte a second;
    - `GET /silent`: `Content-Length: 1000`, ten bytes, then nothing;
    - `GET /noheaders`: reads the request and never answers;
    - `GET /trickle`: `Content-Length: 10000000` at 40 kB/s (above the
      minimum rate, so only fairness keeps it from holding every worker),
      until `trickle_stop` is set, then 404 to new requests;
    - `POST /cb/slow`: answers 200 after 30 s; `POST /cb/fast`: 200 at once.
    """

    daemon_threads = True

    def __init__(self):
        self.stop = threading.Event()
        self.trickle_stop = threading.Event()
        self.gets, self.posts, self.open_trickles = [], [], 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def body(self, length, first, piece, every):
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(first)
                self.wfile.flush()
                while piece and not server.stop.is_set():
                    if server.stop.wait(every):
                        break
                    self.wfile.write(piece)
                    self.wfile.flush()

            def do_GET(self):
                server.gets.append((self.path, time.time()))
                try:
                    if self.path == "/drip":
                        self.body(1_000_000, b"R", b"I", 1.0)
                    elif self.path == "/silent":
                        self.body(1000, b"0123456789", None, 0)
                        server.stop.wait(120)
                    elif self.path == "/noheaders":
                        server.stop.wait(120)
                    elif self.path == "/trickle":
                        if server.trickle_stop.is_set():
                            self.send_error(404)
                            return
                        with server.lock:
                            server.open_trickles += 1
                        try:
                            self.send_response(200)
                            self.send_header("Content-Length", "10000000")
                            self.end_headers()
                            while not server.trickle_stop.wait(0.1):
                                self.wfile.write(b"t" * 4000)
                                self.wfile.flush()
                        finally:
                            with server.lock:
                                server.open_trickles -= 1
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived = time.time()
                server.posts.append((self.path, json.loads(body)["job_id"], arrived))
                if self.path == "/cb/slow":
                    server.stop.wait(30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.trickle_stop.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def lim(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("limits")
    root, rows = heldout
    files = d / "files"
    files.mkdir()
    sentence = [r for r in rows if r["kind"] == "sentence"][0]
    subprocess.run(["sox", root / "16k" / f"{sentence['id']}.wav", files / "one.wav", "pad", "0.5", "1"], check=True)
    fs, slow = Files(files, host=HOST), Slow()
    server = Server([models_dir], d / "data", log=d / "sisd.log", env={"SIS_FETCH_ALLOW": HOST},
                    extra=["--no-probe", "--job-workers", "2", "--fetch-stall-s", str(STALL_S),
                           "--fetch-timeout-s", str(TIMEOUT_S), "--fetch-min-rate-kb", str(MIN_RATE_KB),
                           "--callback-timeout-s", "40"])
    yield dict(server=server, fs=fs, slow=slow, dir=d, text=sentence["text"])
    server.stop()
    slow.close()
    fs.shutdown()


def push(lim, project, url, callback=None):
    cfg = {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}
    if callback:
        cfg["callback_url"] = callback
    r = requests.post(f"{lim['server'].base}/v1/{project}/asr/transcriber/jobs",
                      json={"data_url": url, "config": cfg}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def get(lim, project, job_id):
    return requests.get(f"{lim['server'].base}/v1/{project}/asr/transcriber/jobs/{job_id}", timeout=10).json()


def wait_done(lim, project, job_id, timeout):
    """Polls until the job is FINISHED or ERROR; returns (body, seconds)."""
    start = time.time()
    while time.time() - start < timeout:
        doc = get(lim, project, job_id)
        if doc["status"] != "WAITING":
            return doc, time.time() - start
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still WAITING after {timeout} s")


def store_row(lim, sql, *args):
    db = sqlite3.connect(f"file:{lim['dir'] / 'data' / 'sisd.db'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchone()
    finally:
        db.close()


def test_dripping_or_silent_data_url_fails_in_time(lim):
    slow = lim["slow"].url
    cases = [
        # (path, project, message, earliest, latest): the deadline is
        # TIMEOUT_S plus the bytes received at MIN_RATE_KB; a stall STALL_S
        ("drip", "pd", "the download is too slow", TIMEOUT_S, TIMEOUT_S + 3),
        ("silent", "ps", f"the download stalled: no data for {STALL_S} s", STALL_S, STALL_S + 3),
        ("noheaders", "pn", f"the download stalled: no data for {STALL_S} s", STALL_S, STALL_S + 3),
    ]
    for path, project, message, earliest, latest in cases:
        job = push(lim, project, f"{slow}/{path}")
        doc, took = wait_done(lim, project, job, 60)
        print(f"{path}: {doc['status']} after {took:.2f} s: {doc.get('error_msg')}")
        assert doc["status"] == "ERROR" and doc["error_code"] == "SIS.0001", doc
        assert message in doc["error_msg"] and "data_url could not be fetched" in doc["error_msg"], doc
        assert earliest - 0.5 <= took <= latest, (path, took)
    # the service goes on: a good job right after
    job = push(lim, "pd", f"{lim['fs'].url}/one.wav")
    doc, took = wait_done(lim, "pd", job, 60)
    assert doc["status"] == "FINISHED" and [s["result"]["text"] for s in doc["segments"]] == [lim["text"]], doc


def test_one_project_cannot_hold_every_worker(lim):
    slow = lim["slow"]
    slow.trickle_stop.clear()
    # project A: two downloads that keep above the minimum rate (40 kB/s of
    # 10 MB: over four minutes each), submitted first
    a_jobs = [push(lim, "proj-a", f"{slow.url}/trickle") for _ in range(2)]
    try:
        deadline = time.time() + 10
        while slow.open_trickles < 1 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        # with two workers a project runs at most one job at a time here: A's
        # second job waits in the queue, and the other worker is free for B
        assert slow.open_trickles == 1, "A holds one worker, not both"
        statuses = sorted(store_row(lim, "SELECT status FROM jobs WHERE id = ?", j)[0] for j in a_jobs)
        assert statuses == ["RUNNING", "WAITING"], statuses
        b = push(lim, "proj-b", f"{lim['fs'].url}/one.wav")
        doc, took = wait_done(lim, "proj-b", b, 60)
        print(f"project B's job FINISHED in {took:.2f} s while project A's download runs")
        assert doc["status"] == "FINISHED" and [s["result"]["text"] for s in doc["segments"]] == [lim["text"]], doc
        assert took < 10, took
        assert slow.open_trickles == 1
    finally:
        # A's downloads are cut off: the first fails (short body), the second
        # then runs and fails (404); both end, and the workers are free again
        slow.trickle_stop.set()
        for j in a_jobs:
            doc, _ = wait_done(lim, "proj-a", j, 30)
            assert doc["status"] == "ERROR", doc


def test_slow_callback_receiver_does_not_delay_others(lim):
    slow, fs = lim["slow"], lim["fs"]
    job1 = push(lim, "cb1", f"{fs.url}/one.wav", callback=f"{slow.url}/cb/slow")
    deadline = time.time() + 60
    while not any(p[1] == job1 for p in slow.posts) and time.time() < deadline:
        time.sleep(0.1)
    slow_arrived = next((p[2] for p in slow.posts if p[1] == job1), None)
    assert slow_arrived is not None, "the slow receiver got its callback"
    # the slow receiver now holds its callback for 30 s (the callback
    # timeout is 40 s): another job's callback goes out meanwhile
    job2 = push(lim, "cb2", f"{fs.url}/one.wav", callback=f"{slow.url}/cb/fast")
    doc, _ = wait_done(lim, "cb2", job2, 60)
    finished = time.time()
    assert doc["status"] == "FINISHED", doc
    while not any(p[1] == job2 for p in slow.posts) and time.time() < finished + 20:
        time.sleep(0.05)
    fast_arrived = next((p[2] for p in slow.posts if p[1] == job2), None)
    assert fast_arrived is not None, "the fast receiver got its callback"
    print(f"fast callback {fast_arrived - finished:.2f} s after its job finished, "
          f"{fast_arrived - slow_arrived:.2f} s after the slow receiver got its own (which answers after 30 s)")
    assert fast_arrived - finished < 3
    assert fast_arrived - slow_arrived < 30, "delivered while the slow receiver was still holding its callback"


def test_policy_refused_callback_is_not_retried(lim):
    fs = lim["fs"]
    port = lim["slow"].server_address[1]
    # a host name is checked when the callback is sent: the machine's name
    # resolves to 127.0.0.1, which is not allow-listed (only 127.0.0.2 is)
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)}
    except OSError:
        addrs = set()
    if "127.0.0.1" not in addrs:
        pytest.skip(f"the host name {name} does not resolve to 127.0.0.1 here")
    job = push(lim, "pr", f"{fs.url}/one.wav", callback=f"http://{name}:{port}/cb/fast")
    doc, _ = wait_done(lim, "pr", job, 60)
    assert doc["status"] == "FINISHED", doc
    # retries would come 1, 2 and 4 s after the first attempt
    deadline = time.time() + 30
    while store_row(lim, "SELECT attempts FROM callbacks WHERE job_id = ?", job) in (None, (0,)) \
            and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(8)
    attempts, delivered, next_ms, error = store_row(
        lim, "SELECT attempts, delivered_ms, next_ms, last_error FROM callbacks WHERE job_id = ?", job)
    print(f"refused callback: attempts={attempts} delivered={delivered} last_error={error!r}")
    assert (attempts, delivered) == (1, None)
    assert next_ms > int(time.time() * 1000) + 10 * 365 * 86400 * 1000, "given up, not scheduled again"
    assert "not retried" in error and "127.0.0.1" in error and "not allowed" in error, error
    log = (lim["dir"] / "sisd.log").read_text()
    lines = [line for line in log.splitlines() if job in line and "callback" in line]
    assert len(lines) == 1 and "callback not retried: the URL is refused" in lines[0], lines
    assert not any(p[1] == job for p in lim["slow"].posts)
