"""Hot words change what is recognised (issue 14), through every API path.

espeak-ng reads homophones identically, so a held-out sentence naming a place
(银行, 图书馆, 健身房 ...) is recognised with the common spelling; a vocabulary
holding a less common spelling of the same sound (银杭, 图书管, 健身坊 ...) must
turn it into that spelling, and nothing else in the sentence may change.

Two pack families, two methods (docs/HOTWORDS.md):
- the CTC packs (`chinese_*_common`): the post-decode pinyin method;
- the transducer packs (`chinese_*_hotword`): sherpa-onnx contextual biasing
  (modified_beam_search, a hot-word list per stream). Biasing can only favour
  tokens the model has, so its sound-alikes are spelled with characters of
  the pack's tokens.txt (售候中心, 图输馆 ...), same syllable and tone.
Each is measured through short-audio (16 and 8 kHz), the three RASR modes
(continue-stream at 8 kHz too) and a job, with and without the vocabulary;
the accuracy of each path is printed.
"""

import json
import subprocess
import time
import wave

import pytest
import requests
import websocket

from conftest import ROOT, SISD, Server, edit_distance

# the common spelling the packs write -> the vocabulary's spelling, same sound
FAMILIES = {
    "ctc": {
        "property": "chinese_{rate}_common",
        "homophones": {
            "银行": "银杭", "超市": "超氏", "营业厅": "营业庭", "服务台": "服务苔", "图书馆": "图书管",
            "医院": "医苑", "健身房": "健身坊", "停车场": "停车厂", "售后中心": "售后忠心", "机场": "机厂",
        },
    },
    "transducer": {
        "property": "chinese_{rate}_hotword",
        # every character in the transducer's tokens.txt; same pinyin and tone
        "homophones": {
            "超市": "超事", "营业厅": "迎业厅", "服务台": "服误台", "图书馆": "图输馆", "医院": "一院",
            "健身房": "件身房", "售后中心": "售候中心", "快递网点": "快地网点", "机场": "积场",
        },
    },
}
MIN_PHRASES = 40


def swap(family, text):
    for common, hot in FAMILIES[family]["homophones"].items():
        text = text.replace(common, hot)
    return text


