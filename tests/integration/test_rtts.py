"""Real-time speech synthesis, `wss /v1/{project_id}/rtts` (issue 15): START
with the text and config of `/tts`, START back, the audio as binary
messages sentence by sentence, END, and a close.

1. The WebSocket-generation SDK's `RttsClient` (../shared, AK/SK) works
   unchanged and receives the audio; an error reaches its `on_error`.
2. Raw websocket-client: the binary messages one after the other are the
   REST `/tts` pcm answer for the same text and config, byte for byte, at
   8000 and 16000 Hz (effects, SSML pauses and several sentences included).
3. Timing: on a 200-character text the first audio message arrives before
   half of the time to END (printed).
4. Bad inputs each get the SIS error as an ERROR / FATAL_ERROR message and
   a close, and the server keeps serving.
5. A client that vanishes mid-synthesis: the server stays healthy and no
   espeak-ng process of it is left after a second (espeak-ng slowed by a
   wrapper so that processes are running when the client goes).
6. A Node `ws` client with a token.
"""

import base64
import json
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import websocket

from conftest import ROOT, SHARED, Server, cli, sis_store

PID = "3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
PASSWORD = "correct-horse-battery"
NODE_DIR = ROOT / "tests" / "node"

SENTENCES = ("今天天气很好，阳光明媚。我们一起去公园散步吧。公园里有很多人在锻炼身体。"
             "有的人在跑步，有的人在打太极拳。湖边的柳树已经发芽了。小朋友们在草地上放风筝。"
             "中午我们在湖边的小饭馆吃午饭。饭馆的老板非常热情。他给我们推荐了几道拿手好菜。"
             "吃完饭以后，我们又去了附近的博物馆。博物馆里展出了很多珍贵的文物，有青铜器和瓷器。"
             "傍晚的时候，我们坐公交车回家。这真是愉快的一天，大家都很开心。明天我们还要再来。下次再见。")
TEXT_200 = SENTENCES[:200]


def rest_pcm(base, text, project="p1", **config):
    body = {"text": text, "config": {**config, "audio_format": "pcm"}}
    r = requests.post(f"{base}/v1/{project}/tts", data=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["result"]["data"])


def connect(base, project="p1", header=None):
    return websocket.create_connection(base.replace("http://", "ws://") + f"/v1/{project}/rtts",
                                       timeout=30, header=header)


def start(text, **config):
    m = {"command": "START", "text": text}
    if config:
        m["config"] = config
    return json.dumps(m)


class Exchange:
    """What one connection received: text messages, audio messages, the
    close code, and the times (from the last message sent) of the first
    audio message and of END."""

    def __init__(self, ws, *sends):
        for x in sends:
            if isinstance(x, bytes):
                ws.send_binary(x)
            else:
                ws.send(x)
        t0 = time.perf_counter()
        self.msgs, self.chunks, self.close, self.first_s, self.end_s = [], [], None, None, None
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                if self.first_s is None:
                    self.first_s = time.perf_counter() - t0
                # audio only between START and END
                assert self.msgs and self.msgs[-1]["resp_type"] == "START", self.msgs
                self.chunks.append(data)
            elif op == websocket.ABNF.OPCODE_TEXT:
                m = json.loads(data)
                assert m.get("trace_id"), m
                if m["resp_type"] == "END":
                    self.end_s = time.perf_counter() - t0
                self.msgs.append(m)
            elif op == websocket.ABNF.OPCODE_CLOSE:
                self.close = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                break
        try:
            ws.close()
        except Exception:
            pass

    @property
    def audio(self):
        return b"".join(self.chunks)

    @property
    def types(self):
        return [m["resp_type"] for m in self.msgs]


def rtts(base, *sends, project="p1"):
    return Exchange(connect(base, project), *sends)


def still_serves(server):
    assert len(rest_pcm(server.base, "好")) > 1000
    h = requests.get(server.base + "/health", timeout=5).json()
    assert h["status"] == "ok"


# ---- 1. the WebSocket-generation SDK, unchanged ----

