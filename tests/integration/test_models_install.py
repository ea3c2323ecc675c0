"""`sisd models install NAME`: the real download path (HTTP, progress, resume,
sha256) against a local HTTP server standing in for a mirror, with a catalog
file (`--catalog`) whose entry pins an archive built here from the committed
test model in the layout of a release archive. Also the test-pack warnings
(`/health`, the server log, `models list`)."""

import hashlib
import io
import os
import socket
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import ROOT, SISD

TINY = ROOT / "testdata/models/zh-tiny-ctc-offline"
NAME = "sisd-test-pack"
MIRROR_PATH = f"/asr-models/{NAME}.tar.bz2"


def env():
    # the operator's proxies must not reroute loopback
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


@pytest.fixture(scope="module")
def archive():
    """A release-style archive: DIR/model.onnx, DIR/tokens.txt, DIR/test_wavs/."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for name in ["model.onnx", "tokens.txt"]:
            tar.add(TINY / name, arcname=f"{NAME}/{name}")
        info = tarfile.TarInfo(f"{NAME}/test_wavs/0.wav")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"RIFF"))
    return buf.getvalue()


@pytest.fixture()
def catalog(tmp_path, archive):
    sha = hashlib.sha256(archive).hexdigest()
    f = tmp_path / "catalog.toml"
    f.write_text(f'''
[[pack]]
name = "{NAME}"
url = "https://github.com/k2-fsa/sherpa-onnx/releases/download{MIRROR_PATH}"
sha256 = "{sha}"
bytes = {len(archive)}
kind = "offline_asr"
model_type = "nemo_ctc"
language = "zh"
properties = ["chinese_16k_common"]
license = "Apache-2.0"
description = "the committed tiny model, as a catalog pack"
test_only = true
files = [
  {{ path = "model.onnx", role = "model" }},
  {{ path = "tokens.txt", role = "tokens" }},
]
''')
    return f


class Mirror:
    """A loopback HTTP server serving one file, honouring `Range: bytes=N-`.
    mode: "ok"; "drop-once" (the first full response is cut after half);
    "no-range" (answers a range request with the whole file)."""

    def __init__(self, payload, mode="ok"):
        self.payload = payload
        self.mode = mode
        self.requests = []  # (path, Range header or None)
        self.dropped = False
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                mirror.requests.append((self.path, rng))
                data = mirror.payload
                start = 0
                if rng and mirror.mode != "no-range":
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mirror.mode == "drop-once" and not mirror.dropped and start == 0:
                    mirror.dropped = True
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i:i + 65536])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def mirror(archive):
    servers = []

    def make(mode="ok", payload=None):
        m = Mirror(archive if payload is None else payload, mode)
        servers.append(m)
        return m

    yield make
    for m in servers:
        m.close()


def install(models, catalog, *extra, timeout=120):
    return subprocess.run([SISD, "models", "install", "--catalog", catalog, "--models-dir", models, *extra],
                          capture_output=True, text=True, env=env(), timeout=timeout)


def part(models):
    return models / ".staging" / f"{NAME}.part"


def test_install_by_name_downloads_with_progress_and_installs(tmp_path, catalog, mirror):
    m = mirror()
    models = tmp_path / "models"
    r = install(models, catalog, NAME, "--base-url", m.base)
    assert r.returncode == 0, r.stderr
    # the mirror replaces the official prefix
    assert m.requests == [(MIRROR_PATH, None)]
    assert f"{NAME}: downloading" in r.stderr and "100%" in r.stderr and "50%" in r.stderr, r.stderr
    assert f"installed {NAME}" in r.stdout and "restart" in r.stdout, r.stdout
    assert (models / NAME / "pack.toml").is_file()
    assert [p.name for p in models.iterdir()] == [NAME]  # no staging area left
    v = subprocess.run([SISD, "models", "verify", "--models", models], capture_output=True, text=True)
    assert v.returncode == 0 and f"ok\t{NAME}" in v.stdout, v.stdout
    # the catalog's values, and its test_only flag, are in the manifest
    lst = subprocess.run([SISD, "models", "list", "--models", models], capture_output=True, text=True).stdout
    assert "chinese_16k_common" in lst and "TEST PACK" in lst, lst
    # installed already: refused by name, skipped by --defaults (nothing downloaded)
    again = install(models, catalog, NAME, "--base-url", m.base)
    assert again.returncode == 1 and "already installed" in again.stderr
    assert len(m.requests) == 1


def test_a_download_that_is_not_the_pinned_file_is_refused_and_deleted(tmp_path, catalog, mirror, archive):
    other = bytes(b ^ 0x5A for b in archive)  # same size, other bytes
    m = mirror(payload=other)
    models = tmp_path / "models"
    r = install(models, catalog, NAME, "--base-url", m.base)
    assert r.returncode == 1
    assert "does not match the catalog's" in r.stderr and "was deleted" in r.stderr, r.stderr
    assert not (models / NAME).exists()
    assert not part(models).exists()
    assert not (models / ".staging").exists()


def test_a_mirror_offering_another_size_is_refused_before_downloading(tmp_path, catalog, mirror, archive):
    m = mirror(payload=archive + b"x")
    r = install(tmp_path / "models", catalog, NAME, "--base-url", m.base)
    assert r.returncode == 1 and "not the pinned file" in r.stderr, r.stderr
    assert not part(tmp_path / "models").exists()


def test_resume_after_the_server_drops_the_connection_halfway(tmp_path, catalog, mirror, archive):
    m = mirror("drop-once")
    models = tmp_path / "models"
    r = install(models, catalog, NAME, "--base-url", m.base)
    assert r.returncode == 0, r.stderr
    assert m.dropped
    assert len(m.requests) == 2, m.requests
    assert m.requests[0][1] is None
    # the second request asks for the rest only
    resumed_at = int(m.requests[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(archive) // 2, (resumed_at, len(archive))
    assert "connection lost" in r.stderr or "closed the connection" in r.stderr, r.stderr
    assert f"resuming at byte {resumed_at}" in r.stderr, r.stderr
    assert (models / NAME / "pack.toml").is_file()
    assert not part(models).exists()


def test_a_partial_file_from_an_earlier_run_is_resumed(tmp_path, catalog, mirror, archive):
    models = tmp_path / "models"
    part(models).parent.mkdir(parents=True)
    half = len(archive) // 2
    part(models).write_bytes(archive[:half])
    m = mirror()
    r = install(models, catalog, NAME, "--base-url", m.base)
    assert r.returncode == 0, r.stderr
    assert m.requests == [(MIRROR_PATH, f"bytes={half}-")]
    assert f"resuming at byte {half}" in r.stderr
    assert (models / NAME / "pack.toml").is_file()


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path, catalog, mirror, archive):
    models = tmp_path / "models"
    part(models).parent.mkdir(parents=True)
    part(models).write_bytes(archive[:1000])
    m = mirror("no-range")
    r = install(models, catalog, NAME, "--base-url", m.base)
    assert r.returncode == 0, r.stderr
    assert "does not resume downloads; starting over" in r.stderr, r.stderr
    assert (models / NAME / "pack.toml").is_file()


def test_url_overrides_the_location_of_one_pack(tmp_path, catalog, mirror):
    m = mirror()
    r = install(tmp_path / "models", catalog, NAME, "--url", f"{m.base}/elsewhere/pack.tar.bz2")
    assert r.returncode == 0, r.stderr
    assert m.requests == [("/elsewhere/pack.tar.bz2", None)]


def test_the_archive_itself_installs_from_a_file_as_the_catalog_pack(tmp_path, catalog, archive):
    f = tmp_path / f"{NAME}.tar.bz2"
    f.write_bytes(archive)
    r = install(tmp_path / "models", catalog, "--from", f)
    assert r.returncode == 0, r.stderr
    assert f"catalog pack {NAME}, sha256 matched" in r.stdout, r.stdout


def test_an_unreachable_network_fails_fast(tmp_path):
    # nothing listens on port 1 of loopback; 192.0.2.1 (TEST-NET-1) is not routed
    for base in ["http://127.0.0.1:1", "http://192.0.2.1"]:
        t = time.monotonic()
        r = subprocess.run([SISD, "models", "install", "--defaults", "--base-url", base, "--connect-timeout-s", "2",
                            "--models-dir", tmp_path / "models"], capture_output=True, text=True, env=env(), timeout=60)
        took = time.monotonic() - t
        assert r.returncode == 1, r.stderr
        assert "cannot connect" in r.stderr, r.stderr
        assert took < 10, took
    assert not list((tmp_path / "models").iterdir())


def test_the_server_warns_about_test_packs(server, models_dir):
    h = requests.get(server.base + "/health", timeout=5).json()
    assert sorted(h["test_packs"]) == ["zh-tiny-ctc-offline", "zh-tiny-ctc-streaming"]
    assert h["warning"] == "serving test packs that only recognise synthetic test speech"
    assert {p["name"]: p["test_only"] for p in h["packs"]} == {
        "zh-tiny-ctc-offline": True, "zh-tiny-ctc-streaming": True, "silero-vad": False}
    assert "serving test packs that only recognise synthetic test speech" in server.log_path.read_text()
    lst = subprocess.run([SISD, "models", "list", "--models", models_dir], capture_output=True, text=True).stdout
    marked = [line.split("\t")[0] for line in lst.splitlines() if "TEST PACK" in line]
    assert sorted(marked) == ["zh-tiny-ctc-offline", "zh-tiny-ctc-streaming"], lst
