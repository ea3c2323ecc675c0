"""Every input in ../shared/regressions that once ended or broke the server
(issue 11), replayed against one real sisd, which must answer each with 200 or
a 4xx SIS error and stay alive; plus the tiny-audio cases of finding 1 (the
shortest inputs of every format, on the offline and the streaming path)."""

import json
import re

import pytest
import requests
import websocket

from conftest import ROOT, SHARED, Server

# one folder per finding in ../shared/regressions; the project's own fuzz finds
REGRESSION_DIRS = sorted(p for p in (SHARED / "regressions").iterdir() if p.is_dir()) + [ROOT / "testdata/regressions"]
# name prefix → the audio_format it was sent as (README of each folder)
FORMATS = {"aac_adts": "aac", "aac_m4a_frag": "aac", "aac_m4a": "aac"}


def regression_files():
    out = []
    for folder in REGRESSION_DIRS:
        for f in sorted(folder.glob("*.bin")):
            prefix = re.sub(r"-\d+$", "", f.stem)
            out.append(pytest.param(f, FORMATS.get(prefix, prefix), id=f"{folder.name}/{f.name}"))
    return out


def prop_for(fmt):
    return "chinese_8k_common" if "8k" in fmt or fmt == "amr" else "chinese_16k_common"


@pytest.fixture(scope="module")
def srv(models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("regressions")
    s = Server([models_dir], d / "data", extra=["--no-probe"], log=d / "sisd.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def offline_only(models_dir, tmp_path_factory):
    """Only the offline pack: real-time sessions use it (finding 1, RASR case)."""
    d = tmp_path_factory.mktemp("regressions-offline")
    packs = [p for p in models_dir.iterdir() if p.is_dir() and "streaming" not in p.name]
    s = Server(packs, d / "data", extra=["--no-probe"], log=d / "sisd.log")
    yield s
    s.stop()


def alive(s, case):
    assert s.proc.poll() is None, f"sisd died on {case}: exit {s.proc.returncode}"
    assert requests.get(s.base + "/health", timeout=10).status_code == 200, case


def answered(r, case):
    """200 with a result, or a 4xx SIS error body."""
    assert r.status_code == 200 or 400 <= r.status_code < 500, (case, r.status_code, r.text)
    body = r.json()
    if r.status_code == 200:
        assert "result" in body and "trace_id" in body, (case, body)
    else:
        assert body["error_code"].startswith(("SIS.", "APIG.")), (case, body)
    return body


@pytest.mark.parametrize("path,fmt", regression_files())
def test_shared_regression_input(srv, path, fmt):
    r = srv.short_audio(path.read_bytes(), fmt, prop_for(fmt))
    answered(r, path.name)
    alive(srv, path.name)


def test_finding1_exact_request(srv):
    """The exact request of finding 1: two bytes of 16 kHz PCM."""
    body = {"data": "AQA=", "config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_common"}}
    r = requests.post(srv.base + "/v1/p1/asr/short-audio", data=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["text"] == ""
    alive(srv, "AQA=")


RAW = {"pcm16k16bit": 2, "pcm8k16bit": 2, "ulaw16k8bit": 1, "ulaw8k8bit": 1, "alaw16k8bit": 1, "alaw8k8bit": 1}


@pytest.mark.parametrize("fmt", sorted(RAW))
def test_every_short_length(srv, fmt):
    """Every length from 1 sample to past the old crash threshold (560 samples
    at 16 kHz, 272 at 8 kHz), in every raw format: 200, empty or not."""
    width = RAW[fmt]
    for n in list(range(1, 40)) + list(range(250, 600, 7)):
        data = bytes((i * 37) % 256 for i in range(n * width))
        r = srv.short_audio(data, fmt, prop_for(fmt), add_punc="yes", need_word_info="yes")
        assert r.status_code == 200, (fmt, n, r.text)
    alive(srv, fmt)


def test_tiny_containers(srv, tmp_path):
    """A one-sample WAV and one AMR frame (finding 1's other formats)."""
    import struct
    one = struct.pack("<h", 1000)
    wav = (b"RIFF" + struct.pack("<I", 36 + len(one)) + b"WAVEfmt " +
           struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(one)) + one)
    answered(srv.short_audio(wav, "wav", "chinese_16k_common"), "1-sample wav")
    # one AMR-NB 12.2 kbit/s frame (type 7: 32 bytes with its header)
    amr = b"#!AMR\n" + bytes([7 << 3 | 4]) + bytes(31)
    answered(srv.short_audio(amr, "amr", "chinese_8k_common"), "1-frame amr")
    alive(srv, "tiny containers")


@pytest.mark.parametrize("mode", ["short-stream", "continue-stream", "sentence-stream"])
def test_offline_pack_one_frame_then_end(offline_only, mode):
    """With only the offline pack, one 320-byte frame then END (finding 1)."""
    url = offline_only.base.replace("http", "ws") + f"/v1/p1/rasr/{mode}"
    ws = websocket.create_connection(url, timeout=30)
    for fmt, frame in [("pcm16k16bit", b"\x01\x00" * 160), ("pcm8k16bit", b"\x01\x00" * 160),
                       ("alaw8k8bit", b"\xd5" * 7), ("pcm16k16bit", b"")]:
        prop = prop_for(fmt)
        ws.send(json.dumps({"command": "START", "config": {"audio_format": fmt, "property": prop}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        if frame:
            ws.send_binary(frame)
        ws.send(json.dumps({"command": "END"}))
        while True:
            m = json.loads(ws.recv())
            assert m["resp_type"] not in ("ERROR", "FATAL_ERROR"), m
            if m["resp_type"] == "END":
                break
        alive(offline_only, (mode, fmt))
    ws.close()


def rss_mb(pids):
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def test_vad_settings_do_not_grow_memory(srv):
    """Found by ./scripts/fuzz: every distinct (vad_tail, max_seconds) of a
    continue-stream session left up to 16 idle Silero VADs pooled for ever;
    a client cycling through settings grew a worker by ~20 MB/s with no
    session open. The pool is bounded in all: memory levels off."""
    url = srv.base.replace("http", "ws") + "/v1/p1/rasr/continue-stream"
    ws = websocket.create_connection(url, timeout=30)

    def sessions(keys):
        for tail, max_s in keys:
            ws.send(json.dumps({"command": "START", "config": {
                "audio_format": "pcm16k16bit", "property": "chinese_16k_common",
                "vad_tail": tail, "max_seconds": max_s}}))
            assert json.loads(ws.recv())["resp_type"] == "START"
            ws.send_binary(b"\0" * 3200)
            ws.send(json.dumps({"command": "END"}))
            while json.loads(ws.recv())["resp_type"] != "END":
                pass

    health = requests.get(srv.base + "/health", timeout=10).json()
    pids = [srv.proc.pid] + [w["pid"] for w in health.get("engine_workers", []) if w.get("pid")]
    keys = [(100 + 7 * i, 1 + i % 60) for i in range(240)]
    sessions(keys[:60])
    warm = rss_mb(pids)
    sessions(keys[60:])
    grown = rss_mb(pids) - warm
    ws.close()
    assert grown < 100, f"{grown:.0f} MB more after 180 more distinct VAD settings"
    alive(srv, "vad settings")
