"""Real-time recognition on an offline pack (issue 4, second engine path): a
server with only the offline CTC test pack and the Silero VAD serves all three
RASR modes by buffering the open sentence, re-decoding it for interim results
and decoding it once more for the final."""

import json

import pytest
import requests
import websocket

from conftest import Server
from encode import ffmpeg
from test_rasr import SDK_CONFIG, check_sentences, finals, pcm16k, sentences, session

PROJECT = "offline-project"


@pytest.fixture(scope="module")
def off(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("rasr-offline")
    packs = [p for p in models_dir.iterdir() if p.is_dir() and "streaming" not in p.name]
    assert len(packs) == 2, packs
    server = Server(packs, d / "data", extra=["--no-probe"], log=d / "sisd.log")
    health = requests.get(server.base + "/health").json()
    assert {p["kind"] for p in health["packs"]} == {"offline_asr", "vad"}
    root, rows = heldout
    yield dict(server=server, root=root, rows=rows)
    server.stop()


def connect(off, mode):
    url = off["server"].base.replace("http", "ws") + f"/v1/{PROJECT}/rasr/{mode}"
    return websocket.create_connection(url, timeout=30)


def interim_texts(msgs):
    return [s["result"]["text"] for m in msgs if m["resp_type"] == "RESULT" for s in m["segments"]
            if not s["is_final"]]


def test_short_stream_exact_with_interim(off):
    ws = connect(off, "short-stream")
    for r in sentences(off, 3):
        audio = pcm16k(off, r["id"])
        msgs = session(ws, audio, {"interim_results": "yes"}, pace_s=0.02)
        assert msgs[-1]["resp_type"] == "END" and msgs[-1]["reason"] == "NORMAL"
        (seg,) = finals(msgs)
        assert seg["result"]["text"] == r["text"]
        assert seg["start_time"] == 0 and abs(seg["end_time"] - len(audio) * 1000 // 32000) <= 1
        # interim results come from re-decoding the growing buffer
        partial = interim_texts(msgs)
        assert len(partial) >= 2, msgs
        assert partial[-1] != "" and all(p for p in partial)
    ws.close()


def test_continue_stream_splits_sentences(off):
    rows = sentences(off, 3)
    audio = b"".join(pcm16k(off, r["id"], lead_s=0.3, tail_s=1.2) for r in rows)
    ws = connect(off, "continue-stream")
    msgs = session(ws, audio, {"need_word_info": "yes"})
    check_sentences(msgs, rows, audio)
    ws.close()


def test_sentence_stream_events(off):
    rows = sentences(off, 2)
    audio = pcm16k(off, rows[0]["id"], lead_s=1.0, tail_s=1.5) + pcm16k(off, rows[1]["id"])
    ws = connect(off, "sentence-stream")
    msgs = session(ws, audio, {"interim_results": "yes"}, pace_s=0.02)
    kinds = [m["resp_type"] + (":" + m["event"] if m["resp_type"] == "EVENT" else "") for m in msgs]
    assert kinds[0] == "START" and kinds[1] == "EVENT:VOICE_START" and kinds[-1] == "END", kinds
    assert kinds.index("EVENT:VOICE_END") == len(kinds) - 3 and kinds[-2] == "RESULT", kinds
    (seg,) = finals(msgs)
    assert seg["result"]["text"] == rows[0]["text"]
    assert interim_texts(msgs)
    ws.close()


def test_8k_alaw_short_stream(off):
    r = sentences(off, 4)[3]
    alaw = ffmpeg(off["root"] / "8k" / f"{r['id']}.wav", "-f", "alaw", "-ar", "8000")
    alaw = b"\xd5" * 4000 + alaw + b"\xd5" * 8000
    alaw += b"\xd5" * (-len(alaw) % 1600)
    ws = connect(off, "short-stream")
    ws.send(json.dumps({"command": "START", "config": {**SDK_CONFIG, "audio_format": "alaw8k8bit",
                                                        "property": "chinese_8k_common"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    for i in range(0, len(alaw), 1600):
        ws.send_binary(alaw[i:i + 1600])
    ws.send(json.dumps({"command": "END"}))
    msgs = []
    while not msgs or msgs[-1]["resp_type"] != "END":
        msgs.append(json.loads(ws.recv()))
    (seg,) = finals(msgs)
    assert seg["result"]["text"] == r["text"]
    ws.close()
