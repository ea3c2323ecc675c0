"""Every short-audio audio_format, through a real HTTP client: the transcript
of held-out synthetic clips, CER within 1 point of the raw-PCM CER at the same
sample rate."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import edit_distance
from encode import FORMATS

PER_KIND = 80  # clips per kind (numbers, sentences) per format


@pytest.fixture(scope="module")
def results(server, heldout):
    root, rows = heldout
    clips = [r for r in rows if r["kind"] == "number"][:PER_KIND] + [r for r in rows if r["kind"] == "sentence"][:PER_KIND]

    def one(args):
        name, fmt, rate, enc, clip = args
        data = enc(root / "16k" / f"{clip['id']}.wav") if rate == 16 else enc(root / "8k" / f"{clip['id']}.wav")
        r = server.short_audio(data, fmt, f"chinese_{rate}k_common", digit_norm="no")
        assert r.status_code == 200, (name, clip["id"], r.text)
        return name, clip, r.json()["result"]["text"]

    jobs = [(n, f, rate, e, c) for (n, f, rate, e) in FORMATS for c in clips]
    out = {}
    with ThreadPoolExecutor(4) as ex:
        for name, clip, text in ex.map(one, jobs):
            e, n = out.get(name, (0, 0))
            out[name] = (e + edit_distance(clip["text"], text), n + len(clip["text"]))
    table = {k: 100.0 * e / n for k, (e, n) in out.items()}
    print("\nshort-audio CER by format (%d numbers + %d sentences each):" % (PER_KIND, PER_KIND))
    for (name, fmt, rate, _) in FORMATS:
        print(f"  {name:14s} {fmt:12s} {rate:2d} kHz  CER {table[name]:.2f} %")
    return table


@pytest.mark.parametrize("name,fmt,rate", [(n, f, r) for (n, f, r, _) in FORMATS])
def test_format_cer_close_to_pcm(results, name, fmt, rate):
    ref = results["pcm16k16bit" if rate == 16 else "pcm8k16bit"]
    assert results[name] <= ref + 1.0, f"{name}: CER {results[name]:.2f} % vs raw PCM {ref:.2f} %"
    assert ref <= 5.0, f"raw PCM CER {ref:.2f} % is too high to compare formats"


def test_digit_norm_and_word_info(server, heldout):
    root, rows = heldout
    digits = {c: str(i) for i, c in enumerate("零一二三四五六七八九")}
    digits["幺"] = "1"
    checked = 0
    for clip in rows:
        text = clip["text"]
        if clip["kind"] != "number" or len(text) < 3 or any(c not in digits for c in text):
            continue
        data = (root / "16k" / f"{clip['id']}.wav").read_bytes()
        r = server.short_audio(data, "wav", "chinese_16k_common", need_word_info="yes")
        assert r.status_code == 200
        res = r.json()["result"]
        raw = server.short_audio(data, "wav", "chinese_16k_common", digit_norm="no").json()["result"]["text"]
        if raw != text:
            continue  # a recognition error, measured by the CER test
        want = "".join(digits[c] for c in text)
        assert res["text"] == want
        # a digit string is one word spanning its characters, inside the clip
        assert [w["word"] for w in res["word_info"]] == [want]
        w = res["word_info"][0]
        assert 300 <= w["start_time"] < w["end_time"] <= len(data) / 32
        checked += 1
        if checked == 10:
            break
    assert checked >= 5
