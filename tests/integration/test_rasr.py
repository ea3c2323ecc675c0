"""Real-time recognition over WebSocket (issue 4): the three RASR modes driven
by real clients (Python websocket-client signed like the official WS SDK, and
Node ws with a token) against a real sisd with the streaming test pack and
the real Silero VAD; exact transcripts of held-out synthetic speech, event
order and timing fields, protocol errors, admission control."""

import json
import os
import subprocess
import time
import wave

import pytest
import requests
import websocket

from conftest import ROOT, Server, cli, sis_store
from signer import sdk_date, sign

PID = "0123456789abcdef0123456789abcdef"
PASSWORD = "correct-horse-battery"
NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def rt(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("rasr")
    env, cred = sis_store(d, PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe", "--max-streams", "8"],
                    log=d / "sisd.log", env=env)
    root, rows = heldout
    yield dict(server=server, cred=cred, root=root, rows=rows, dir=d)
    server.stop()


def pcm16k(rt, uid, lead_s=0.5, tail_s=1.0):
    with wave.open(str(rt["root"] / "16k" / f"{uid}.wav")) as w:
        assert w.getframerate() == 16000
        data = w.readframes(w.getnframes())
    out = b"\0" * int(32000 * lead_s) + data + b"\0" * int(32000 * tail_s)
    # whole 3200-byte chunks: a last frame under 320 bytes is outside the SIS bounds
    return out + b"\0" * (-len(out) % 3200)


def connect(rt, mode, project=PID):
    base = rt["server"].base
    host = base.split("//", 1)[1]
    path = f"/v1/{project}/rasr/{mode}"
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(rt["cred"]["access_key"], rt["cred"]["secret_key"], "GET", path, None, h, b"")
    del h["host"]
    return websocket.create_connection("ws://" + host + path, header=h, timeout=30)


SDK_CONFIG = {"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "add_punc": "no", "digit_norm": "no",
              "vad_head": 10000, "vad_tail": 500, "max_seconds": 30, "interim_results": "no", "vad_threshold": 0,
              "need_word_info": "no"}


def session(ws, audio, config=None, pace_s=0.0, end='{"command": "END", "cancel": "false"}'):
    """START, 3200-byte chunks, END (the SDK's literal END); returns all messages up to END."""
    ws.send(json.dumps({"command": "START", "config": {**SDK_CONFIG, **(config or {})}}))
    msgs = [json.loads(ws.recv())]
    assert msgs[0]["resp_type"] == "START", msgs
    for i in range(0, len(audio), 3200):
        ws.send_binary(audio[i:i + 3200])
        if pace_s:
            time.sleep(pace_s)
    ws.send(end)
    while True:
        m = json.loads(ws.recv())
        msgs.append(m)
        assert m.get("trace_id") == msgs[0]["trace_id"], m
        if m["resp_type"] in ("END", "FATAL_ERROR"):
            return msgs


def finals(msgs):
    return [s for m in msgs if m["resp_type"] == "RESULT" for s in m["segments"] if s["is_final"]]


def check_sentences(msgs, rows, audio):
    """One exact final per sentence, in order, with times inside the stream and word times inside the segment."""
    segs = finals(msgs)
    assert [s["result"]["text"] for s in segs] == [r["text"] for r in rows]
    ends = [0] + [s["end_time"] for s in segs]
    for prev_end, s in zip(ends, segs):
        assert prev_end <= s["start_time"] < s["end_time"] <= len(audio) * 1000 // 32000
        words = s["result"]["word_info"]
        assert "".join(w["word"] for w in words) == s["result"]["text"]
        assert all(s["start_time"] - 700 <= w["start_time"] < w["end_time"] <= s["end_time"] + 900 for w in words)


def sentences(rt, n):
    return [r for r in rt["rows"] if r["kind"] == "sentence"][:n]


def test_short_stream_exact(rt):
    ws = connect(rt, "short-stream")
    for r in sentences(rt, 4) + [x for x in rt["rows"] if x["kind"] == "number"][:2]:
        audio = pcm16k(rt, r["id"])
        msgs = session(ws, audio)
        assert [m["resp_type"] for m in msgs] == ["START", "RESULT", "END"]
        (seg,) = finals(msgs)
        assert seg["result"]["text"] == r["text"]
        assert seg["start_time"] == 0 and abs(seg["end_time"] - len(audio) * 1000 // 32000) <= 1
        assert msgs[-1]["reason"] == "NORMAL"
    ws.close()


def test_continue_stream_splits_sentences(rt):
    rows = sentences(rt, 3)
    audio = b"".join(pcm16k(rt, r["id"], lead_s=0.3, tail_s=1.2) for r in rows)
    ws = connect(rt, "continue-stream")
    msgs = session(ws, audio, {"need_word_info": "yes"})
    assert not [m for m in msgs if m["resp_type"] == "EVENT"]
    check_sentences(msgs, rows, audio)
    ws.close()


def test_sentence_stream_events_and_interim(rt):
    r = sentences(rt, 1)[0]
    audio = pcm16k(rt, r["id"], lead_s=1.0, tail_s=1.5) + pcm16k(rt, sentences(rt, 2)[1]["id"])
    ws = connect(rt, "sentence-stream")
    msgs = session(ws, audio, {"interim_results": "yes"}, pace_s=0.1)
    kinds = [m["resp_type"] + (":" + m["event"] if m["resp_type"] == "EVENT" else "") for m in msgs]
    assert kinds[0] == "START" and kinds[1] == "EVENT:VOICE_START" and kinds[-1] == "END"
    assert kinds.index("EVENT:VOICE_END") == len(kinds) - 3 and kinds[-2] == "RESULT"
    interim = [s for m in msgs if m["resp_type"] == "RESULT" for s in m["segments"] if not s["is_final"]]
    assert interim, "interim_results=yes gave no interim result"
    assert all(r["text"].startswith(s["result"]["text"]) for s in interim[:-1])
    (seg,) = finals(msgs)  # only the first sentence is recognised
    assert seg["result"]["text"] == r["text"]
    start = next(m for m in msgs if m.get("event") == "VOICE_START")["timestamp"]
    end = next(m for m in msgs if m.get("event") == "VOICE_END")["timestamp"]
    assert 700 <= start <= 2000 and start < end == seg["end_time"]
    ws.close()


def test_sentence_stream_exceeded_silence(rt):
    ws = connect(rt, "sentence-stream")
    msgs = session(ws, b"\0" * 32000 * 3, {"vad_head": 1500})
    assert [m.get("event", m["resp_type"]) for m in msgs] == ["START", "EXCEEDED_SILENCE", "END"]
    assert 1500 <= msgs[1]["timestamp"] <= 1700
    ws.close()


def test_node_ws_with_token(rt, tmp_path):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}}}, "scope": {"project": {"id": PID}}}}
    tok = requests.post(rt["server"].base + "/v3/auth/tokens", json=body).headers["X-Subject-Token"]
    r = sentences(rt, 3)[2]
    f = tmp_path / "a.pcm"
    f.write_bytes(pcm16k(rt, r["id"]))
    url = rt["server"].base.replace("http", "ws") + f"/v1/{PID}/rasr/short-stream"
    cfg = json.dumps({"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "digit_norm": "no"})
    out = subprocess.run(["node", NODE_DIR / "rasr_client.js", url, tok, f, cfg], capture_output=True, text=True,
                         timeout=60, cwd=NODE_DIR)
    assert out.returncode == 0, out.stderr
    msgs = [json.loads(x) for x in out.stdout.splitlines()]
    assert [m["resp_type"] for m in msgs] == ["START", "RESULT", "END"]
    assert msgs[1]["segments"][0]["result"]["text"] == r["text"]
    # a bad token is refused before the upgrade
    out = subprocess.run(["node", NODE_DIR / "rasr_client.js", url, "sis1.bad", f, cfg], capture_output=True,
                         text=True, timeout=60, cwd=NODE_DIR)
    assert out.returncode == 3 and json.loads(out.stdout)["http_status"] == 401


def test_protocol_errors_keep_the_connection(rt):
    r = sentences(rt, 1)[0]
    audio = pcm16k(rt, r["id"])
    ws = connect(rt, "short-stream")

    def good():
        assert finals(session(ws, audio))[0]["result"]["text"] == r["text"]

    # audio before START: ERROR, no END
    ws.send_binary(b"\0" * 3200)
    m = json.loads(ws.recv())
    assert (m["resp_type"], m["error_code"]) == ("ERROR", "SIS.0032") and m["trace_id"]
    good()
    # invalid JSON, unknown command, END without START: ERROR
    for text in ["{not json", '{"command":"PAUSE"}', '{"command":"END"}',
                 json.dumps({"command": "START", "config": {**SDK_CONFIG, "vad_tail": 5000}}),
                 json.dumps({"command": "START", "config": {**SDK_CONFIG, "audio_format": "mp3"}}),
                 json.dumps({"command": "START", "config": {**SDK_CONFIG, "property": "chinese_8k_common"}})]:
        ws.send(text)
        m = json.loads(ws.recv())
        expected = "SIS.0301" if "chinese_8k_common" in text else "SIS.0032"
        assert m["resp_type"] == "ERROR" and m["error_code"] == expected, (text, m)
        good()
    # inside a session: START twice, frame too large → ERROR then END(ERROR)
    for bad in ["start", b"\0" * 70000]:
        ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        ws.send_binary(b"\0" * 3200)
        if bad == "start":
            ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
        else:
            ws.send_binary(bad)
        m1, m2 = json.loads(ws.recv()), json.loads(ws.recv())
        assert m1["resp_type"] == "ERROR" and m2 == {**m2, "resp_type": "END", "reason": "ERROR"}, (m1, m2)
        good()
    # cancel
    ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
    json.loads(ws.recv())
    ws.send_binary(audio[:32000])
    ws.send(json.dumps({"command": "END", "cancel": True}))
    m = json.loads(ws.recv())
    assert (m["resp_type"], m["reason"]) == ("END", "CANCEL")
    good()
    # pings are answered
    ws.ping("x")
    good()
    ws.close()


def test_short_and_odd_frames_accepted(rt):
    """Frames under the documented minimum (the SDK's last piece of a file),
    odd-sized PCM frames (a sample split between two frames) and empty frames
    are accepted: the transcript is the same as with whole frames."""
    r = sentences(rt, 1)[0]
    audio = pcm16k(rt, r["id"])
    ws = connect(rt, "short-stream")
    ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    sizes = [1, 99, 3201, 0, 4000, 7, 320, 1601]
    i = k = 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        ws.send_binary(audio[i:i + n])
        i += n
        k += 1
    ws.send('{"command": "END", "cancel": "false"}')
    msgs = []
    while not msgs or msgs[-1]["resp_type"] not in ("END", "FATAL_ERROR"):
        msgs.append(json.loads(ws.recv()))
    assert [m["resp_type"] for m in msgs] == ["RESULT", "END"], msgs
    assert finals(msgs)[0]["result"]["text"] == r["text"]
    ws.close()


def test_admission_control(rt):
    conns = []
    for _ in range(8):
        ws = connect(rt, "short-stream")
        ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        conns.append(ws)
    extra = connect(rt, "short-stream")
    extra.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
    m = json.loads(extra.recv())
    assert (m["resp_type"], m["error_code"]) == ("ERROR", "SIS.0312")
    # an abrupt disconnect frees its place
    conns.pop().sock.close()
    r = sentences(rt, 1)[0]
    deadline = time.time() + 5
    while True:
        extra.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
        m = json.loads(extra.recv())
        if m["resp_type"] == "START" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert m["resp_type"] == "START"
    extra.send(json.dumps({"command": "END", "cancel": True}))
    assert json.loads(extra.recv())["reason"] == "CANCEL"
    for ws in conns:
        ws.close()
    extra.close()
    ws = connect(rt, "short-stream")
    assert finals(session(ws, pcm16k(rt, r["id"])))[0]["result"]["text"] == r["text"]
    ws.close()


def test_idle_timeout_is_fatal(rt):
    ws = connect(rt, "continue-stream")
    ws.send(json.dumps({"command": "START", "config": SDK_CONFIG}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    ws.settimeout(30)
    t0 = time.time()
    m = json.loads(ws.recv())
    assert (m["resp_type"], m["error_code"], m["error_msg"]) == ("FATAL_ERROR", "SIS.0304", "wait voice timeout")
    assert 19 <= time.time() - t0 <= 25
    opcode, _ = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