@pytest.fixture(scope="module")
def world(models_dir, heldout, tmp_path_factory):
    root, rows = heldout
    d = tmp_path_factory.mktemp("hotwords")
    files = d / "files"
    files.mkdir()
    phrases, vocabularies = {}, {}
    for family in FAMILIES:
        phrases[family] = [r for r in rows
                           if r["kind"] == "sentence" and swap(family, r["text"]) != r["text"]][:48]
        assert len(phrases[family]) >= MIN_PHRASES, \
            f"{family}: only {len(phrases[family])} held-out phrases name a place"
        # the job's file: every phrase, 1.5 s apart, so the VAD gives one segment each
        pcm = b""
        for r in phrases[family]:
            with wave.open(str(root / "16k" / f"{r['id']}.wav")) as w:
                pcm += w.readframes(w.getnframes()) + b"\0" * 48000
        with wave.open(str(files / f"{family}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm)
    transducers = d / "models"
    for pack in ("zh-tiny-transducer-offline", "zh-tiny-transducer-streaming"):
        subprocess.run([SISD, "models", "install", "--from", ROOT / "testdata/models" / pack,
                        "--models-dir", transducers], check=True, capture_output=True)
    server = Server([models_dir, transducers], d / "data", extra=["--no-probe", "--job-files-dir", str(files)],
                    log=d / "sisd.log")
    for family, spec in FAMILIES.items():
        r = requests.post(f"{server.base}/v1/p1/asr/vocabularies", json={
            "name": f"places_{family}", "language": "chinese_mandarin",
            "contents": sorted(spec["homophones"].values())})
        assert r.status_code == 200, r.text
        vocabularies[family] = r.json()["vocabulary_id"]
    yield dict(server=server, root=root, phrases=phrases, files=files, vocabularies=vocabularies)
    server.stop()


def pcm_of(world, row, rate):
    with wave.open(str(world["root"] / rate / f"{row['id']}.wav")) as w:
        return w.readframes(w.getnframes())


def config(world, family, rate, with_vocabulary):
    cfg = {"property": FAMILIES[family]["property"].format(rate=rate), "add_punc": "no",
           "digit_norm": "no"}
    if with_vocabulary:
        cfg["vocabulary_id"] = world["vocabularies"][family]
    return cfg


def short_audio(rate):
    def run(world, family, row, with_vocabulary):
        cfg = config(world, family, rate, with_vocabulary)
        r = world["server"].short_audio(pcm_of(world, row, rate), f"pcm{rate}16bit",
                                        cfg.pop("property"), **cfg)
        assert r.status_code == 200, r.text
        return r.json()["result"]["text"]
    return run


def rasr(mode, rate="16k"):
    def run(world, family, row, with_vocabulary):
        base = world["server"].base.split("//", 1)[1]
        ws = websocket.create_connection(f"ws://{base}/v1/p1/rasr/{mode}", timeout=30)
        ws.send(json.dumps({"command": "START", "config": {
            "audio_format": f"pcm{rate}16bit", **config(world, family, rate, with_vocabulary)}}))
        assert json.loads(ws.recv())["resp_type"] == "START"
        chunk = 3200 if rate == "16k" else 1600  # 100 ms
        audio = b"\0" * (chunk * 3) + pcm_of(world, row, rate) + b"\0" * (chunk * 10)
        audio += b"\0" * (-len(audio) % chunk)
        for i in range(0, len(audio), chunk):
            ws.send_binary(audio[i:i + chunk])
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


PATHS = {"short-audio": short_audio("16k"), "short-audio-8k": short_audio("8k"),
         "short-stream": rasr("short-stream"), "continue-stream": rasr("continue-stream"),
         "sentence-stream": rasr("sentence-stream"), "continue-stream-8k": rasr("continue-stream", "8k")}


def cer(refs, hyps):
    return 100.0 * sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / sum(map(len, refs))


def check(family, path, phrases, without, with_):
    """Prints the accuracy with and without the vocabulary and checks that
    the vocabulary turns what was recognised as the common spelling into the
    hot spelling, and nothing else.

    CTC (text matching): every place recognised before comes out in the hot
    spelling. Transducer (biasing): sherpa-onnx's modified_beam_search adds
    the boost only to hypotheses already among its 4 best at a frame, so a
    place whose sound-alike the model never puts there stays in the common
    spelling; at least 60 % must flip (measured: 67 to 77 % at the default
    weight, docs/HOTWORDS.md), and the place itself is never lost."""
    n = len(phrases)
    homophones = FAMILIES[family]["homophones"]
    refs = [r["text"] for r in phrases]
    common = [next(c for c in homophones if c in t) for t in refs]
    # phrases whose place was recognised, with the common spelling / the hot one
    place0 = sum(c in t for c, t in zip(common, without))
    place1 = sum(homophones[c] in t for c, t in zip(common, with_))
    kept1 = sum(c in t for c, t in zip(common, with_))
    exact0 = sum(t == r for r, t in zip(refs, without))
    exact1 = sum(t == swap(family, r) for r, t in zip(refs, with_))
    unswapped = with_
    for c, h in homophones.items():
        unswapped = [t.replace(h, c) for t in unswapped]
    cer0, cer_rest = cer(refs, without), cer(refs, unswapped)
    print(f"\n{family} {path}: {n} phrases; without the vocabulary: place word in the common "
          f"spelling {place0}/{n}, sentence exact {exact0}/{n}, CER {cer0:.2f} %; with it: "
          f"place word in the vocabulary's spelling {place1}/{n} (common spelling kept {kept1}), "
          f"sentence exact (hot spelling) {exact1}/{n}, CER with the hot spellings read as the "
          f"common ones {cer_rest:.2f} %")
    # without the vocabulary the hot spellings never appear
    assert not any(h in t for t in without for h in homophones.values()), without
    # the model knows the places: they come out in the common spelling
    assert place0 >= 0.85 * n, list(zip(refs, without))
    changed = [(r, a, b) for r, a, b in zip(refs, without, with_) if b != swap(family, a)]
    if family == "ctc":
        # every place comes out in the hot spelling and nothing else changes
        assert place1 >= place0 - 1, changed
        assert kept1 == 0, with_
        assert exact1 >= exact0 - 1
        # the rest of each sentence is no worse
        assert cer_rest <= cer0 + 0.5, changed
    else:
        assert place1 >= 0.6 * n, changed
        assert place1 + kept1 >= place0 - 1, changed
        # a boosted hypothesis can push better ones out of the beam and end
        # the sentence on another path: measured up to +1.95 points
        # (short-stream), none elsewhere
        assert cer_rest <= cer0 + 3.0, changed


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("path", list(PATHS))
def test_homophones(world, family, path):
    run = PATHS[path]
    phrases = world["phrases"][family]
    without = [run(world, family, r, False) for r in phrases]
    with_ = [run(world, family, r, True) for r in phrases]
    check(family, path, phrases, without, with_)


def job(world, family, with_vocabulary):
    s = world["server"]
    cfg = {"audio_format": "auto", **config(world, family, "16k", with_vocabulary)}
    r = requests.post(f"{s.base}/v1/p1/asr/transcriber/jobs",
                      json={"data_url": f"file://{world['files'] / f'{family}.wav'}", "config": cfg})
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


@pytest.mark.parametrize("family", list(FAMILIES))
def test_homophones_in_a_job(world, family):
    without, with_ = job(world, family, False), job(world, family, True)
    n = len(world["phrases"][family])
    assert len(without) == len(with_) == n, (len(without), len(with_))
    check(family, "job", world["phrases"][family], without, with_)
