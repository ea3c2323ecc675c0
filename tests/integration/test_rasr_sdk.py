"""The SIS WebSocket SDK's real-time demo (`RasrClient`, `use_aksk=True`, from
../shared/clients) in all three RASR modes at 8 kHz and 16 kHz (issue 11,
finding 2: VAD-driven modes at 8 kHz used to end the server), and 8 kHz
sentence boundaries in the client's timeline: the same utterances at 8 and
16 kHz give the same VOICE_START/VOICE_END and segment times."""

import array
import json
import math
import sys
import threading
import wave

import pytest

from conftest import SHARED, Server, cli, sis_store

sys.path.insert(0, str(SHARED / "clients"))
from huaweicloud_sis.bean.callback import RasrCallBack  # noqa: E402
from huaweicloud_sis.bean.rasr_request import RasrRequest  # noqa: E402
from huaweicloud_sis.bean.sis_config import SisConfig  # noqa: E402
from huaweicloud_sis.client.rasr_client import RasrClient  # noqa: E402

PID = "5c3d7f0e9a8b4c6d8e1f2a3b4c5d6e7f"
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def sdk(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("rasr-sdk")
    env, cred = sis_store(d, PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    yield dict(server=server, cred=cred, root=root, rows=rows)
    server.stop()


def clip(sdk, uid, rate, lead_s, tail_s):
    with wave.open(str(sdk["root"] / f"{rate // 1000}k" / f"{uid}.wav")) as w:
        assert w.getframerate() == rate and w.getsampwidth() == 2
        data = w.readframes(w.getnframes())
    bps = rate * 2
    return b"\0" * int(bps * lead_s) + data + b"\0" * int(bps * tail_s)


class Collect(RasrCallBack):
    def __init__(self):
        self.responses, self.events, self.errors = [], [], []
        self.ended = threading.Event()

    def on_response(self, message):
        self.responses.append(message)

    def on_event(self, event):
        self.events.append(event)

    def on_error(self, error):
        self.errors.append(str(error))

    def on_end(self, message):
        self.ended.set()


def finals(responses):
    return [s for m in responses for s in m["segments"] if s["is_final"]]


@pytest.mark.parametrize("auth", ["aksk", "token"])
@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("mode", ["short-stream", "continue-stream", "sentence-stream"])
def test_sdk_demo_every_mode(sdk, mode, rate, auth):
    rows = [r for r in sdk["rows"] if r["kind"] == "sentence"][:2]
    if mode != "continue-stream":
        rows = rows[:1]
    audio = b"".join(clip(sdk, r["id"], rate, 0.4, 1.2) for r in rows)
    cb = Collect()
    config = SisConfig()
    config.set_connect_timeout(10)
    endpoint = "ws://" + sdk["server"].base.split("//", 1)[1]
    if auth == "aksk":
        client = RasrClient(ak=sdk["cred"]["access_key"], sk=sdk["cred"]["secret_key"], use_aksk=True,
                            region="cn-north-4", project_id=PID, callback=cb, config=config,
                            service_endpoint=endpoint)
    else:
        # a token from the server's /v3/auth/tokens, scoped to the project by
        # its name (the region), as the SDK asks for it
        client = RasrClient(user_name="alice", password=PASSWORD, domain_name="acme", region="cn-north-4",
                            project_id=PID, callback=cb, config=config, service_endpoint=endpoint,
                            token_url=sdk["server"].base + "/v3/auth/tokens")
    fmt, prop = ("pcm8k16bit", "chinese_8k_common") if rate == 8000 else ("pcm16k16bit", "chinese_16k_common")
    request = RasrRequest(fmt, prop)
    request.set_digit_norm("no")
    connect = {"short-stream": client.short_stream_connect, "continue-stream": client.continue_stream_connect,
               "sentence-stream": client.sentence_stream_connect}[mode]
    try:
        connect(request)
        client.send_start()
        # the demo's own slicing: 4000-byte pieces, so the last one is short
        client.send_audio(audio, byte_len=4000, sleep_time=0)
        client.send_end()
        assert cb.ended.wait(30), (cb.errors, cb.responses)
    finally:
        client.close()
    assert not cb.errors, cb.errors
    assert [s["result"]["text"] for s in finals(cb.responses)] == [r["text"] for r in rows]
    if mode == "sentence-stream":
        assert cb.events == ["VOICE_START", "VOICE_END"], cb.events
    assert sdk["server"].proc.poll() is None


def onset_ms(pcm, rate):
    """First 10 ms of the audio whose RMS is over 1 % of full scale."""
    n = rate // 100
    x = array.array("h", pcm)
    for i in range(0, len(x) - n, n):
        if math.sqrt(sum(v * v for v in x[i:i + n]) / n) / 32768 > 0.01:
            return i * 1000 // rate
    return None


def run_ws(sdk, mode, fmt, prop, audio):
    """One session with websocket-client (signed like the SDK); all messages."""
    from test_rasr import connect  # noqa: E402  (the signed connect of the RASR suite)
    ws = connect({"server": sdk["server"], "cred": sdk["cred"]}, mode, project=PID)
    ws.send(json.dumps({"command": "START", "config": {"audio_format": fmt, "property": prop,
                                                       "digit_norm": "no", "vad_tail": 500}}))
    msgs = [json.loads(ws.recv())]
    for i in range(0, len(audio), 4000):
        ws.send_binary(audio[i:i + 4000])
    ws.send('{"command": "END"}')
    while msgs[-1]["resp_type"] not in ("END", "FATAL_ERROR"):
        msgs.append(json.loads(ws.recv()))
    ws.close()
    return msgs


def timeline(msgs):
    ev = {m["event"]: m["timestamp"] for m in msgs if m["resp_type"] == "EVENT"}
    segs = [(s["start_time"], s["end_time"], s["result"]["text"]) for m in msgs if m["resp_type"] == "RESULT"
            for s in m["segments"] if s["is_final"]]
    return ev, segs


@pytest.mark.parametrize("mode", ["sentence-stream", "continue-stream"])
def test_8k_times_in_client_timeline(sdk, mode):
    """8 kHz audio is resampled for the VAD; every time the client sees is in
    its own timeline: within 100 ms of the same utterances sent at 16 kHz,
    and inside the audio where the speech is."""
    rows = [r for r in sdk["rows"] if r["kind"] == "sentence"][2:5]
    if mode == "sentence-stream":
        rows = rows[:1]
    a8 = b"".join(clip(sdk, r["id"], 8000, 1.0, 1.2) for r in rows)
    a16 = b"".join(clip(sdk, r["id"], 16000, 1.0, 1.2) for r in rows)
    ev8, segs8 = timeline(run_ws(sdk, mode, "pcm8k16bit", "chinese_8k_common", a8))
    ev16, segs16 = timeline(run_ws(sdk, mode, "pcm16k16bit", "chinese_16k_common", a16))
    assert [t for _, _, t in segs8] == [r["text"] for r in rows]
    assert [t for _, _, t in segs16] == [r["text"] for r in rows]
    for (s8, e8, _), (s16, e16, _) in zip(segs8, segs16):
        assert abs(s8 - s16) <= 100 and abs(e8 - e16) <= 100, (segs8, segs16)
    # the first sentence starts where the speech in the 8 kHz audio starts
    assert abs(segs8[0][0] - onset_ms(a8, 8000)) <= 250, (segs8, onset_ms(a8, 8000))
    assert segs8[-1][1] <= len(a8) * 1000 // 16000
    if mode == "sentence-stream":
        assert set(ev8) == {"VOICE_START", "VOICE_END"}, ev8
        for k in ev8:
            assert abs(ev8[k] - ev16[k]) <= 100, (ev8, ev16)
