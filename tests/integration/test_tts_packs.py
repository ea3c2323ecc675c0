"""Speech synthesis by an installed sherpa-onnx TTS pack (issue 15): the
committed test pack `testdata/tts-models/zh-tiny-vits-test`, a VITS-shaped
network in the layout of the official VITS packs (model, tokens, lexicon;
made by tools/tts_testpack/make_vits_testpack.py). It does not speak: each
phone is a harmonic tone whose pitch is set by the speaker (110 Hz for
speaker 0, 240 Hz for speaker 1), so what is checked is the load path, the
voice → speaker mapping of its manifest, the speed (the model's own
length_scale), pitch and volume, and well-formed audio at every rate and
format, over REST and rtts, through the engine worker processes.
"""

import json

import numpy as np
import pytest
import requests

from conftest import ROOT, SISD, Server
from test_rtts import Exchange, connect, rest_pcm, start
from test_tts import audio_of, checked, median_f0, rms, tts

PACKS = ROOT / "testdata/tts-models"
MEI, LONG = "chinese_huaxiaomei_common", "chinese_huaxiaolong_common"
TEXT = "你好，欢迎使用语音合成服务。今天是二零二六年十一月二十八号。"


@pytest.fixture(scope="module")
def srv(models_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("tts-packs")
    s = Server([models_dir, PACKS], data, log=data / "sisd.log")
    yield s
    s.stop()


def pcm(srv, voice, rate="16000", **config):
    data = audio_of(tts(srv, TEXT, property=voice, audio_format="pcm", sample_rate=rate, **config))
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0


def test_the_pack_is_listed_with_its_voices(srv):
    import subprocess
    out = subprocess.run([SISD, "models", "list", "--models", PACKS], capture_output=True, text=True,
                         check=True).stdout
    assert "zh-tiny-vits-test\ttts\tvits\t" in out, out
    assert f"{MEI}=speaker 0" in out and f"{LONG}=speaker 1" in out
    lines = {x.split("\t")[1]: x for x in out.splitlines() if x.startswith("tts-voice\t")}
    assert "pack zh-tiny-vits-test speaker 0" in lines[MEI]
    assert "pack zh-tiny-vits-test speaker 1" in lines[LONG]
    assert "pack " not in lines["chinese_xiaoyan_common"]  # espeak-ng reads the others
    h = requests.get(srv.base + "/health", timeout=5).json()
    assert "zh-tiny-vits-test" in json.dumps(h), h


def test_each_voice_is_read_by_its_speaker(srv):
    f_mei, f_long = median_f0(pcm(srv, MEI)), median_f0(pcm(srv, LONG))
    print(f"\nF0: {MEI} {f_mei:.1f} Hz, {LONG} {f_long:.1f} Hz")
    assert abs(f_mei - 110) / 110 < 0.1, f_mei
    assert abs(f_long - 240) / 240 < 0.1, f_long
    # a voice no pack lists is still espeak-ng's: not the pack's tones
    esp = pcm(srv, "chinese_xiaoyan_common")
    assert len(esp) != len(pcm(srv, MEI))


@pytest.mark.parametrize("fmt", ["wav", "mp3", "pcm"])
@pytest.mark.parametrize("rate", ["8000", "16000"])
def test_well_formed_audio_at_every_rate_and_format(srv, fmt, rate):
    data = audio_of(tts(srv, TEXT, property=MEI, audio_format=fmt, sample_rate=rate))
    x = np.frombuffer(checked(data, fmt, int(rate)), dtype="<i2").astype(np.float64) / 32768.0
    assert np.isfinite(x).all() and rms(x) > 0.01, rms(x)


def test_speed_is_the_models_own_tempo_and_pitch_and_volume_apply(srv):
    base = pcm(srv, MEI)
    n0, f0, r0 = len(base), median_f0(base), rms(base)
    rows = []
    for speed in (-500, 500):
        n = len(pcm(srv, MEI, speed=speed))
        rows.append(("speed", speed, n / n0, 1 / 2 ** (speed / 500)))
    for pitch in (-500, 500):
        rows.append(("pitch", pitch, median_f0(pcm(srv, MEI, pitch=pitch)) / f0, 2 ** (pitch / 1000)))
    rows.append(("volume", 25, rms(pcm(srv, MEI, volume=25)) / r0, 0.5))
    for what, v, got, want in rows:
        print(f"{what} {v}: ratio {got:.3f}, curve {want:.3f}")
    bad = [r for r in rows if abs(r[2] - r[3]) / r[3] > 0.1]
    assert not bad, bad


def test_rtts_chunks_equal_the_rest_answer(srv):
    x = Exchange(connect(srv.base), start(TEXT, property=LONG, audio_format="pcm", sample_rate="8000"))
    assert x.types == ["START", "END"], x.msgs
    assert x.audio == rest_pcm(srv.base, TEXT, property=LONG, sample_rate="8000")
    assert len(x.chunks) >= 2  # one per sentence at least


def test_text_the_lexicon_lacks_still_answers(srv):
    for text in ["hello world", "😀😀", "。。。", "a" * 30]:
        r = tts(srv, text, property=MEI, audio_format="wav", sample_rate="16000")
        assert r.status_code == 200, (text, r.text)
    assert len(rest_pcm(srv.base, "好", property=MEI)) > 1000
