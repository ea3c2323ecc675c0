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


def test_vad_segments_of_real_speech(server):
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
