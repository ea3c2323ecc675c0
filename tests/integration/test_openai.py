"""OpenAI-compatible transcription (issue 19): the official `openai` Python
package, with only `base_url` and `api_key` changed, transcribes held-out
speech against a real sisd (--auth sis, an API key made by `sisd api-keys
create`) in every response format; subtitles' cues are the recognised
sentences; a wrong or revoked key and bad requests get the OpenAI error
body and the status the client maps to its exception classes."""

import json
import re
import subprocess
import wave

import openai
import pytest

from conftest import SISD, Server, cli, sis_store

PID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.fixture(scope="module")
def api(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("openai")
    env, cred = sis_store(d, PID)
    key = cli(env, "api-keys", "create", "--project", PID, "--description", "test")[0]
    assert key["project_id"] == PID and key["api_key"].startswith(key["id"])
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    # two sentences with a pause between them, one file
    ab = d / "ab.wav"
    subprocess.run(["sox", root / "16k" / f"{sent[0]['id']}.wav", root / "16k" / f"{sent[1]['id']}.wav",
                    ab, "pad", "0.5", "1"], check=True)
    client = openai.OpenAI(base_url=server.base + "/v1", api_key=key["api_key"], max_retries=0)
    yield dict(server=server, client=client, key=key, env=env, file=ab, texts=[r["text"] for r in sent], dir=d)
    server.stop()


def seconds(ts):
    h, m, s = ts.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_every_response_format(api):
    c, texts = api["client"], api["texts"]
    with open(api["file"], "rb") as f:
        r = c.audio.transcriptions.create(model="chinese_16k_general", file=f)
    assert r.text == "".join(texts)
    with open(api["file"], "rb") as f:
        r = c.audio.transcriptions.create(model="whisper-1", file=f, language="zh", response_format="text")
    assert r.strip() == "".join(texts)
    for fmt in ("srt", "vtt"):
        with open(api["file"], "rb") as f:
            r = c.audio.transcriptions.create(model="chinese_16k_general", file=f, response_format=fmt)
        cues = re.findall(r"(\d\d:\d\d:\d\d[,.]\d\d\d) --> (\d\d:\d\d:\d\d[,.]\d\d\d)\n(.+)\n", r)
        assert [t for _, _, t in cues] == texts, r
        if fmt == "vtt":
            assert r.startswith("WEBVTT\n")
        else:
            assert r.startswith("1\n")
        starts = [seconds(a) for a, _, _ in cues]
        ends = [seconds(b) for _, b, _ in cues]
        # the second sentence starts after the first ends, in the 1 s pause
        assert 0.2 <= starts[0] < ends[0] < starts[1] < ends[1]
    with wave.open(str(api["file"])) as w:
        duration = w.getnframes() / w.getframerate()
    with open(api["file"], "rb") as f:
        r = c.audio.transcriptions.create(model="chinese_16k_general", file=f, response_format="verbose_json",
                                          timestamp_granularities=["word", "segment"])
    assert r.text == "".join(texts)
    assert abs(r.duration - duration) < 0.05
    assert [s.text for s in r.segments] == texts
    words = r.words
    assert "".join(w.word for w in words) == "".join(texts)
    for s in r.segments:
        inside = [w for w in words if s.start - 0.01 <= w.start < s.end]
        assert "".join(w.word for w in inside) == s.text
    # segments only (the default granularity): no words
    with open(api["file"], "rb") as f:
        raw = c.audio.transcriptions.with_raw_response.create(model="chinese_16k_general", file=f,
                                                              response_format="verbose_json")
    body = json.loads(raw.text)
    assert "words" not in body and len(body["segments"]) == 2


def test_errors_have_the_openai_shape(api):
    c = api["client"]
    bad = openai.OpenAI(base_url=api["server"].base + "/v1", api_key="sis-not-a-key", max_retries=0)
    with open(api["file"], "rb") as f, pytest.raises(openai.AuthenticationError) as e:
        bad.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    with open(api["file"], "rb") as f, pytest.raises(openai.BadRequestError) as e:
        c.audio.transcriptions.create(model="whisper-1", file=f, response_format="mp3")
    assert e.value.body["param"] == "response_format"
    with open(api["file"], "rb") as f, pytest.raises(openai.BadRequestError) as e:
        c.audio.transcriptions.create(model="whisper-1", file=f, language="fr")
    assert e.value.body["param"] == "language"
    # not audio: the decoder's refusal, as an OpenAI 400
    junk = api["dir"] / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\x00" * 100)
    with open(junk, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        c.audio.transcriptions.create(model="whisper-1", file=f)
    assert e.value.body["type"] == "invalid_request_error"
    # a revoked key stops working
    second = cli(api["env"], "api-keys", "create", "--project", PID)[0]
    k2 = openai.OpenAI(base_url=api["server"].base + "/v1", api_key=second["api_key"], max_retries=0)
    with open(api["file"], "rb") as f:
        assert k2.audio.transcriptions.create(model="whisper-1", file=f).text
    cli(api["env"], "api-keys", "revoke", second["id"])
    with open(api["file"], "rb") as f, pytest.raises(openai.AuthenticationError):
        k2.audio.transcriptions.create(model="whisper-1", file=f)
    listed = cli(api["env"], "api-keys", "list", "--project", PID)
    assert {k["id"]: k["revoked"] is not None for k in listed} == {api["key"]["id"]: False, second["id"]: True}
    assert all("api_key" not in k for k in listed)
    assert api["server"].proc.poll() is None


def test_speech(api, tmp_path):
    """client.audio.speech: mp3 (default), wav and pcm that ffmpeg reads
    as speech of the expected length; speed halves it; what this server
    cannot make is refused with the parameter named."""
    c = api["client"]
    durations = {}
    for fmt in ("mp3", "wav", "pcm"):
        r = c.audio.speech.create(model="tts-1", voice="alloy", input="今天天气很好，我们去公园散步。",
                                  response_format=fmt)
        out = tmp_path / f"s.{fmt}"
        r.write_to_file(out)
        src = ["-f", "s16le", "-ar", "16000", "-ac", "1"] if fmt == "pcm" else []
        probe = subprocess.run(["ffmpeg", "-v", "error", *src, "-i", str(out), "-f", "s16le", "-ac", "1",
                                "-ar", "16000", "-"], capture_output=True, check=True)
        durations[fmt] = len(probe.stdout) / 32000
        peak = max(abs(int.from_bytes(probe.stdout[i:i + 2], "little", signed=True))
                   for i in range(0, len(probe.stdout), 64))
        assert peak > 1000, (fmt, peak)
    assert 1.0 < durations["wav"] < 10 and abs(durations["wav"] - durations["pcm"]) < 0.01
    assert abs(durations["mp3"] - durations["wav"]) < 0.2
    fast = c.audio.speech.create(model="tts-1", voice="alloy", input="今天天气很好，我们去公园散步。",
                                 response_format="pcm", speed=2.0)
    assert 0.4 < (len(fast.content) / 32000) / durations["pcm"] < 0.6
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model="tts-1", voice="alloy", input="你好", response_format="opus")
    assert e.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model="tts-1", voice="alloy", input="你好", speed=4.0)
    assert e.value.body["param"] == "speed"
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model="tts-1", voice="alloy", input="好" * 501)
    assert e.value.body["param"] == "input"


def test_8k_and_tiny_inputs(api, heldout):
    """A telephone-rate file is recognised like its 16 kHz twin; a file of
    one sample and one of silence give empty text, not an error; the server
    answers the next request."""
    c = api["client"]
    root, rows = heldout
    row = [r for r in rows if r["kind"] == "sentence"][0]
    with open(root / "8k" / f"{row['id']}.wav", "rb") as f:
        assert c.audio.transcriptions.create(model="chinese_8k_general", file=f).text == row["text"]
    for name, frames in (("one", b"\x01\x00"), ("silence", b"\x00\x00" * 16000)):
        p = api["dir"] / f"{name}.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(frames)
        with open(p, "rb") as f:
            r = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
        assert r.text == "" and r.segments == [], r
    with open(api["file"], "rb") as f:
        assert c.audio.transcriptions.create(model="whisper-1", file=f).text == "".join(api["texts"])
