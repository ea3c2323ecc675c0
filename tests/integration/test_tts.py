"""Speech synthesis, `POST /v1/{project_id}/tts` (issue 15): espeak-ng run as
a separate process behind the SIS API.

1. Round trip: held-out sentences and digit strings are synthesised at 8 and
   16 kHz in wav, mp3 and pcm, checked and decoded by ffmpeg, and recognised
   by the project's test ASR packs (trained on espeak-ng cmn-Latn-pinyin
   speech); the character error rate of each combination is printed and must
   be at most 5 %.
2. speed, pitch and volume measured on the audio: duration against
   2^(speed/500), F0 (autocorrelation) against 2^(pitch/1000), RMS against
   volume/50 with the peak limit, each within 10 %.
3. Bad inputs each get their SIS error, and the server keeps serving.
4. The official v3 SDK (`huaweicloudsdksis`, AK/SK) drives RunTts unchanged
   and its response model reads the answer.
5. The WebSocket-generation SDK's `TtsCustomizationClient` (../shared) works
   unchanged.
"""

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import SHARED, SISD, Server, edit_distance, sis_store

PID = "7a1b2c3d4e5f60718293a4b5c6d7e8f9"
HANZI_DIGITS = "零一二三四五六七八九"
PUNCT = set("，。！？、；：,.!?;: ")


def tts(server, text, project="p1", **config):
    body = {"text": text}
    if config:
        body["config"] = config
    return requests.post(f"{server.base}/v1/{project}/tts", data=json.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=60)


def audio_of(resp):
    assert resp.status_code == 200, resp.text
    v = resp.json()
    assert set(v) == {"trace_id", "result"} and set(v["result"]) == {"data"}, v.keys()
    assert v["trace_id"] == resp.headers["X-Request-Id"]
    return base64.b64decode(v["result"]["data"])


def raw_input_args(fmt, rate):
    return ["-f", "s16le", "-ar", str(rate), "-ac", "1"] if fmt == "pcm" else []


def probe(data, fmt, rate):
    """ffprobe's view of the first audio stream: codec, rate, channels, duration."""
    with tempfile.NamedTemporaryFile(suffix="." + fmt) as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["ffprobe", "-v", "error", *raw_input_args(fmt, rate), "-show_streams",
                              "-show_format", "-of", "json", f.name],
                             capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    s = info["streams"][0]
    duration = float(s.get("duration") or info["format"]["duration"])
    return s["codec_name"], int(s["sample_rate"]), int(s["channels"]), duration


def decode(data, fmt, rate):
    """The audio as 16-bit mono PCM at `rate`, decoded by ffmpeg."""
    return subprocess.run(["ffmpeg", "-v", "error", *raw_input_args(fmt, rate), "-i", "pipe:0",
                           "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1"],
                          input=data, capture_output=True, check=True).stdout


CODECS = {"wav": "pcm_s16le", "pcm": "pcm_s16le", "mp3": "mp3"}


def checked(data, fmt, rate):
    """ffprobe agrees on codec, rate and channels; the PCM samples."""
    codec, r, channels, duration = probe(data, fmt, rate)
    assert (codec, r, channels) == (CODECS[fmt], rate, 1), (fmt, rate, codec, r, channels)
    assert duration > 0.2
    if fmt == "wav":
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    pcm = decode(data, fmt, rate)
    # ffprobe's MP3 duration counts LAME's delay and padding, which ffmpeg's
    # decoder trims by the Info tag
    slack = 0.25 if fmt == "mp3" else 0.01
    assert abs(len(pcm) / 2 / rate - duration) < slack, (len(pcm), duration)
    return pcm


def clean(text):
    return "".join(c for c in text if c not in PUNCT)


def cer_of(pairs):
    errors = sum(edit_distance(ref, hyp) for ref, hyp in pairs)
    return errors / max(1, sum(len(ref) for ref, _ in pairs))


