"""A new user's first run: a fresh clone with nothing beside it (no ../shared,
no .venv, no test packages of its own), `./scripts/serve` on its defaults, then
every RASR mode, the README quickstart run as it stands (short audio and a
job of the 25 s sample clip), and the test-pack warning everywhere it must be.

The model download is pointed at an unreachable address, as on a machine
without network: serve must fall back to the test packs and say so. Runs
after the integration suite (`./scripts/test`): it builds the clone's sisd
into a target directory of its own, seeded with a copy of ours so that only
the workspace crates are compiled again, and serves on 127.0.0.1:8080, the
README's address.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import wave
from pathlib import Path

import pytest
import requests
import websocket

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8080"


def quickstart_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- quickstart -->\n```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no quickstart block"
    return m.group(1)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    top = tmp_path_factory.mktemp("fresh")
    assert not (top / "shared").exists()
    clone = top / "sisd"
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    assert not (clone.parent / "shared").exists()
    target = top / "target"
    target.mkdir()
    if (ROOT / "target/release").is_dir():
        # registry crates compiled already; the clone's own crates build again
        subprocess.run(["cp", "-a", ROOT / "target/release", target / "release"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIS_")}
    env.update(CARGO_TARGET_DIR=str(target), SIS_MODEL_BASE_URL="http://127.0.0.1:9")
    log = top / "serve.log"
    try:
        requests.get(BASE + "/health", timeout=1)
        pytest.fail("something already listens on 127.0.0.1:8080, the README's address")
    except requests.ConnectionError:
        pass
    proc = subprocess.Popen(["./scripts/serve"], cwd=clone, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 40 * 60
    try:
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                if requests.get(BASE + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        yield dict(clone=clone, log=log, env=env)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(target, ignore_errors=True)


def test_only_runtime_prerequisites(fresh):
    clone = fresh["clone"]
    assert not (clone / ".venv").exists(), "serve created the test virtualenv"
    assert not (clone / "tests/node/node_modules").exists(), "serve installed the Node test clients"
    assert (clone / "third_party/silero_vad/silero_vad.onnx").is_file()
    assert "[setup] ok (runtime)" in fresh["log"].read_text()


def test_vad_and_test_pack_warning(fresh):
    clone = fresh["clone"]
    sisd = Path(fresh["env"]["CARGO_TARGET_DIR"]) / "release/sisd"
    # on its defaults, from the clone, as a user would run it
    listing = subprocess.run([sisd, "models", "list"], cwd=clone, capture_output=True, text=True,
                             check=True).stdout
    assert "silero-vad" in listing, listing
    assert re.search(r"test", listing, re.I), listing
    health = requests.get(BASE + "/health", timeout=5).json()
    assert re.search("synthetic test speech", json.dumps(health, ensure_ascii=False)), health
    log = fresh["log"].read_text()
    assert "could not download the real model packs" in log, log[-3000:]
    assert "synthetic test speech" in log


def sample_pcm(clone):
    with wave.open(str(clone / "sisd-data/samples/sample-zh.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert 18 <= w.getnframes() / 16000 <= 30
        return w.readframes(w.getnframes())


@pytest.mark.parametrize("mode", ["short-stream", "continue-stream", "sentence-stream"])
def test_every_rasr_mode(fresh, mode):
    pcm = sample_pcm(fresh["clone"])
    if mode == "short-stream":
        pcm = pcm[: 16000 * 2 * 8]
    ws = websocket.create_connection(f"ws://127.0.0.1:8080/v1/my-project/rasr/{mode}", timeout=60)
    ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                       "property": "chinese_16k_common"}}))
    first = json.loads(ws.recv())
    assert first["resp_type"] == "START", first
    for i in range(0, len(pcm), 3200):
        ws.send_binary(pcm[i:i + 3200])
    ws.send(json.dumps({"command": "END", "cancel": "false"}))
    texts = []
    while True:
        m = json.loads(ws.recv())
        assert m["resp_type"] != "FATAL_ERROR" and m["resp_type"] != "ERROR", m
        if m["resp_type"] == "RESULT":
            texts += [s["result"]["text"] for s in m["segments"] if s["is_final"]]
        if m["resp_type"] == "END":
            break
    ws.close()
    assert "".join(texts), f"{mode}: no text"
    if mode == "continue-stream":
        assert len(texts) >= 2, f"{mode}: the VAD split nothing: {texts}"
    if mode == "sentence-stream":
        # the session ends with the first sentence the VAD closes
        assert len(texts) == 1 and len(texts[0]) < 20, texts


def test_readme_quickstart(fresh):
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart_block()], cwd=fresh["clone"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    short, job = lines[0], lines[-1]
    assert short["result"]["text"], short
    assert job["status"] == "FINISHED", job
    assert "".join(s["result"]["text"] for s in job["segments"]), job
