"""Flash recognition, `POST /v1/{project_id}/asr/flash` (SIS-API.md §8, issue
16): every parameter in the query, the audio an object of a bucket the
operator mapped with `--flash-bucket` — a directory (`file://`) and an
S3-compatible bucket (moto's server on loopback) — recognised synchronously
by the jobs' file path: exact transcripts in every listed format, stereo
files per channel, `first_channel_only`, the v3 SDK's RecognizeFlashAsr
unchanged, and each bad input with its SIS code while the server keeps
serving."""

import json
import os
import subprocess
from urllib.parse import urlencode

import pytest
import requests

from conftest import Server
from test_jobs_objects import s3  # noqa: F401  (a fixture: moto's S3 server)

BUCKET = "sis-flash"
PID = "p1"

# format name, ffmpeg output options
FORMATS = {
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"],
    "m4a": ["-c:a", "aac", "-b:a", "48k", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4"],
    "aac": ["-c:a", "aac", "-b:a", "48k", "-f", "adts"],
    "opus": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"],
}


def encode(inputs, fmt, rate=16000, stereo=False):
    args = ["ffmpeg", "-v", "error"]
    for i in inputs:
        args += ["-i", str(i)]
    if stereo:
        args += ["-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo[a]", "-map", "[a]"]
    else:
        args += ["-ac", "1"]
    args += ["-ar", str(rate), *FORMATS[fmt], "-"]
    return subprocess.run(args, check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def fl(models_dir, tmp_path_factory, heldout, s3):  # noqa: F811
    client, env = s3
    client.create_bucket(Bucket=BUCKET)
    d = tmp_path_factory.mktemp("flash")
    files = d / "bucket"
    files.mkdir()
    root, rows = heldout
    sents = [r for r in rows if r["kind"] == "sentence"][:3]
    server = Server([models_dir], d / "data",
                    extra=["--no-probe", "--flash-bucket", f"local=file://{files}",
                           "--flash-bucket", f"cloud=s3://{BUCKET}/audio"],
                    log=d / "sisd.log", env=env)
    yield dict(server=server, files=files, client=client, root=root, rows=sents)
    server.stop()


def put(fl, bucket, key, data):
    if bucket == "local":
        p = fl["files"] / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    else:
        fl["client"].put_object(Bucket=BUCKET, Key=f"audio/{key}", Body=data)


def flash(fl, bucket, key, fmt="wav", prop="chinese_16k_common", **params):
    q = {"property": prop, "audio_format": fmt, "obs_bucket_name": bucket, "obs_object_key": key,
         "digit_norm": "no", **params}
    return requests.post(f"{fl['server'].base}/v1/{PID}/asr/flash?{urlencode(q)}", timeout=120)


def texts(doc):
    return [[s["result"]["text"] for s in c["sentences"]] for c in doc["flash_result"]]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("bucket", ["local", "cloud"])
def test_exact_in_every_format_from_both_buckets(fl, fmt, bucket):
    r = fl["rows"][0]
    src = fl["root"] / "16k" / f"{r['id']}.wav"
    key = f"dir/a b {fmt}.{fmt}"
    put(fl, bucket, key, encode([src], fmt))
    resp = flash(fl, bucket, key, fmt, need_word_info="yes")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert set(doc) == {"trace_id", "audio_duration", "flash_result"}, doc
    assert doc["trace_id"] == resp.headers["X-Request-Id"]
    assert texts(doc) == [[r["text"]]], (fmt, doc)
    assert doc["flash_result"][0]["channel_id"] == 0
    s = doc["flash_result"][0]["sentences"][0]
    assert 0 <= s["start_time"] < s["end_time"] <= doc["audio_duration"] + 50
    assert "".join(w["word"] for w in s["result"]["word_info"]) == r["text"]


def test_stereo_per_channel_and_first_channel_only(fl):
    a, b = fl["rows"][1], fl["rows"][2]
    srcs = [fl["root"] / "8k" / f"{x['id']}.wav" for x in (a, b)]
    put(fl, "cloud", "stereo.wav", encode(srcs, "wav", rate=8000, stereo=True))
    doc = flash(fl, "cloud", "stereo.wav", prop="chinese_8k_common").json()
    assert [c["channel_id"] for c in doc["flash_result"]] == [0, 1], doc
    assert texts(doc) == [[a["text"]], [b["text"]]], doc
    doc = flash(fl, "cloud", "stereo.wav", prop="chinese_8k_common", first_channel_only="yes").json()
    assert texts(doc) == [[a["text"]]], doc


def test_sdk_recognize_flash_asr_unchanged(fl):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdksis.v1 import SisClient
    from huaweicloudsdksis.v1.model import RecognizeFlashAsrRequest
    r = fl["rows"][0]
    put(fl, "local", "sdk/clip.wav", encode([fl["root"] / "16k" / f"{r['id']}.wav"], "wav"))
    client = SisClient.new_builder().with_credentials(BasicCredentials("ak", "sk", PID)) \
        .with_endpoint(fl["server"].base).build()
    resp = client.recognize_flash_asr(RecognizeFlashAsrRequest(
        _property="chinese_16k_common", audio_format="wav", add_punc="no", digit_norm="no",
        need_word_info="no", first_channel_only="no", obs_bucket_name="local", obs_object_key="sdk/clip.wav"))
    assert resp.flash_result[0].sentences[0].result.text == r["text"]
    assert resp.audio_duration > 0 and resp.trace_id


def test_bad_inputs_get_their_codes_and_the_server_keeps_serving(fl):
    base = fl["server"].base
    put(fl, "local", "ok.wav", encode([fl["root"] / "16k" / f"{fl['rows'][0]['id']}.wav"], "wav"))
    big = fl["files"] / "big.wav"
    with open(big, "wb") as f:
        f.truncate(100 * 1000 * 1000 + 1)
    # 31 minutes of 8 kHz silence, in a WAV the decoder reads as a stream
    long = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1860",
                           "-c:a", "pcm_s16le", "-f", "wav", "-"], check=True, capture_output=True).stdout
    put(fl, "local", "long.wav", long)
    put(fl, "local", "empty.wav", b"")
    put(fl, "cloud", "tiny.wav", b"R")
    cases = [
        (dict(bucket="nowhere", key="ok.wav"), "SIS.0507"),
        (dict(bucket="Bad_Name", key="ok.wav"), "SIS.0507"),
        (dict(bucket="local", key="missing.wav"), "SIS.0512"),
        (dict(bucket="cloud", key="missing.wav"), "SIS.0512"),
        (dict(bucket="local", key="../outside.wav"), "SIS.0512"),
        (dict(bucket="local", key="/abs.wav"), "SIS.0512"),
        (dict(bucket="local", key="big.wav"), "SIS.0504"),
        (dict(bucket="local", key="empty.wav"), "SIS.0504"),
        (dict(bucket="cloud", key="tiny.wav"), "SIS.0535"),
        (dict(bucket="local", key="long.wav", prop="chinese_8k_common"), "SIS.0511"),
        (dict(bucket="local", key="ok.wav", fmt="flac"), "SIS.0032"),
        (dict(bucket="local", key="ok.wav", prop="chinese_16k_nothing"), "SIS.0032"),
        (dict(bucket="local", key="ok.wav", add_punc="maybe"), "SIS.0032"),
        (dict(bucket="local", key="ok.wav", vocabulary_id="5F1C3B2A-0000-4000-8000-000000000000"), "SIS.0201"),
    ]
    for params, code in cases:
        resp = flash(fl, **params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error_code"] == code, (params, resp.text)
    # a missing parameter, and no query at all
    resp = requests.post(f"{base}/v1/{PID}/asr/flash?property=chinese_16k_common", timeout=30)
    assert resp.json()["error_code"] == "SIS.0012", resp.text
    assert requests.post(f"{base}/v1/{PID}/asr/flash", timeout=30).json()["error_code"] == "SIS.0012"
    # nothing is left in the spool, and the server still serves
    spool = fl["server"].proc.args[fl["server"].proc.args.index("--data-dir") + 1]
    assert not [f for f in os.listdir(os.path.join(spool, "jobs")) if f.startswith("flash-")]
    assert flash(fl, "local", "ok.wav").status_code == 200
    h = requests.get(f"{base}/health", timeout=5).json()
    assert h["status"] == "ok", json.dumps(h)
