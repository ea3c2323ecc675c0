"""Hot words change what is recognised (issue 14), through every API path.

espeak-ng reads homophones identically, so a held-out sentence naming a place
(银行, 图书馆, 健身房 ...) is recognised with the common spelling; a vocabulary
holding a less common spelling of the same sound (银杭, 图书管, 健身坊 ...) must
turn it into that spelling, and nothing else in the sentence may change.
Measured on the committed CTC packs (the post-decode pinyin method,
docs/HOTWORDS.md) through short-audio, the three RASR modes and a job, with
and without the vocabulary; the accuracy of each path is printed.
"""

import json
import time
import wave

import pytest
import requests
import websocket

from conftest import Server

# the common spelling the packs write -> the vocabulary's spelling, same sound
HOMOPHONES = {
    "银行": "银杭", "超市": "超氏", "营业厅": "营业庭", "服务台": "服务苔", "图书馆": "图书管",
    "医院": "医苑", "健身房": "健身坊", "停车场": "停车厂", "售后中心": "售后忠心", "机场": "机厂",
}
MIN_PHRASES = 40


def swap(text):
    for common, hot in HOMOPHONES.items():
        text = text.replace(common, hot)
    return text


@pytest.fixture(scope="module")
def world(models_dir, heldout, tmp_path_factory):
    root, rows = heldout
    phrases = [r for r in rows if r["kind"] == "sentence" and swap(r["text"]) != r["text"]][:48]
    assert len(phrases) >= MIN_PHRASES, f"only {len(phrases)} held-out phrases name a place"
    d = tmp_path_factory.mktemp("hotwords")
    files = d / "files"
    files.mkdir()
    # the job's file: every phrase, 1.5 s apart, so the VAD gives one segment each
    pcm = b""
    for r in phrases:
        with wave.open(str(root / "16k" / f"{r['id']}.wav")) as w:
            pcm += w.readframes(w.getnframes()) + b"\0" * 48000
    with wave.open(str(files / "all.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    server = Server([models_dir], d / "data", extra=["--no-probe", "--job-files-dir", str(files)],
                    log=d / "sisd.log")
    r = requests.post(f"{server.base}/v1/p1/asr/vocabularies", json={
        "name": "places", "language": "chinese_mandarin", "contents": sorted(HOMOPHONES.values())})
    assert r.status_code == 200, r.text
    yield dict(server=server, root=root, phrases=phrases, job_file=files / "all.wav",
               vocabulary_id=r.json()["vocabulary_id"])
    server.stop()


def pcm_of(world, row):
    with wave.open(str(world["root"] / "16k" / f"{row['id']}.wav")) as w:
        return w.readframes(w.getnframes())


def config(world, with_vocabulary):
    cfg = {"property": "chinese_16k_common", "add_punc": "no", "digit_norm": "no"}
    if with_vocabulary:
        cfg["vocabulary_id"] = world["vocabulary_id"]
    return cfg


def short_audio(world, row, with_vocabulary):
    r = world["server"].short_audio(pcm_of(world, row), "pcm16k16bit", "chinese_16k_common",
                                    **config(world, with_vocabulary))
    assert r.status_code == 200, r.text
    return r.json()["result"]["text"]


def rasr(mode):
    def run(world, row, with_vocabulary):
        base = world["server"].base.split("//", 1)[1]
        ws = websocket.create_connection(f"ws://{base}/v1/p1/rasr/{mode}", timeout=30)
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                           **config(world, with_vocabulary)}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        audio = b"\0" * 9600 + pcm_of(world, row) + b"\0" * 32000
        audio += b"\0" * (-len(audio) % 3200)
        for i in range(0, len(audio), 3200):
            ws.send_binary(audio[i:i + 3200])
        ws.send(json.dumps({"command": "END", "cancel": "false"}))
        texts = []
        while True:
            m = json.loads(ws.recv())
            assert m["resp_type"] not in ("ERROR", "FATAL_ERROR"), m
            if m["resp_type"] == "RESULT":
                texts += [s["result"]["text"] for s in m["segments"] if s["is_final"]]
            if m["resp_type"] == "END":
                ws.close()
                return "".join(texts)
    return run


PATHS = {"short-audio": short_audio, "short-stream": rasr("short-stream"),
         "continue-stream": rasr("continue-stream"), "sentence-stream": rasr("sentence-stream")}


def score(phrases, texts):
    """(recognised as the vocabulary's spelling, exactly), (as the common spelling, exactly)."""
    hot = sum(t == swap(r["text"]) for r, t in zip(phrases, texts))
    plain = sum(t == r["text"] for r, t in zip(phrases, texts))
    return hot, plain


def check(path, phrases, without, with_):
    n = len(phrases)
    hot0, plain0 = score(phrases, without)
    hot1, plain1 = score(phrases, with_)
    print(f"\n{path}: {n} phrases; without the vocabulary {plain0}/{n} exact (common spelling), "
          f"{hot0}/{n} with the hot spelling; with it {hot1}/{n} exact (hot spelling), {plain1}/{n} unchanged")
    # without the vocabulary the hot spellings never appear
    assert not any(h in t for t in without for h in HOMOPHONES.values()), without
    assert plain0 >= 0.85 * n, list(zip([r["text"] for r in phrases], without))
    # with it, what was right before becomes the hot spelling and nothing else changes
    assert hot1 >= plain0 - 1, [(r["text"], a, b) for r, a, b in zip(phrases, without, with_) if b != swap(a)]
    assert plain1 == 0, with_


@pytest.mark.parametrize("path", list(PATHS))
def test_homophones(world, path):
    run = PATHS[path]
    without = [run(world, r, False) for r in world["phrases"]]
    with_ = [run(world, r, True) for r in world["phrases"]]
    check(path, world["phrases"], without, with_)


def job(world, with_vocabulary):
    s = world["server"]
    cfg = {"audio_format": "auto", **config(world, with_vocabulary)}
    r = requests.post(f"{s.base}/v1/p1/asr/transcriber/jobs",
                      json={"data_url": f"file://{world['job_file']}", "config": cfg})
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    deadline = time.time() + 300
    while True:
        doc = requests.get(f"{s.base}/v1/p1/asr/transcriber/jobs/{job_id}").json()
        if doc["status"] != "WAITING":
            break
        assert time.time() < deadline
        time.sleep(0.5)
    assert doc["status"] == "FINISHED", doc
    return [seg["result"]["text"] for seg in doc["segments"]]


def test_homophones_in_a_job(world):
    without, with_ = job(world, False), job(world, True)
    n = len(world["phrases"])
    assert len(without) == len(with_) == n, (len(without), len(with_))
    check("job", world["phrases"], without, with_)