@pytest.fixture(scope="module")
def signed(models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("rtts-sdk")
    env, cred = sis_store(d, PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    yield dict(server=server, cred=cred, dir=d)
    server.stop()


def sdk_client(signed, callback):
    from huaweicloud_sis.bean.sis_config import SisConfig
    from huaweicloud_sis.client.rtts_client import RttsClient

    c = signed["cred"]
    return RttsClient(ak=c["access_key"], sk=c["secret_key"], use_aksk=True, region="cn-north-4",
                      project_id=PID, callback=callback, config=SisConfig(),
                      service_endpoint="ws://" + signed["server"].base.split("//", 1)[1])


def test_sdk_rtts_client_unchanged(signed, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the SDK writes huaweicloud_sis.log here
    sys.path.insert(0, str(SHARED / "clients"))
    from huaweicloud_sis.bean.callback import RttsCallBack
    from huaweicloud_sis.bean.rtts_request import RttsRequest

    class Collect(RttsCallBack):
        def __init__(self):
            self.audio, self.started, self.ended, self.errors, self.closed = bytearray(), [], [], [], 0

        def on_start(self, message):
            self.started.append(message)

        def on_response(self, data):
            assert self.started and not self.ended
            self.audio += data

        def on_end(self, message):
            self.ended.append(message)

        def on_error(self, error):
            self.errors.append(str(error))

        def on_close(self):
            self.closed += 1

    text = "欢迎使用实时语音合成服务。今天天气很好！"
    for rate, voice in (("8000", "chinese_xiaoyan_common"), ("16000", "chinese_xiaoyu_common")):
        cb = Collect()
        req = RttsRequest(text)
        req.set_sample_rate(rate)
        req.set_property(voice)
        sdk_client(signed, cb).synthesis(req)
        assert cb.started and cb.ended and not cb.errors, (cb.started, cb.ended, cb.errors)
        assert "trace id is" in cb.started[0]
        want = rest_pcm(server.base, text, sample_rate=rate, property=voice)
        assert len(cb.audio) > 2 * int(rate) and bytes(cb.audio) == want, (len(cb.audio), len(want))
        print(f"\nRttsClient at {rate} Hz: {len(cb.audio)} bytes, {len(cb.audio) / 2 / int(rate):.2f} s, "
              "equal to /tts pcm")
    # an error reaches on_error with its SIS code
    cb = Collect()
    bad = RttsRequest("你好")
    bad.set_volume(101)
    sdk_client(signed, cb).synthesis(bad)
    assert len(cb.errors) == 1 and not cb.ended and not cb.audio, cb.errors
    assert json.loads(cb.errors[0])["error_code"] == "SIS.0032"
    # the log has one line per connection, never the text
    log = (signed["dir"] / "sisd.log").read_text()
    lines = [x for x in log.splitlines() if 'api="rtts"' in x]
    assert len(lines) == 3, lines
    assert 'end="end"' in lines[0] and "first_audio_ms=" in lines[0] and "audio_s=" in lines[0]
    assert 'end="refused"' in lines[2] and "SIS.0032" in lines[2]
    assert "欢迎" not in log


# ---- 2. the audio is the REST pcm answer ----

CASES = [
    ("defaults", "今天天气很好。我们去公园散步吧！", {}),
    ("effects", "今天天气很好。我们去公园散步吧！", {"speed": 200, "pitch": -150, "volume": 100,
                                        "property": "chinese_huaxiaogang_common"}),
    ("quiet", "第一句话。第二句比第一句长一些，还有逗号。三。", {"volume": 10}),
    ("ssml", '<speak>你好<break time="700ms"/>世界。再见！</speak>', {}),
    ("english", "Hello there. This is a test of real time synthesis!", {"property": "english_amy_common"}),
    ("nothing to read", "。。。", {}),
]


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("name,text,config", CASES, ids=[c[0] for c in CASES])
def test_chunks_are_the_rest_pcm(server, rate, name, text, config):
    cfg = {**config, "sample_rate": str(rate)}
    x = rtts(server.base, start(text, **cfg))
    assert x.types == ["START", "END"], x.msgs
    assert x.msgs[1]["reason"] == "NORMAL" and x.msgs[0]["trace_id"] == x.msgs[1]["trace_id"]
    assert x.close == 1000
    # 100 ms messages (a sentence's last one shorter), whole samples
    assert all(0 < len(c) <= rate // 5 and len(c) % 2 == 0 for c in x.chunks), {len(c) for c in x.chunks}
    want = rest_pcm(server.base, text, **cfg)
    assert len(x.audio) == len(want) and x.audio == want, (len(x.audio), len(want))


def test_audio_format_pcm_explicitly_and_sample_rate_as_number(server):
    x = rtts(server.base, start("你好。", audio_format="pcm", sample_rate=16000))
    assert x.types == ["START", "END"] and x.audio == rest_pcm(server.base, "你好。", sample_rate="16000")


# ---- 3. first audio well before the end ----

def test_first_audio_before_half_the_time(server):
    assert len(TEXT_200) == 200
    runs = []
    for _ in range(3):
        x = rtts(server.base, start(TEXT_200, sample_rate="16000"))
        assert x.types == ["START", "END"]
        runs.append((x.first_s, x.end_s, len(x.audio) / 32000))
    print("\n200 characters at 16 kHz:")
    for first, total, audio_s in runs:
        print(f"  first audio {first * 1000:.0f} ms, END {total * 1000:.0f} ms (ratio {first / total:.2f}), "
              f"{audio_s:.1f} s of audio")
    ratio = statistics.median(first / total for first, total, _ in runs)
    assert ratio < 0.5, runs


# ---- 4. bad inputs ----

LONG = "今天天气很好，我们一起去公园散步。" * 29  # 493 characters, many sentences

BAD = [
    ("bad JSON", ["{not json"], "ERROR", "SIS.0032", "not valid JSON"),
    ("not an object", ["[1]"], "ERROR", "SIS.0032", "JSON object"),
    ("binary before START", [b"\0" * 320], "ERROR", "SIS.0032", "binary message before START"),
    ("END instead of START", ['{"command": "END"}'], "ERROR", "SIS.0032", "expected START"),
    ("no command", ['{"text": "你好"}'], "ERROR", "SIS.0012", "'command' is required"),
    ("no text", ['{"command": "START"}'], "ERROR", "SIS.0012", "'text' is required"),
    ("unknown voice", [start("好", property="chinese_nobody_common")], "ERROR", "SIS.0032",
     "'property' chinese_nobody_common"),
    ("empty text", [start("")], "ERROR", "SIS.0032", "text cannot be empty"),
    ("501 characters", [start("好" * 501)], "ERROR", "SIS.0032", "501 characters"),
    ("bad rate", [start("好", sample_rate="11025")], "ERROR", "SIS.0402", "'sample_rate' is invalid"),
    ("8 kHz of a 16 kHz voice", [start("好", property="chinese_huanvxia_literature")], "ERROR", "SIS.0402",
     "16000 only"),
    ("wav", [start("好", audio_format="wav")], "ERROR", "SIS.0032", "streams pcm only"),
    ("mp3", [start("好", audio_format="mp3")], "ERROR", "SIS.0032", "streams pcm only"),
    ("bad format", [start("好", audio_format="ogg")], "ERROR", "SIS.0032", "'audio_format' is invalid"),
    ("speed 501", [start("好", speed=501)], "ERROR", "SIS.0032", "'speed' is invalid"),
    ("pitch -501", [start("好", pitch=-501)], "ERROR", "SIS.0032", "'pitch' is invalid"),
    ("volume a string", [start("好", volume="loud")], "ERROR", "SIS.0032", "must be an integer"),
    ("subtitle", [start("好", subtitle="word_level")], "ERROR", "SIS.0032", "'subtitle' is not supported"),
    ("bad SSML", [start("<speak>你好")], "ERROR", "SIS.0032", "SSML"),
]


@pytest.mark.parametrize("name,sends,kind,code,msg", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_its_sis_error(server, name, sends, kind, code, msg):
    x = rtts(server.base, *sends)
    assert x.types == [kind], x.msgs
    e = x.msgs[0]
    assert set(e) == {"resp_type", "trace_id", "error_code", "error_msg"}, e
    assert e["error_code"] == code and msg in e["error_msg"], e
    assert not x.chunks and x.close == 1000
    still_serves(server)


@pytest.mark.parametrize("second", [start("再来一次。"), "{not json", b"\0" * 320], ids=["START", "garbage", "binary"])
def test_a_message_during_synthesis_ends_it(server, second):
    # slow speech: the synthesis is still under way when the second message comes
    x = rtts(server.base, start(LONG, speed=-500, sample_rate="16000"), second)
    assert x.types == ["START", "ERROR", "END"], x.msgs
    assert x.msgs[1]["error_code"] == "SIS.0032" and "incorrect time sequence" in x.msgs[1]["error_msg"]
    assert x.msgs[2]["reason"] == "ERROR" and len({m["trace_id"] for m in x.msgs}) == 1
    assert x.close == 1000
    full = rest_pcm(server.base, LONG, speed=-500, sample_rate="16000")
    assert len(x.audio) < len(full) and full.startswith(x.audio)
    still_serves(server)


def test_nothing_sent_is_an_idle_timeout(server):
    t0 = time.time()
    x = Exchange(connect(server.base))
    waited = time.time() - t0
    assert x.types == ["FATAL_ERROR"] and x.msgs[0]["error_code"] == "SIS.0304", x.msgs
    assert x.msgs[0]["error_msg"] == "wait voice timeout"
    assert 19 < waited < 25 and x.close == 1000
    still_serves(server)


def test_pings_are_answered_while_waiting(server):
    ws = connect(server.base)
    ws.ping(b"x")
    op, data = ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_PONG and data == b"x"
    x = Exchange(ws, start("你好。"))
    assert x.types == ["START", "END"]


# ---- 5. a client that vanishes ----

SLOW_ESPEAK = """#!/usr/bin/env python3
# espeak-ng, 2 s late for each sentence (not for the server's probe)
import os, sys, time
if "--stdout" in sys.argv:
    time.sleep(2)
os.execvp("espeak-ng", ["espeak-ng", *sys.argv[1:]])
"""


def espeak_children(pid):
    """The espeak-ng processes (the slow wrapper included) whose parent is
    `pid` and that are not zombies: pgrep -P, then /proc for the state."""
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "espeak-ng"], capture_output=True, text=True).stdout
    alive = []
    for p in out.split():
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(int(p))
    return alive


def test_a_vanishing_client_leaves_no_espeak_running(models_dir, tmp_path):
    wrapper = tmp_path / "slow-espeak-ng"
    wrapper.write_text(SLOW_ESPEAK)
    wrapper.chmod(0o755)
    s = Server([models_dir], tmp_path / "data", log=tmp_path / "sisd.log",
               extra=["--no-probe", "--espeak-ng", str(wrapper), "--tts-max-processes", "2"])
    try:
        for how in ("reset", "close"):
            ws = connect(s.base)
            ws.send(start(LONG))
            assert json.loads(ws.recv())["resp_type"] == "START"
            time.sleep(0.8)
            running = espeak_children(s.proc.pid)
            assert len(running) == 2, running  # both process slots busy
            if how == "reset":
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.sock.close()
            else:
                ws.close()
            time.sleep(1.0)
            left = espeak_children(s.proc.pid)
            print(f"\nclient gone ({how}): {len(running)} espeak-ng running before, {len(left)} a second after")
            assert left == [], left
            h = requests.get(s.base + "/health", timeout=5).json()
            assert h["status"] == "ok" and h["rtts_connections"] == 0, h
        # the slots are free: a synthesis takes one sentence's delay
        t0 = time.time()
        assert len(rest_pcm(s.base, "好")) > 1000
        assert time.time() - t0 < 4
    finally:
        s.stop()
    log = (tmp_path / "sisd.log").read_text()
    gone = [x for x in log.splitlines() if 'api="rtts"' in x]
    assert len(gone) == 2 and all('end="client_gone"' in x for x in gone), gone


# ---- 6. Node ws with a token ----

def test_node_ws_with_token(signed, server, tmp_path):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}}}, "scope": {"project": {"id": PID}}}}
    tok = requests.post(signed["server"].base + "/v3/auth/tokens", json=body).headers["X-Subject-Token"]
    url = signed["server"].base.replace("http", "ws") + f"/v1/{PID}/rtts"
    text = "你好，世界。实时语音合成。"
    out = tmp_path / "out.pcm"
    cfg = json.dumps({"sample_rate": "16000", "property": "chinese_xiaoqi_common"})
    r = subprocess.run(["node", NODE_DIR / "rtts_client.js", url, tok, text, cfg, out], capture_output=True,
                       text=True, timeout=60, cwd=NODE_DIR)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [m.get("resp_type", "close") for m in msgs] == ["START", "END", "close"], msgs
    assert msgs[2]["close"] == 1000
    want = rest_pcm(server.base, text, sample_rate="16000", property="chinese_xiaoqi_common")
    assert out.read_bytes() == want
    # a bad token is refused before the upgrade
    r = subprocess.run(["node", NODE_DIR / "rtts_client.js", url, "sis1.bad", text, cfg, out],
                       capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert r.returncode == 3 and json.loads(r.stdout)["http_status"] == 401
