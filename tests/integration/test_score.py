"""`score` is a confidence the decoder computed, not a constant.

The transducer test packs (served for `chinese_*_hotword`) report each
token's probability; the score is their geometric mean (docs/API.md,
"score"). Clean held-out speech must score higher than the same speech under
white noise as loud as the speech, through short audio (REST and WebSocket)
and real-time recognition (final and interim results), at 16 kHz and 8 kHz.
The CTC test packs (served for `chinese_*_common`) report no probabilities:
their results carry no score at all."""

import json
import subprocess
import time
import wave

import numpy as np
import pytest
import websocket

from conftest import ROOT, SISD, Server

CLIPS = 8


@pytest.fixture(scope="module")
def world(models_dir, heldout, tmp_path_factory):
    root, rows = heldout
    d = tmp_path_factory.mktemp("score")
    transducers = d / "models"
    for pack in ("zh-tiny-transducer-offline", "zh-tiny-transducer-streaming"):
        subprocess.run([SISD, "models", "install", "--from", ROOT / "testdata/models" / pack,
                        "--models-dir", transducers], check=True, capture_output=True)
    server = Server([models_dir, transducers], d / "data", extra=["--no-probe"], log=d / "sisd.log")
    clips = [r for r in rows if r["kind"] == "sentence"][:CLIPS]
    yield dict(server=server, root=root, clips=clips)
    server.stop()


def pcm(world, row, rate):
    with wave.open(str(world["root"] / rate / f"{row['id']}.wav")) as w:
        return w.readframes(w.getnframes())


def noisy(data: bytes, seed: int) -> bytes:
    """White noise with the power of the speech (0 dB), from a fixed seed."""
    x = np.frombuffer(data, dtype="<i2").astype(np.float64)
    rms = np.sqrt(np.mean(x * x))
    n = np.random.default_rng(seed).normal(0.0, rms, x.shape)
    return np.clip(x + n, -32768, 32767).astype("<i2").tobytes()


def short_audio(world, data, rate, prop):
    r = world["server"].short_audio(data, f"pcm{rate}16bit", prop.format(rate=rate), add_punc="no")
    assert r.status_code == 200, r.text
    return r.json()["result"]


