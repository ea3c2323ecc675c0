"""Graceful stop (issue 11, finding 7): on SIGTERM the server stops accepting,
a short-audio request in flight gets its 200, a continue-stream client that
sends END afterwards gets its final result and a clean close, a client still
streaming at the deadline gets FATAL_ERROR and a close frame, a running job
goes back to the queue and is finished exactly once after a restart on the
same store, and the process exits 0. SIGINT stops it the same way."""

import base64
import http.server
import json
import re
import signal
import socket
import subprocess
import threading
import time
import wave

import pytest
import requests
import websocket

from conftest import Server

GRACE_S = 6.0


class Drip(http.server.ThreadingHTTPServer):
    """Serves files slowly the first time (so a job is still downloading
    when the server is stopped), at full speed afterwards; records callbacks."""

    def __init__(self, root):
        self.root, self.gets, self.posts = root, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.gets.append(self.path)
                data = (server.root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                slow = server.gets.count(self.path) == 1
                try:
                    for i in range(0, len(data), 4096):
                        self.wfile.write(data[i:i + 4096])
                        if slow:
                            time.sleep(0.5)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.posts.append(body)
                self.send_response(200)
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def clips(heldout, tmp_path_factory):
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    d = tmp_path_factory.mktemp("shutdown-files")
    subprocess.run(["sox", root / "16k" / f"{sent[0]['id']}.wav", d / "job.wav", "pad", "0.5", "1"], check=True)
    with wave.open(str(root / "16k" / f"{sent[1]['id']}.wav")) as w:
        pcm = w.readframes(w.getnframes())
    pcm = b"\0" * 16000 + pcm + b"\0" * 48000
    pcm += b"\0" * (-len(pcm) % 3200)
    return dict(dir=d, job_text=sent[0]["text"], pcm=pcm, text=sent[1]["text"])


CONFIG = {"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "add_punc": "no", "digit_norm": "no",
          "vad_head": 10000, "vad_tail": 500, "max_seconds": 30, "interim_results": "no"}


def ws_connect(server, mode="continue-stream", **config):
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/v1/p/rasr/{mode}", timeout=30)
    ws.send(json.dumps({"command": "START", "config": {**CONFIG, **config}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    return ws


def next_close(ws):
    """Reads until the close frame; returns its code (None if the socket just ended)."""
    while True:
        try:
            op, frame = ws.recv_data_frame(True)
        except websocket.WebSocketConnectionClosedException:
            return None
        if op == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005


def log_lines(paths, pattern):
    text = "".join(p.read_text() for p in paths if p.exists())
    return re.findall(pattern, text)


def test_sigterm_is_graceful(models_dir, tmp_path, clips):
    drip = Drip(clips["dir"])
    data = tmp_path / "data"
    env = {"SIS_FETCH_ALLOW": "127.0.0.1"}
    extra = ["--no-probe", "--job-workers", "1", "--shutdown-grace-s", str(GRACE_S)]
    logs = [tmp_path / "sisd1.log", tmp_path / "sisd2.log"]
    server = Server([models_dir], data, extra=extra, log=logs[0], env=env)
    port = server.port
    try:
        # a job, downloading when the signal comes
        r = requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", json={
            "data_url": f"{drip.url}/job.wav",
            "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no",
                       "callback_url": f"{drip.url}/cb"}})
        assert r.status_code == 200, r.text
        job = r.json()["job_id"]
        deadline = time.time() + 20
        while not log_lines(logs[:1], "job started") and time.time() < deadline:
            time.sleep(0.1)
        assert log_lines(logs[:1], "job started")

        # a session that will END after the signal
        pcm = clips["pcm"]
        half = len(pcm) // 2 - (len(pcm) // 2) % 3200
        finisher = ws_connect(server)
        for i in range(0, half, 3200):
            finisher.send_binary(pcm[i:i + 3200])

        # a session that goes on streaming past the deadline
        lingerer = ws_connect(server, vad_head=60000)
        lingering = threading.Event()
        lingerer_msgs = []

        def linger():
            try:
                while not lingering.is_set():
                    lingerer.send_binary(b"\0" * 3200)
                    time.sleep(0.1)
            except (websocket.WebSocketException, OSError):
                pass

        feeder = threading.Thread(target=linger, daemon=True)
        feeder.start()

        # a short-audio request whose body is half sent
        body = json.dumps({"data": base64.b64encode(pcm).decode(), "config": {
            "audio_format": "pcm16k16bit", "property": "chinese_16k_general", "digit_norm": "no"}}).encode()
        sa = socket.create_connection(("127.0.0.1", port), timeout=30)
        sa.sendall(b"POST /v1/p/asr/short-audio HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
        time.sleep(0.3)

        t_term = time.time()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)

        # no new connections
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

        # the request in flight completes
        sa.sendall(body[len(body) // 2:])
        resp = b""
        while True:
            chunk = sa.recv(65536)
            if not chunk:
                break
            resp += chunk
        sa.close()
        head, _, payload = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), resp[:300]
        assert json.loads(payload)["result"]["text"] == clips["text"]

        # the session that ends gets its final result, END and a close frame
        for i in range(half, len(pcm), 3200):
            finisher.send_binary(pcm[i:i + 3200])
        finisher.send(json.dumps({"command": "END", "cancel": "false"}))
        msgs = []
        while True:
            m = json.loads(finisher.recv())
            msgs.append(m)
            if m["resp_type"] in ("END", "FATAL_ERROR", "ERROR"):
                break
        assert msgs[-1]["resp_type"] == "END" and msgs[-1]["reason"] == "NORMAL", msgs
        finals = [m["segments"][0]["result"]["text"] for m in msgs if m["resp_type"] == "RESULT"]
        assert "".join(finals) == clips["text"], msgs
        assert next_close(finisher) == 1001
        finisher.close()

        # the lingering one is stopped at the deadline
        while True:
            m = json.loads(lingerer.recv())
            lingerer_msgs.append(m)
            if m["resp_type"] in ("END", "FATAL_ERROR"):
                break
        t_fatal = time.time() - t_term
        lingering.set()
        assert lingerer_msgs[-1]["resp_type"] == "FATAL_ERROR", lingerer_msgs
        assert lingerer_msgs[-1]["error_code"] == "SIS.0100", lingerer_msgs
        assert GRACE_S - 0.5 <= t_fatal <= GRACE_S + 2, t_fatal
        assert next_close(lingerer) == 1000
        lingerer.close()

        code = server.proc.wait(timeout=GRACE_S + 10)
        t_exit = time.time() - t_term
        assert code == 0, logs[0].read_text()[-3000:]
        log = logs[0].read_text()
        assert "given back to the queue" in log, log[-3000:]
        assert not log_lines(logs[:1], f'job done job_id="?{job}')
        print(f"FATAL_ERROR {t_fatal:.2f} s after SIGTERM, exit {t_exit:.2f} s after, status {code}")

        # after a restart on the same store the job is finished, once
        server = Server([models_dir], data, extra=extra, log=logs[1], env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            r = requests.get(f"{server.base}/v1/p/asr/transcriber/jobs/{job}").json()
            if r["status"] != "WAITING":
                break
            time.sleep(0.3)
        assert r["status"] == "FINISHED", r
        assert [s["result"]["text"] for s in r["segments"]] == [clips["job_text"]], r
        deadline = time.time() + 10
        while time.time() < deadline and not drip.posts:
            time.sleep(0.2)
        time.sleep(1)
        assert len(log_lines(logs, f'job done job_id="?{job}')) == 1
        assert [json.loads(b)["job_id"] for b in drip.posts] == [job]
    finally:
        if server.proc.poll() is None:
            server.stop()
        drip.shutdown()


def test_sigint_idle_server_exits_at_once(models_dir, tmp_path):
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=tmp_path / "sisd.log")
    # an idle keep-alive connection does not hold the stop up
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    t0 = time.time()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=10) == 0
    took = time.time() - t0
    assert s.recv(100) == b""
    s.close()
    assert took < 3, took
    assert "stopped" in (tmp_path / "sisd.log").read_text()


def test_sigterm_during_vocabulary_writes_loses_nothing_accepted(models_dir, tmp_path):
    """Four clients create, update and delete vocabularies as fast as they can
    while the server gets SIGTERM. Every write answered 200 is in the store
    after a restart on the same data directory (a create is there, with the
    contents its last answered update gave it; a delete is gone), and the
    process exits 0."""
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=tmp_path / "sisd.log")
    base = server.base
    lock = threading.Lock()
    expect = {}  # vocabulary_id -> contents, or None once deleted (as answered)
    stop = threading.Event()
    answered = [0]

    def client(k):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = s.post(f"{base}/v1/p1/asr/vocabularies", timeout=5, json={
                    "name": f"c{k}_{i}", "language": "chinese_mandarin", "contents": ["张伟", f"{'甲乙丙丁'[k]}{'一二三四五六七八九'[i % 9]}"]})
                if r.status_code != 200:
                    continue
                vid = r.json()["vocabulary_id"]
                with lock:
                    expect[vid] = ["张伟", f"{'甲乙丙丁'[k]}{'一二三四五六七八九'[i % 9]}"]
                    answered[0] += 1
                if i % 3 == 0:
                    r = s.put(f"{base}/v1/p1/asr/vocabularies/{vid}", timeout=5, json={
                        "name": f"c{k}_{i}", "language": "chinese_mandarin", "contents": ["李娜"]})
                    if r.status_code == 200:
                        with lock:
                            expect[vid] = ["李娜"]
                elif i % 3 == 1:
                    r = s.delete(f"{base}/v1/p1/asr/vocabularies/{vid}", timeout=5)
                    if r.status_code == 200:
                        with lock:
                            expect[vid] = None
            except requests.RequestException:
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while answered[0] < 40:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0
    stop.set()
    for t in threads:
        t.join()
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=tmp_path / "sisd2.log")
    try:
        for vid, contents in expect.items():
            r = requests.get(f"{server.base}/v1/p1/asr/vocabularies/{vid}", timeout=5)
            if contents is None:
                assert r.status_code == 400 and r.json()["error_code"] == "SIS.0201", (vid, r.text)
            else:
                assert r.status_code == 200, (vid, r.text)
                assert r.json()["contents"] == contents, (vid, r.json())
        print(f"{len(expect)} vocabularies answered before the stop, every one as answered after it")
    finally:
        server.stop()


