"""Real human speech (../shared/audio) in each format: no error. The tiny
model cannot transcribe it, but the VAD can find it: the words the server
returns lie inside the clip's speech, and for the clip with a published VAD
golden (FunASR sample.wav, speech 770-5980 ms) inside that region."""

import pytest

from conftest import SHARED
from encode import FORMATS

CLIPS = sorted(p for p in (SHARED / "audio").rglob("*.wav"))


@pytest.mark.skipif(not CLIPS, reason="../shared/audio missing")
@pytest.mark.parametrize("name,fmt,rate,enc", FORMATS, ids=[f[0] for f in FORMATS])
def test_real_speech_every_format(server, name, fmt, rate, enc):
    for clip in CLIPS:
        data = enc(clip)
        r = server.short_audio(data, fmt, f"chinese_{rate}k_common", need_word_info="yes")
        if r.status_code == 400 and "longer than 60 s" in r.text:
            continue
        assert r.status_code == 200, (clip.name, r.text)
        res = r.json()["result"]
        for w in res["word_info"]:
            assert 0 <= w["start_time"] <= w["end_time"]


@pytest.fixture(scope="module")
def vad_server(models_dir, tmp_path_factory):
    from conftest import Server

    data = tmp_path_factory.mktemp("vad")
    s = Server([models_dir], data, extra=["--vad-min-audio-s", "0"])
    yield s
    s.stop()


def test_vad_segments_of_real_speech(vad_server):
    server = vad_server
    clip = SHARED / "audio/funasr/sample.wav"
    from encode import ffmpeg

    r = server.short_audio(ffmpeg(clip, "-ar", "16000", "-f", "s16le"), "pcm16k16bit", "chinese_16k_common",
                           need_word_info="yes")
    assert r.status_code == 200
    words = r.json()["result"]["word_info"]
    assert words, "speech was found and decoded"
    # golden speech region 770-5980 ms; segments are padded by 400 ms before, 250 ms after
    assert words[0]["start_time"] >= 770 - 450
    assert words[-1]["end_time"] <= 5980 + 300


def test_vad_split_keeps_accuracy(server, vad_server, heldout):
    """The VAD path (every clip split at pauses) loses no more than a point of CER."""
    from conftest import edit_distance

    root, rows = heldout
    clips = [r for r in rows if r["kind"] == "number"][:40] + [r for r in rows if r["kind"] == "sentence"][:40]
    errs = {"whole": 0, "vad": 0}
    n = 0
    for c in clips:
        data = (root / "16k" / f"{c['id']}.wav").read_bytes()
        for key, s in (("whole", server), ("vad", vad_server)):
            t = s.short_audio(data, "wav", "chinese_16k_common", digit_norm="no").json()["result"]["text"]
            errs[key] += edit_distance(c["text"], t)
        n += len(c["text"])
    whole, vad = 100 * errs["whole"] / n, 100 * errs["vad"] / n
    print(f"\nheld-out CER decoded whole {whole:.2f} %, split by VAD {vad:.2f} %")
    assert vad <= whole + 1.0
