"""Punctuation through the model path (issue 16): a server with the
committed punctuation test pack (`testdata/punct-models/zh-tiny-punct`, a
tiny CT-Transformer-layout model trained by tools/train/punct) answers
`add_punc=yes` with the model's marks in short audio, RASR and a job: the
words exactly the transcript's, marks inside sentences (which the fallback
never writes: it only ends a sentence), questions ending with ？. A server
without a punctuation pack runs the fallback, as documented. Precision and
recall per mark on the pack's held-out sentences: the engine test
`sherpa::tests::the_punctuation_test_pack_punctuates_held_out_sentences`."""

import json
import shutil
import time
from urllib.parse import quote

import pytest
import requests
import websocket

from conftest import ROOT, Server

PACK = ROOT / "testdata/punct-models/zh-tiny-punct"
MARKS = "，。？"


@pytest.fixture(scope="module")
def punct(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("punct")
    files = d / "files"
    files.mkdir()
    root, rows = heldout
    sents = [r for r in rows if r["kind"] == "sentence"][:60]
    for r in sents[:2]:
        shutil.copy(root / "16k" / f"{r['id']}.wav", files / f"{r['id']}.wav")
    server = Server([models_dir, PACK], d / "data", extra=["--no-probe", "--job-files-dir", str(files)],
                    log=d / "sisd.log")
    yield dict(server=server, root=root, rows=sents, files=files)
    server.stop()


def short(server, root, r, add_punc="yes"):
    resp = server.short_audio((root / "16k" / f"{r['id']}.wav").read_bytes(), "wav", "chinese_16k_common",
                              add_punc=add_punc, digit_norm="no")
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]["text"]


def strip(text):
    return "".join(c for c in text if c not in MARKS)


def test_short_audio_uses_the_model(punct, server):
    s, root = punct["server"], punct["root"]
    inside, questions = 0, 0
    for r in punct["rows"]:
        text, plain = short(s, root, r), short(s, root, r, "no")
        # the words are the transcript's (the test ASR pack's, which is not
        # always the reference), marks only added
        assert strip(text) == plain and not any(c in MARKS for c in plain), (plain, text)
        assert text[-1] in "。？", text
        inside += any(c in MARKS for c in text[:-1])
        if plain.endswith("吗"):
            questions += 1
            assert text.endswith("？"), text
        # the fallback (a server without the pack) only ends the sentence
        fb = short(server, root, r)
        assert strip(fb) == plain and not any(c in MARKS for c in fb[:-1]), fb
    print(f"\n{len(punct['rows'])} sentences: {inside} with a mark inside, {questions} questions")
    assert inside >= 2 and questions >= 3


def test_rasr_and_a_job_use_the_model(punct):
    s, root = punct["server"], punct["root"]
    r = next(r for r in punct["rows"] if r["text"].endswith("吗"))
    want = short(s, root, r)
    # RASR short-stream: the final result is punctuated like short audio
    pcm = (root / "16k" / f"{r['id']}.wav").read_bytes()[44:]
    ws = websocket.create_connection(s.base.replace("http", "ws") + "/v1/p/rasr/short-stream", timeout=30)
    try:
        ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                            "property": "chinese_16k_common", "add_punc": "yes", "digit_norm": "no"}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        for i in range(0, len(pcm), 3200):
            ws.send_binary(pcm[i:i + 3200])
        ws.send(json.dumps({"command": "END", "cancel": False}))
        finals = []
        while True:
            m = json.loads(ws.recv())
            if m["resp_type"] == "RESULT":
                finals += [x["result"]["text"] for x in m["segments"] if x["is_final"]]
            if m["resp_type"] == "END":
                break
    finally:
        ws.close()
    assert finals == [want], (finals, want)
    # a job of the same file
    shutil.copy(root / "16k" / f"{r['id']}.wav", punct["files"] / "q.wav")
    resp = requests.post(f"{s.base}/v1/p/asr/transcriber/jobs", timeout=30, json={
        "data_url": "file://" + quote(str(punct["files"] / "q.wav")),
        "config": {"audio_format": "auto", "property": "chinese_16k_common", "add_punc": "yes",
                   "digit_norm": "no"}})
    assert resp.status_code == 200, resp.text
    job = resp.json()["job_id"]
    deadline = time.time() + 60
    while True:
        doc = requests.get(f"{s.base}/v1/p/asr/transcriber/jobs/{job}", timeout=30).json()
        if doc["status"] != "WAITING" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert doc["status"] == "FINISHED", doc
    assert [g["result"]["text"] for g in doc["segments"]] == [want], doc