def until_closed(ws):
    """Every message until the server closes the connection: the
    `resp_type` of each text message, and the bytes of the binary ones."""
    kinds, audio = [], 0
    while True:
        try:
            m = ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            break
        if isinstance(m, bytes):
            audio += len(m)
            continue
        if not m:
            break
        kinds.append(json.loads(m)["resp_type"])
    return kinds, audio


def test_sigterm_mid_synthesis(models_dir, tmp_path):
    """SIGTERM while a 500-character /tts request and an /rtts session are
    being synthesised: the request in flight gets its 200 with the whole
    audio, the session ends with its END or a FATAL_ERROR and a close (never
    a silent drop), and the process exits 0."""
    # espeak-ng made a little slower (50 ms a process), so that the request
    # is surely still being synthesised when the signal comes
    slow = tmp_path / "espeak-slow"
    slow.write_text("#!/bin/sh\nsleep 0.05\nexec espeak-ng \"$@\"\n")
    slow.chmod(0o755)
    server = Server([models_dir], tmp_path / "data", log=tmp_path / "sisd.log",
                    extra=["--no-probe", "--shutdown-grace-s", "10", "--espeak-ng", str(slow)])
    text = "您好，请问有什么可以帮您。" * 38 + "谢谢"
    assert len(text) == 496
    rest = {}

    def tts():
        rest["r"] = requests.post(f"{server.base}/v1/p1/tts", timeout=60, json={
            "text": text, "config": {"audio_format": "pcm", "sample_rate": "16000"}})

    def children():
        return subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                              text=True).stdout.split()

    t = threading.Thread(target=tts)
    t.start()
    deadline = time.time() + 10
    while not children():  # the request's first espeak-ng processes
        assert time.time() < deadline
        time.sleep(0.005)
    ws = websocket.create_connection(server.base.replace("http://", "ws://") + "/v1/p1/rtts", timeout=30)
    ws.send(json.dumps({"command": "START", "text": text, "config": {"sample_rate": "16000"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    ws.recv()  # the first audio: synthesis is running
    assert t.is_alive()
    server.proc.send_signal(signal.SIGTERM)
    kinds, audio = until_closed(ws)
    t.join()
    assert server.proc.wait(timeout=20) == 0
    assert kinds and kinds[-1] in ("END", "FATAL_ERROR"), kinds
    r = rest["r"]
    assert r.status_code == 200, r.text
    pcm = base64.b64decode(r.json()["result"]["data"])
    assert len(pcm) > 16000 * 2 * 30, len(pcm)  # about 2 minutes of speech
    print(f"rtts: {kinds}, {audio} bytes; /tts: {len(pcm) / 32000:.1f} s of audio")


def test_sigterm_mid_flash_and_short_audio_ws(models_dir, tmp_path, heldout):
    """SIGTERM while a flash recognition of a 3-minute file is running and a
    short-audio WebSocket session is open (audio sent, no END): the flash
    request gets its 200 with the transcript, the session a FATAL_ERROR (or
    its END) and a close, and the process exits 0; the spooled object is
    gone."""
    root, rows = heldout
    r = [x for x in rows if x["kind"] == "sentence"][0]
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    src = root / "16k" / f"{r['id']}.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "40", "-i", str(src), "-af", "apad=pad_dur=1",
                    "-t", "180", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(bucket / "long.wav")],
                   check=True)
    server = Server([models_dir], tmp_path / "data", log=tmp_path / "sisd.log",
                    extra=["--no-probe", "--shutdown-grace-s", "3", "--flash-bucket", f"b=file://{bucket}"])
    out = {}

    def flash():
        out["r"] = requests.post(f"{server.base}/v1/p1/asr/flash", timeout=120, params={
            "property": "chinese_16k_common", "audio_format": "wav", "obs_bucket_name": "b",
            "obs_object_key": "long.wav", "digit_norm": "no"})

    ws = websocket.create_connection(server.base.replace("http://", "ws://") + "/v1/p1/asr/short-audio", timeout=30)
    ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                       "property": "chinese_16k_common"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    ws.send_binary(b"\0" * 32000)
    t = threading.Thread(target=flash)
    t.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    kinds, _ = until_closed(ws)
    t.join()
    assert server.proc.wait(timeout=60) == 0
    assert kinds and kinds[-1] in ("END", "FATAL_ERROR"), kinds
    resp = out["r"]
    assert resp.status_code == 200, resp.text
    texts = [s["result"]["text"] for s in resp.json()["flash_result"][0]["sentences"]]
    assert len(texts) >= 20 and all(x == r["text"] for x in texts), texts[:5]
    assert not list((tmp_path / "data" / "jobs").glob("flash-*"))
