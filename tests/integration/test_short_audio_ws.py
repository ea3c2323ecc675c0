"""Short audio over WebSocket, `wss /v1/{project_id}/asr/short-audio`
(SIS-API.md §5, issue 16): the RASR protocol (signed upgrade, START, audio
frames, END), the whole audio recognised at END by the short-audio path, one
final RESULT, EXCEEDED_AUDIO past 60 s, errors as in RASR, several
recognitions per connection; the WebSocket SDK's `SasrWebsocketClient`
unchanged (it sends the vad_* fields SIS's short audio does not take)."""

import json
import subprocess
import sys
import wave

import pytest
import websocket

from conftest import SHARED, Server, sis_store
from signer import sdk_date, sign
from test_rasr_sdk import Collect

sys.path.insert(0, str(SHARED / "clients"))
from huaweicloud_sis.bean.asr_request import SasrWebsocketRequest  # noqa: E402
from huaweicloud_sis.bean.sis_config import SisConfig  # noqa: E402
from huaweicloud_sis.client.asr_client import SasrWebsocketClient  # noqa: E402

PID = "3e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b"

# the raw formats of RASR and short audio over WebSocket (§11.1): ffmpeg's
# encoder, the rate
FORMATS = {
    "pcm16k16bit": ("s16le", 16000),
    "pcm8k16bit": ("s16le", 8000),
    "ulaw16k8bit": ("mulaw", 16000),
    "ulaw8k8bit": ("mulaw", 8000),
    "alaw16k8bit": ("alaw", 16000),
    "alaw8k8bit": ("alaw", 8000),
}


@pytest.fixture(scope="module")
def ws_srv(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("sasr-ws")
    env, cred = sis_store(d, PID)
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    yield dict(server=server, cred=cred, root=root, rows=rows, log=d / "sisd.log")
    server.stop()


def connect(s):
    host = s["server"].base.split("//", 1)[1]
    path = f"/v1/{PID}/asr/short-audio"
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(s["cred"]["access_key"], s["cred"]["secret_key"], "GET", path, None, h, b"")
    del h["host"]
    return websocket.create_connection("ws://" + host + path, header=h, timeout=30)


def audio(s, uid, fmt, lead_s=0.3, tail_s=0.5):
    enc, rate = FORMATS[fmt]
    src = s["root"] / f"{rate // 1000}k" / f"{uid}.wav"
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-af",
                          f"adelay={int(lead_s * 1000)},apad=pad_dur={tail_s}", "-ac", "1", "-ar", str(rate),
                          "-f", enc, "-"], check=True, capture_output=True).stdout
    return pcm


def recognise(ws, data, fmt, prop, frame=1280, **config):
    """START, the audio in frames, END; every message up to END or FATAL_ERROR."""
    cfg = {"audio_format": fmt, "property": prop, "add_punc": "no", "digit_norm": "no", **config}
    ws.send(json.dumps({"command": "START", "config": cfg}))
    msgs = [json.loads(ws.recv())]
    if msgs[0]["resp_type"] != "START":
        return msgs
    for i in range(0, len(data), frame):
        ws.send_binary(data[i:i + frame])
    ws.send(json.dumps({"command": "END", "cancel": False}))
    while msgs[-1]["resp_type"] not in ("END", "FATAL_ERROR"):
        msgs.append(json.loads(ws.recv()))
    return msgs


