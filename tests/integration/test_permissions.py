"""Files the server creates that hold secrets or data are its owner's only
(issue 11, finding 8): the SQLite store and its -wal/-shm, callback.key,
DATA_DIR and DATA_DIR/jobs are 0600/0700, audio spooled for a job too, and
the operator commands create the store the same way; a callback.key left
world-readable by an older version is tightened at start."""

import http.server
import stat
import subprocess
import threading
import time

import requests

from conftest import SISD, Server, cli


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


class Slow(http.server.ThreadingHTTPServer):
    """Serves 1 MB of audio very slowly, so a job's spooled file can be seen."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(1_000_000))
                self.end_headers()
                try:
                    for _ in range(100):
                        self.wfile.write(b"\0" * 4096)
                        self.wfile.flush()
                        time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_created_files_are_private(models_dir, tmp_path):
    data = tmp_path / "new" / "data"  # neither exists yet
    slow = Slow()
    server = Server([models_dir], data, extra=["--no-probe"], log=tmp_path / "sisd.log",
                    env={"SIS_FETCH_ALLOW": "127.0.0.1"})
    try:
        r = requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", json={
            "data_url": f"{slow.url}/a.raw",
            "config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_general"}})
        assert r.status_code == 200, r.text
        deadline = time.time() + 20
        spooled = []
        while time.time() < deadline and not spooled:
            spooled = list((data / "jobs").iterdir())
            time.sleep(0.1)
        assert spooled, "no audio spooled"
        checked = {}
        for p in [data, data / "jobs"]:
            checked[p.name] = oct(mode(p))
            assert mode(p) == 0o700, (p, oct(mode(p)))
        for p in [data / "sisd.db", data / "sisd.db-wal", data / "sisd.db-shm", data / "callback.key", *spooled]:
            assert p.exists(), p
            checked[p.name] = oct(mode(p))
            assert mode(p) == 0o600, (p, oct(mode(p)))
        print(checked)
    finally:
        server.stop()
        slow.shutdown()


def test_operator_commands_create_a_private_store(tmp_path):
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "mk").write_text(key)
    data = tmp_path / "data"
    env = {"SIS_DATA_DIR": str(data), "SIS_MASTER_KEY_FILE": str(tmp_path / "mk")}
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-north-4")
    assert mode(data / "sisd.db") == 0o600
    assert mode(data) == 0o700


def test_world_readable_key_is_tightened(models_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "callback.key").write_text("0123456789abcdef0123456789abcdef\n")
    (data / "callback.key").chmod(0o644)
    server = Server([models_dir], data, extra=["--no-probe"], log=tmp_path / "sisd.log")
    try:
        assert mode(data / "callback.key") == 0o600
        assert (data / "callback.key").read_text().startswith("0123456789abcdef")
    finally:
        server.stop()