def short_audio_ws(world, data, rate, prop):
    base = world["server"].base.split("//", 1)[1]
    ws = websocket.create_connection(f"ws://{base}/v1/p1/asr/short-audio", timeout=30)
    ws.send(json.dumps({"command": "START", "config": {
        "audio_format": f"pcm{rate}16bit", "property": prop.format(rate=rate)}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    for i in range(0, len(data), 3200):
        ws.send_binary(data[i:i + 3200])
    ws.send(json.dumps({"command": "END"}))
    result = None
    while True:
        m = json.loads(ws.recv())
        assert m["resp_type"] not in ("ERROR", "FATAL_ERROR"), m
        if m["resp_type"] == "RESULT":
            result = m["segments"][0]["result"]
        if m["resp_type"] == "END":
            ws.close()
            return result


def rasr(world, data, rate, prop, interim=False, pace_s=0.0):
    """(final results, interim results) of a continue-stream session;
    `pace_s` between 100 ms frames (the server batches what arrives at
    once, so unpaced audio may give a single interim result)."""
    base = world["server"].base.split("//", 1)[1]
    ws = websocket.create_connection(f"ws://{base}/v1/p1/rasr/continue-stream", timeout=30)
    ws.send(json.dumps({"command": "START", "config": {
        "audio_format": f"pcm{rate}16bit", "property": prop.format(rate=rate), "add_punc": "no",
        "interim_results": "yes" if interim else "no"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    chunk = 3200 if rate == "16k" else 1600  # 100 ms
    audio = b"\0" * (chunk * 3) + data + b"\0" * (chunk * 10)
    audio += b"\0" * (-len(audio) % chunk)
    for i in range(0, len(audio), chunk):
        ws.send_binary(audio[i:i + chunk])
        if pace_s:
            time.sleep(pace_s)
    ws.send(json.dumps({"command": "END", "cancel": "false"}))
    finals, interims = [], []
    while True:
        m = json.loads(ws.recv())
        assert m["resp_type"] not in ("ERROR", "FATAL_ERROR"), m
        if m["resp_type"] == "RESULT":
            for s in m["segments"]:
                (finals if s["is_final"] else interims).append(s["result"])
        if m["resp_type"] == "END":
            ws.close()
            return finals, interims


def one_result(results):
    """The recognised sentence of a clip (the VAD may split one in two:
    the longest piece then)."""
    spoken = [r for r in results if r["text"]]
    assert spoken, results
    return max(spoken, key=lambda r: len(r["text"]))


def compare(label, clean, noise):
    """Clean scores above noisy ones: for at least 7 of 8 clips, and on average by 0.08."""
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in clean + noise), (clean, noise)
    higher = sum(a > b for a, b in zip(clean, noise))
    mean_clean, mean_noise = sum(clean) / len(clean), sum(noise) / len(noise)
    print(f"{label}: clean mean {mean_clean:.3f}, noisy mean {mean_noise:.3f}, "
          f"clean higher for {higher}/{len(clean)}")
    assert len(set(clean)) >= len(clean) - 1, f"{label}: scores repeat: {clean}"
    assert higher >= len(clean) - 1, (label, clean, noise)
    assert mean_clean > mean_noise + 0.08, (label, clean, noise)


@pytest.mark.parametrize("rate", ["16k", "8k"])
def test_short_audio_scores_fall_under_noise(world, rate):
    clean, noise = [], []
    for i, row in enumerate(world["clips"]):
        data = pcm(world, row, rate)
        clean.append(short_audio(world, data, rate, "chinese_{rate}_hotword")["score"])
        noise.append(short_audio(world, noisy(data, i), rate, "chinese_{rate}_hotword")["score"])
    compare(f"short audio {rate}", clean, noise)


def test_short_audio_over_websocket_scores_fall_under_noise(world):
    clean, noise = [], []
    for i, row in enumerate(world["clips"]):
        data = pcm(world, row, "16k")
        clean.append(short_audio_ws(world, data, "16k", "chinese_{rate}_hotword")["score"])
        noise.append(short_audio_ws(world, noisy(data, i), "16k", "chinese_{rate}_hotword")["score"])
    compare("short audio over WebSocket 16k", clean, noise)


@pytest.mark.parametrize("rate", ["16k", "8k"])
def test_realtime_scores_fall_under_noise(world, rate):
    clean, noise = [], []
    for i, row in enumerate(world["clips"]):
        data = pcm(world, row, rate)
        clean.append(one_result(rasr(world, data, rate, "chinese_{rate}_hotword")[0])["score"])
        noise.append(one_result(rasr(world, noisy(data, i), rate, "chinese_{rate}_hotword")[0])["score"])
    compare(f"real time {rate}", clean, noise)


def test_interim_scores_are_refreshed(world):
    """Interim results carry the score of the text so far: in [0, 1], and
    not one value throughout a sentence."""
    row = max(world["clips"], key=lambda r: len(r["text"]))
    finals, interims = rasr(world, pcm(world, row, "16k"), "16k", "chinese_{rate}_hotword", interim=True,
                            pace_s=0.05)
    scores = [r["score"] for r in interims if r["text"]]
    print(f"interim scores: {scores}; final {[r['score'] for r in finals]}")
    assert len(scores) >= 2, interims
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) >= 2, scores


def test_packs_without_probabilities_give_no_score(world):
    """The CTC test packs: no `score` key in short audio or real-time results."""
    row = world["clips"][0]
    data = pcm(world, row, "16k")
    res = short_audio(world, data, "16k", "chinese_{rate}_common")
    assert res["text"] and "score" not in res, res
    res = short_audio_ws(world, data, "16k", "chinese_{rate}_common")
    assert res["text"] and "score" not in res, res
    finals, interims = rasr(world, data, "16k", "chinese_{rate}_common", interim=True, pace_s=0.05)
    assert finals and interims
    assert all("score" not in r for r in finals + interims), finals + interims


def test_silence_scores_zero_on_a_transducer(world):
    """Nothing heard: empty text, score 0 (a transducer pack), and no score
    on a pack without probabilities."""
    silence = b"\0" * 32000
    res = short_audio(world, silence, "16k", "chinese_{rate}_hotword")
    assert res["text"] == "" and res["score"] == 0.0, res
    res = short_audio(world, silence, "16k", "chinese_{rate}_common")
    assert res["text"] == "" and "score" not in res, res


@pytest.mark.parametrize("rate", ["16k", "8k"])
def test_tiny_streams_on_the_transducer_end_cleanly(world, rate):
    """Short-stream sessions on the streaming transducer with no audio, one
    sample and one frame: their END comes back (the tail sized from the
    model's window, the final decoded by whichever worker is free), with no
    error and a score only beside text; then a real clip is recognised."""
    base = world["server"].base.split("//", 1)[1]
    for data in (b"", b"\0\0", b"\0" * 320):
        ws = websocket.create_connection(f"ws://{base}/v1/p1/rasr/short-stream", timeout=30)
        ws.send(json.dumps({"command": "START", "config": {
            "audio_format": f"pcm{rate}16bit", "property": f"chinese_{rate}_hotword"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        if data:
            ws.send_binary(data)
        ws.send(json.dumps({"command": "END"}))
        msgs = [json.loads(ws.recv())]
        while msgs[-1]["resp_type"] not in ("END", "ERROR", "FATAL_ERROR"):
            msgs.append(json.loads(ws.recv()))
        ws.close()
        assert msgs[-1]["resp_type"] == "END", (len(data), msgs)
        for m in msgs:
            for s in m.get("segments", []):
                assert "score" in s["result"] and 0.0 <= s["result"]["score"] <= 1.0, m
    # clients that vanish right after END, their finals still being decoded
    row = world["clips"][0]
    for _ in range(4):
        ws = websocket.create_connection(f"ws://{base}/v1/p1/rasr/short-stream", timeout=30)
        ws.send(json.dumps({"command": "START", "config": {
            "audio_format": f"pcm{rate}16bit", "property": f"chinese_{rate}_hotword"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        ws.send_binary(pcm(world, row, rate))
        ws.send(json.dumps({"command": "END"}))
        ws.sock.close()
    finals, _ = rasr(world, pcm(world, row, rate), rate, "chinese_{rate}_hotword")
    assert one_result(finals)["text"], finals
