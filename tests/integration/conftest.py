"""Shared fixtures: a real sisd on loopback with the committed test packs and
the real Silero VAD from ../shared, installed through `sisd models install`."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SISD = Path(os.environ.get("SISD_BIN", ROOT / "target" / "release" / "sisd"))
AMR_ENCODE = Path(os.environ.get("AMR_ENCODE_BIN", ROOT / "target" / "release" / "amr-encode"))
HELDOUT = Path(os.environ.get("SIS_HELDOUT_DIR", ROOT / "target" / "heldout"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_packs(models_dir: Path):
    for src in [ROOT / "testdata/models/zh-tiny-ctc-offline", ROOT / "testdata/models/zh-tiny-ctc-streaming",
                SHARED / "models/silero_vad"]:
        subprocess.run([SISD, "models", "install", "--from", src, "--models-dir", models_dir],
                       check=True, capture_output=True)


def cli(env, *args, stdin=None):
    """Runs an operator command (`sisd projects|users|credentials ...`); returns its JSON lines."""
    r = subprocess.run([SISD, *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def sis_store(d: Path, project_id: str, domain="acme", name="cn-north-4"):
    """A master key in `d` and a store in `d/data` holding one project and one
    AK/SK credential for it; returns (env for sisd, the credential)."""
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (d / "mk").write_text(key)
    env = {"SIS_DATA_DIR": str(d / "data"), "SIS_MASTER_KEY_FILE": str(d / "mk")}
    cli(env, "projects", "create", "--domain", domain, "--name", name, "--id", project_id)
    cred = cli(env, "credentials", "create", "--project", project_id)[0]
    return env, cred


class Server:
    def __init__(self, models, data_dir, extra=(), log=None, env=None, port=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [SISD, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data_dir, *extra]
        for m in models:
            args += ["--models", m]
        self.log_path = log
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "w") if log else subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sisd exited with {self.proc.returncode}")
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("sisd did not become healthy")

    def short_audio(self, data: bytes, audio_format: str, prop: str, project="p1", **config):
        body = {"data": base64.b64encode(data).decode(), "config": {"audio_format": audio_format, "property": prop, **config}}
        return requests.post(f"{self.base}/v1/{project}/asr/short-audio", data=json.dumps(body),
                             headers={"Content-Type": "application/json"}, timeout=60)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    install_packs(d)
    return d


@pytest.fixture(scope="session")
def server(models_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    s = Server([models_dir], data, log=data / "sisd.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def heldout():
    if not (HELDOUT / "manifest.tsv").is_file():
        subprocess.run(["python3", ROOT / "tools/heldout/make_heldout.py", HELDOUT], check=True)
    rows = []
    for line in (HELDOUT / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        if line:
            uid, kind, text, voice = line.split("\t")
            rows.append({"id": uid, "kind": kind, "text": text})
    return HELDOUT, rows


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
    return d[len(b)]


def _pg_bin():
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").is_file():
            return d
    raise RuntimeError("PostgreSQL server binaries not found: run ./scripts/setup")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL cluster of its own (initdb + pg_ctl, loopback only,
    trust auth, fsync off); yields the store URL of an empty database."""
    bin_dir = _pg_bin()
    # not under pytest's temporary root: that is private to the current user
    root = Path(tempfile.mkdtemp(prefix="sis-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        subprocess.run(["chown", "postgres", root], check=True)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    db = root / "db"
    subprocess.run([*as_user, bin_dir / "initdb", "-D", db, "-A", "trust", "-U", "sis", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", db, "-l", root / "log", "-w", "start", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "sis", "-d", "postgres",
                        "-c", "CREATE DATABASE sis"], check=True, capture_output=True)
        yield f"postgres://sis@127.0.0.1:{port}/sis"
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", db, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