def digit_form(hanzi):
    """The ASCII digits of a digit string when text normalisation reads them
    digit by digit again (a leading zero, or a mobile number: 11 digits
    starting with 1); else None, and the hanzi is sent."""
    digits = "".join(str(HANZI_DIGITS.index(c)) for c in hanzi)
    if digits.startswith("0") or (len(digits) == 11 and digits.startswith("1")):
        return digits
    return None


@pytest.fixture(scope="module")
def round_trip_texts(heldout):
    _, rows = heldout
    sentences = [r["text"] for r in rows if r["kind"] == "sentence"][:42]
    digit_strings = [r["text"] for r in rows
                     if r["kind"] == "number" and all(c in HANZI_DIGITS for c in r["text"])][:42]
    assert len(sentences) >= 40 and len(digit_strings) >= 40
    return sentences, digit_strings


# ---- 1. round trip through the test ASR ----

FORMATS = ["wav", "mp3", "pcm"]


@pytest.mark.parametrize("rate", [8000, 16000])
def test_round_trip_through_asr(server, round_trip_texts, rate):
    """Every text at this rate, the formats taking turns (each format gets a
    third of the sentences and of the digit strings); CER per format."""
    sentences, digit_strings = round_trip_texts
    prop = "chinese_8k_common" if rate == 8000 else "chinese_16k_common"
    pcm_format = "pcm8k16bit" if rate == 8000 else "pcm16k16bit"
    results = {(fmt, kind): [] for fmt in FORMATS for kind in ("sentence", "digits")}
    sent_as_digits = 0
    jobs = [("sentence", t, t) for t in sentences]
    for t in digit_strings:
        d = digit_form(t)
        sent_as_digits += d is not None
        jobs.append(("digits", d or t, t))
    for i, (kind, text, ref) in enumerate(jobs):
        fmt = FORMATS[i % 3]
        voice = "chinese_xiaoyan_common" if i % 2 == 0 else "chinese_xiaoyu_common"
        data = audio_of(tts(server, text, audio_format=fmt, sample_rate=str(rate), property=voice))
        pcm = checked(data, fmt, rate)
        r = server.short_audio(pcm, pcm_format, prop, digit_norm="no")
        assert r.status_code == 200, r.text
        results[(fmt, kind)].append((clean(ref), clean(r.json()["result"]["text"])))
    assert sent_as_digits >= 10, "text normalisation is exercised by digit input"
    report = []
    for (fmt, kind), pairs in results.items():
        assert pairs
        report.append((fmt, kind, len(pairs), cer_of(pairs)))
    for fmt in FORMATS:
        pairs = results[(fmt, "sentence")] + results[(fmt, "digits")]
        report.append((fmt, "all", len(pairs), cer_of(pairs)))
    print(f"\nTTS -> ASR at {rate} Hz ({prop}):")
    for fmt, kind, n, cer in report:
        print(f"  {rate} {fmt:4} {kind:8} n={n:3} CER {cer:.2%}")
    for fmt, kind, n, cer in report:
        assert cer <= 0.05, (rate, fmt, kind, cer, results[(fmt, kind)])


# ---- 2. speed, pitch, volume measured ----

MEASURE_TEXT = "今天天气很好，我们一起去公园散步，然后在湖边的小饭馆吃午饭。"


def samples(server, **config):
    data = audio_of(tts(server, MEASURE_TEXT, audio_format="pcm", sample_rate="16000", **config))
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0