def prop_for(fmt):
    return f"chinese_{FORMATS[fmt][1] // 1000}k_common"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_exact_in_every_format(ws_srv, fmt):
    rows = [r for r in ws_srv["rows"] if r["kind"] == "sentence"][:1] + \
           [r for r in ws_srv["rows"] if r["kind"] == "number"][:1]
    ws = connect(ws_srv)
    try:
        # several recognitions on one connection
        for r in rows:
            data = audio(ws_srv, r["id"], fmt)
            msgs = recognise(ws, data, fmt, prop_for(fmt), need_word_info="yes")
            assert [m["resp_type"] for m in msgs] == ["START", "RESULT", "END"], msgs
            assert len({m["trace_id"] for m in msgs}) == 1
            seg, = msgs[1]["segments"]
            assert seg["is_final"] is True
            assert seg["result"]["text"] == r["text"], (fmt, r["text"], seg)
            bytes_per_ms = FORMATS[fmt][1] * (2 if fmt.startswith("pcm") else 1) // 1000
            assert seg["start_time"] == 0 and abs(seg["end_time"] - len(data) // bytes_per_ms) <= 1, seg
            assert "".join(w["word"] for w in seg["result"]["word_info"]) == r["text"]
            assert msgs[2]["reason"] == "NORMAL", msgs[2]
    finally:
        ws.close()


def test_audio_past_a_minute_is_exceeded_and_the_first_minute_recognised(ws_srv):
    r = [r for r in ws_srv["rows"] if r["kind"] == "sentence"][0]
    speech = audio(ws_srv, r["id"], "pcm16k16bit")
    data = speech + b"\0" * (62 * 32000 - len(speech))
    ws = connect(ws_srv)
    try:
        msgs = recognise(ws, data, "pcm16k16bit", "chinese_16k_common", frame=6400)
    finally:
        ws.close()
    types = [m["resp_type"] for m in msgs]
    assert types == ["START", "EVENT", "RESULT", "END"], msgs
    assert msgs[1]["event"] == "EXCEEDED_AUDIO", msgs[1]
    seg, = msgs[2]["segments"]
    assert seg["result"]["text"] == r["text"] and seg["end_time"] == 60000, seg


def test_errors_as_in_rasr_and_the_connection_keeps_serving(ws_srv):
    r = [r for r in ws_srv["rows"] if r["kind"] == "number"][0]
    data = audio(ws_srv, r["id"], "pcm16k16bit")
    ws = connect(ws_srv)
    try:
        # END and audio before START
        ws.send(json.dumps({"command": "END", "cancel": False}))
        assert json.loads(ws.recv())["resp_type"] == "ERROR"
        ws.send_binary(b"\0" * 640)
        assert json.loads(ws.recv())["resp_type"] == "ERROR"
        # a property nobody serves, a format the stream does not take
        for fmt, prop in [("pcm16k16bit", "chinese_16k_nothing"), ("mp3", "chinese_16k_common")]:
            m = recognise(ws, data, fmt, prop)
            assert [x["resp_type"] for x in m] == ["ERROR"], (fmt, prop, m)
            assert m[0]["error_code"].startswith("SIS."), m
        # a vocabulary that does not exist (§10: SIS.0201), never ignored
        m = recognise(ws, data, "pcm16k16bit", "chinese_16k_common",
                      vocabulary_id="5F1C3B2A-0000-4000-8000-000000000000")
        assert [x["resp_type"] for x in m] == ["ERROR"] and m[0]["error_code"] == "SIS.0201", m
        # a frame over the limit ends the session with ERROR, END(ERROR)
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                           "property": "chinese_16k_common"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        ws.send_binary(b"\0" * 100_000)
        assert [json.loads(ws.recv())["resp_type"] for _ in range(2)] == ["ERROR", "END"]
        # cancel: END(CANCEL), no result
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                           "property": "chinese_16k_common"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        ws.send_binary(data[:6400])
        ws.send(json.dumps({"command": "END", "cancel": True}))
        end = json.loads(ws.recv())
        assert end["resp_type"] == "END" and end["reason"] == "CANCEL", end
        # and then it still recognises
        msgs = recognise(ws, data, "pcm16k16bit", "chinese_16k_common")
        assert msgs[1]["segments"][0]["result"]["text"] == r["text"], msgs
    finally:
        ws.close()
    assert ws_srv["server"].proc.poll() is None


def test_empty_and_tiny_audio_get_an_empty_result(ws_srv):
    ws = connect(ws_srv)
    try:
        # nothing, half a sample, one sample, one 8-bit sample at 16 kHz
        for data, fmt, prop in [(b"", "pcm8k16bit", "chinese_8k_common"), (b"\x01", "pcm8k16bit", "chinese_8k_common"),
                                (b"\x01\x00", "pcm16k16bit", "chinese_16k_common"),
                                (b"\xd5", "alaw16k8bit", "chinese_16k_common")]:
            msgs = recognise(ws, data, fmt, prop)
            assert [m["resp_type"] for m in msgs] == ["START", "RESULT", "END"], (data, msgs)
            assert msgs[1]["segments"][0]["result"]["text"] == ""
    finally:
        ws.close()


@pytest.mark.parametrize("rate", [8000, 16000])
def test_sdk_sasr_websocket_client_unchanged(ws_srv, rate):
    r = [r for r in ws_srv["rows"] if r["kind"] == "sentence"][1]
    with wave.open(str(ws_srv["root"] / f"{rate // 1000}k" / f"{r['id']}.wav")) as w:
        data = w.readframes(w.getnframes())
    cb = Collect()
    config = SisConfig()
    config.set_connect_timeout(10)
    client = SasrWebsocketClient(ak=ws_srv["cred"]["access_key"], sk=ws_srv["cred"]["secret_key"], use_aksk=True,
                                 region="cn-north-4", project_id=PID, callback=cb, config=config,
                                 service_endpoint="ws://" + ws_srv["server"].base.split("//", 1)[1])
    fmt = "pcm8k16bit" if rate == 8000 else "pcm16k16bit"
    request = SasrWebsocketRequest(fmt, f"chinese_{rate // 1000}k_common")
    request.set_digit_norm("no")
    # the SDK's bug: its START still carries vad_head, vad_tail, max_seconds
    assert "vad_head" in request.construct_params()["config"]
    try:
        client.sasr_stream_connect(request)
        client.send_start()
        client.send_audio(data, byte_len=4000, sleep_time=0)
        client.send_end()
        assert cb.ended.wait(30), (cb.errors, cb.responses)
    finally:
        client.close()
    assert not cb.errors, cb.errors
    texts = [s["result"]["text"] for m in cb.responses for s in m["segments"] if s["is_final"]]
    assert texts == [r["text"]]
    log = ws_srv["log"].read_text()
    assert 'api="short-audio-ws"' in log


def test_a_busy_engine_gets_error_0312_and_the_connection_keeps_serving(models_dir, tmp_path, heldout):
    """With one decode worker and a queue of one, short audio ended on many
    connections at once: those the engine refuses get ERROR SIS.0312 (as
    POST .../short-audio answers 429 SIS.0312) and END, never FATAL_ERROR;
    each such connection recognises the same audio when it starts again."""
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--workers", "1", "--queue", "1"],
                    log=tmp_path / "sisd.log")
    try:
        root, rows = heldout
        row = next(r for r in rows if r["kind"] == "sentence")
        with wave.open(str(root / "16k" / f"{row['id']}.wav")) as w:
            pcm = w.readframes(w.getnframes())
        data = pcm * 6  # ~20 s: a decode long enough for the rest to queue
        host = server.base.split("//", 1)[1]
        conns = [websocket.create_connection(f"ws://{host}/v1/p1/asr/short-audio", timeout=60)
                 for _ in range(8)]
        for ws in conns:
            ws.send(json.dumps({"command": "START", "config": {
                "audio_format": "pcm16k16bit", "property": "chinese_16k_common", "add_punc": "no"}}))
            assert json.loads(ws.recv())["resp_type"] == "START"
            for i in range(0, len(data), 32000):
                ws.send_binary(data[i:i + 32000])
        for ws in conns:
            ws.send(json.dumps({"command": "END", "cancel": False}))
        outcomes = []
        for ws in conns:
            msgs = [json.loads(ws.recv())]
            while msgs[-1]["resp_type"] not in ("END", "FATAL_ERROR"):
                msgs.append(json.loads(ws.recv()))
            outcomes.append(msgs)
        kinds = [[m["resp_type"] for m in msgs] for msgs in outcomes]
        print(kinds)
        assert all(k in (["RESULT", "END"], ["ERROR", "END"]) for k in kinds), outcomes
        refused = [(ws, msgs) for ws, msgs in zip(conns, outcomes) if msgs[0]["resp_type"] == "ERROR"]
        assert refused, "no connection was refused: the queue did not fill"
        assert len(refused) < len(conns), "every connection was refused"
        for ws, msgs in refused:
            assert msgs[0]["error_code"] == "SIS.0312", msgs
            assert msgs[1]["reason"] == "ERROR" and msgs[1]["trace_id"] == msgs[0]["trace_id"], msgs
        # the same connection, again, alone: recognised
        ws = refused[0][0]
        again = recognise(ws, pcm, "pcm16k16bit", "chinese_16k_common")
        assert [m["resp_type"] for m in again] == ["START", "RESULT", "END"], again
        assert again[1]["segments"][0]["result"]["text"] == row["text"]
        for ws in conns:
            ws.close()
    finally:
        server.stop()