def median_f0(x, rate=16000):
    """Median F0 of voiced frames by autocorrelation (60-500 Hz)."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = rate // 500, rate // 60
    level = np.sqrt(np.mean(x ** 2))
    f0s = []
    for start in range(0, len(x) - frame, hop):
        f = x[start:start + frame]
        f = f - f.mean()
        if np.sqrt(np.mean(f ** 2)) < level:
            continue  # quiet or unvoiced
        ac = np.correlate(f, f, mode="full")[frame - 1:]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.5:
            f0s.append(rate / lag)
    assert len(f0s) > 20
    return float(np.median(f0s))


def rms(x):
    return float(np.sqrt(np.mean(x ** 2)))


def speech_seconds(x, rate=16000):
    """Seconds of 10 ms frames louder than -30 dB of the loudest frame
    (speech, not the silence around and between it)."""
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    level = np.sqrt(np.mean(frames ** 2, axis=1))
    return float(np.sum(level > level.max() * 10 ** (-30 / 20))) / 100


def test_speed_pitch_volume_measured(server):
    base = samples(server)
    d0, f0, r0, p0 = speech_seconds(base), median_f0(base), rms(base), float(np.max(np.abs(base)))
    print(f"\nbase: {len(base) / 16000:.2f} s ({d0:.2f} s of speech), F0 {f0:.1f} Hz, RMS {r0:.4f}, "
          f"peak {p0:.3f}")
    errors = []
    for speed in (-500, -250, 250, 500):
        d = speech_seconds(samples(server, speed=speed))
        want = 1 / 2 ** (speed / 500)
        errors.append(("speed", speed, d / d0, want))
    for pitch in (-500, -250, 250, 500):
        f = median_f0(samples(server, pitch=pitch))
        want = 2 ** (pitch / 1000)
        errors.append(("pitch", pitch, f / f0, want))
    limit_at_50 = min(1.0, 0.98 / p0)
    for volume in (10, 25, 75, 100):
        r = rms(samples(server, volume=volume))
        want = min(volume / 50, 0.98 / p0) / limit_at_50
        errors.append(("volume", volume, r / r0, want))
    assert rms(samples(server, volume=0)) == 0.0
    for what, value, got, want in errors:
        print(f"  {what:6} {value:5}: measured ratio {got:.3f}, curve {want:.3f}, error {abs(got / want - 1):.1%}")
    for what, value, got, want in errors:
        assert abs(got / want - 1) <= 0.10, (what, value, got, want)


# ---- 3. bad inputs ----

def raw_post(server, body: bytes):
    return requests.post(f"{server.base}/v1/p1/tts", data=body,
                         headers={"Content-Type": "application/json"}, timeout=30)


BAD = [
    ("empty text", {"text": ""}, "SIS.0032", "text cannot be empty"),
    ("blank text", {"text": " \n "}, "SIS.0032", "text cannot be empty"),
    ("no text", {"config": {}}, "SIS.0012", "'text' is required"),
    ("501 characters", {"text": "好" * 501}, "SIS.0032", "501 characters"),
    ("unknown voice", {"text": "好", "config": {"property": "chinese_nobody_common"}}, "SIS.0032",
     "'property' chinese_nobody_common"),
    ("bad rate", {"text": "好", "config": {"sample_rate": "11025"}}, "SIS.0402", "'sample_rate' is invalid"),
    ("8 kHz of a 16 kHz voice", {"text": "好", "config": {"property": "chinese_huanvxia_literature"}},
     "SIS.0402", "16000 only"),
    ("bad format", {"text": "好", "config": {"audio_format": "ogg"}}, "SIS.0032", "'audio_format' is invalid"),
    ("speed 501", {"text": "好", "config": {"speed": 501}}, "SIS.0032", "'speed' is invalid"),
    ("pitch -501", {"text": "好", "config": {"pitch": -501}}, "SIS.0032", "'pitch' is invalid"),
    ("volume 101", {"text": "好", "config": {"volume": 101}}, "SIS.0032", "'volume' is invalid"),
    ("text not a string", {"text": 5}, "SIS.0032", "'text' must be a string"),
    ("config not an object", {"text": "好", "config": "wav"}, "SIS.0032", "'config' must be an object"),
    ("speed a string", {"text": "好", "config": {"speed": "fast"}}, "SIS.0032", "must be an integer"),
    ("volume a fraction", {"text": "好", "config": {"volume": 50.5}}, "SIS.0032", "must be an integer"),
    ("rate a boolean", {"text": "好", "config": {"sample_rate": True}}, "SIS.0032", "must be a string"),
    ("voice a number", {"text": "好", "config": {"property": 1}}, "SIS.0032", "must be a string"),
    ("bad SSML", {"text": "<speak>你好<prosody rate='fast'>快</prosody></speak>"}, "SIS.0032", "SSML"),
    ("unclosed SSML", {"text": "<speak>你好"}, "SIS.0032", "SSML"),
    ("long SSML break", {"text": "<speak>你好<break time=\"20s\"/></speak>"}, "SIS.0032", "SSML"),
]

RAW_BAD = [
    ("invalid UTF-8", b'{"text": "\xff\xfe\xfd"}', "SIS.0032", "UTF-8"),
    ("invalid JSON", b'{"text": "x",', "SIS.0032", "not valid JSON"),
    ("not an object", b'["x"]', "SIS.0032", "JSON object"),
    ("lone surrogate", b'{"text": "\\ud800"}', "SIS.0032", "not valid JSON"),
]


def still_serves(server):
    data = audio_of(tts(server, "好", audio_format="pcm"))
    assert len(data) > 1000


@pytest.mark.parametrize("name,body,code,msg", BAD + RAW_BAD, ids=[c[0] for c in BAD + RAW_BAD])
def test_bad_input_gets_its_sis_error(server, name, body, code, msg):
    r = raw_post(server, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert r.status_code == 400, (name, r.status_code, r.text)
    v = r.json()
    assert v["error_code"] == code and msg in v["error_msg"], (name, v)
    assert "X-Request-Id" in r.headers
    still_serves(server)


def test_ssml_subset_reads_breaks(server):
    plain = audio_of(tts(server, "你好世界", audio_format="pcm", sample_rate="16000"))
    broken = audio_of(tts(server, '<speak>你好<break time="800ms"/>世界</speak>', audio_format="pcm",
                          sample_rate="16000"))
    extra = (len(broken) - len(plain)) / 2 / 16000
    assert 0.7 < extra < 1.2, extra


def test_health_and_models_list_show_tts(server, models_dir):
    h = requests.get(server.base + "/health", timeout=5).json()
    assert h["tts"]["available"] is True and h["tts"]["voices"] == 38, h["tts"]
    out = subprocess.run([SISD, "models", "list", "--models", models_dir], capture_output=True, text=True,
                         check=True).stdout
    lines = [line.split("\t") for line in out.splitlines()]
    assert ["tts", "espeak-ng", "available"] == [x for x in lines if x[0] == "tts"][0][:3], out
    voices = {x[1]: x for x in lines if x[0] == "tts-voice"}
    assert len(voices) == 38
    assert voices["chinese_xiaoyan_common"][2:] == ["female", "cmn-Latn-pinyin+f2 -p 50", "8000,16000"]
    assert voices["english_alvin_common"][2:4] == ["male", "en-us+m2 -p 50"]
    assert voices["chinese_huanvxia_literature"][4] == "16000"
    missing = subprocess.run([SISD, "models", "list", "--models", models_dir, "--espeak-ng", "/nonexistent/espeak"],
                             capture_output=True, text=True, check=True).stdout
    assert "tts\tespeak-ng\tUNAVAILABLE" in missing


def test_without_espeak_tts_is_an_internal_error(models_dir, tmp_path):
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--espeak-ng", "/nonexistent/espeak-ng"],
               log=tmp_path / "sisd.log")
    try:
        h = requests.get(s.base + "/health", timeout=5).json()
        assert h["status"] == "ok" and h["tts"]["available"] is False
        assert "/nonexistent/espeak-ng" in h["tts"]["reason"]
        r = tts(s, "你好")
        assert r.status_code == 500 and r.json()["error_code"] == "SIS.0100", r.text
        assert "/nonexistent" not in r.text
        # the rest of the server is unaffected
        assert requests.get(s.base + "/health", timeout=5).status_code == 200
    finally:
        s.stop()
    log = (tmp_path / "sisd.log").read_text()
    assert "speech synthesis unavailable" in log
    lines = [line for line in log.splitlines() if "api=\"tts\"" in line or "api=tts" in line]
    assert len(lines) == 1 and "SIS.0100" in lines[0], log[-2000:]


def test_one_log_line_per_request(models_dir, tmp_path):
    s = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=tmp_path / "sisd.log")
    try:
        ok = tts(s, "你好，世界")
        bad = tts(s, "好", volume=101)
    finally:
        s.stop()
    log = (tmp_path / "sisd.log").read_text()
    lines = [line for line in log.splitlines() if "api=tts" in line or 'api="tts"' in line]
    assert len(lines) == 2, log[-3000:]
    assert ok.headers["X-Request-Id"] in lines[0] and "text_chars=5" in lines[0] and "audio_s=" in lines[0]
    assert bad.headers["X-Request-Id"] in lines[1] and "SIS.0032" in lines[1]
    assert "你好" not in log, "the text is never logged"


# ---- 4 and 5. the SDKs, unchanged, with AK/SK ----

@pytest.fixture(scope="module")
def signed(models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("tts-sdk")
    env, cred = sis_store(d, PID)
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    yield dict(server=server, cred=cred)
    server.stop()


def test_v3_sdk_run_tts(signed):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdksis.v1 import SisClient
    from huaweicloudsdksis.v1.model import PostCustomTTSReq, RunTtsRequest, RunTtsResponse, TtsConfig

    c = signed["cred"]
    client = SisClient.new_builder().with_credentials(
        BasicCredentials(c["access_key"], c["secret_key"], c["project_id"])).with_endpoint(
        signed["server"].base).build()
    for fmt, rate in (("wav", "16000"), ("mp3", "8000"), ("pcm", "8000")):
        r = client.run_tts(RunTtsRequest(body=PostCustomTTSReq(text="你好，世界", config=TtsConfig(
            audio_format=fmt, sample_rate=rate, _property="chinese_xiaoyan_common", speed=0, pitch=0, volume=50))))
        assert isinstance(r, RunTtsResponse) and r.status_code == 200
        assert r.trace_id
        checked(base64.b64decode(r.result.data), fmt, int(rate))
    # no config: the SDK sends none, the defaults apply (wav, 8000 Hz)
    r = client.run_tts(RunTtsRequest(body=PostCustomTTSReq(text="你好")))
    checked(base64.b64decode(r.result.data), "wav", 8000)
    with pytest.raises(ClientRequestException) as e:
        client.run_tts(RunTtsRequest(body=PostCustomTTSReq(text="你好", config=TtsConfig(speed=900))))
    assert e.value.status_code == 400 and e.value.error_code == "SIS.0032"


def test_websocket_generation_sdk_tts_client(signed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the SDK writes huaweicloud_sis.log here
    sys.path.insert(0, str(SHARED / "clients"))
    from huaweicloud_sis.bean.tts_request import TtsCustomRequest
    from huaweicloud_sis.client.tts_client import TtsCustomizationClient
    from huaweicloud_sis.exception.exceptions import ServerException

    c = signed["cred"]
    client = TtsCustomizationClient(c["access_key"], c["secret_key"], "cn-north-4", PID,
                                    service_endpoint=signed["server"].base)
    req = TtsCustomRequest("欢迎使用语音合成服务。")
    req.set_sample_rate("16000")
    req.set_property("chinese_xiaoqi_common")
    req.set_saved(True)
    req.set_saved_path(str(tmp_path / "out.wav"))
    result = client.get_ttsc_response(req)
    assert result["is_saved"] is True and result["trace_id"]
    checked((tmp_path / "out.wav").read_bytes(), "wav", 16000)
    bad = TtsCustomRequest("你好")
    bad.set_volume(101)
    with pytest.raises(ServerException) as e:
        client.get_ttsc_response(bad)
    assert e.value.get_error_code() == "SIS.0032"
