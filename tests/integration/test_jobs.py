"""Recorded-file transcription jobs (issue 5) through the real PyPI SDK
(`huaweicloudsdksis` PushTranscriberJobs / CollectTranscriberJob, AK/SK): every
container format made by Debian's ffmpeg from held-out synthetic speech,
exact transcripts, stereo roles by channel, signed callbacks, and the address
rules that block server-side request forgery."""

import http.server
import json
import os
import subprocess
import threading
import time

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdksis.v1 import (AnalysisInfo, CollectTranscriberJobRequest, PostTranscriberJobs,
                                  PushTranscriberJobsRequest, SisClient, TranscriberConfig)

from conftest import SISD, Server, cli
from encode import amr

PID = "fedcba9876543210fedcba9876543210"


class Files(http.server.ThreadingHTTPServer):
    """A file server and callback receiver on loopback."""

    def __init__(self, root, host="127.0.0.1", redirect_to=None, once=False):
        """`once`: each file is served once, then 410 (like an expired pre-signed URL)."""
        self.root, self.redirect_to, self.posts, self.gets = root, redirect_to, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.gets.append(self.path)
                if server.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.end_headers()
                    return
                p = server.root / self.path.lstrip("/")
                if not p.is_file() or (once and server.gets.count(self.path) > 1):
                    self.send_error(410 if p.is_file() else 404)
                    return
                data = p.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                # the first delivery of each job fails, so retries are exercised
                n = sum(1 for _, b in server.posts if json.loads(b)["job_id"] == json.loads(body)["job_id"])
                self.send_response(503 if n == 1 else 200)
                self.end_headers()

        super().__init__((host, 0), Handler)
        self.url = f"http://{host}:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def ffmpeg(args, out):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True)


@pytest.fixture(scope="module")
def jobs(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("jobs")
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (d / "mk").write_text(key)
    env = {"SIS_DATA_DIR": str(d / "data"), "SIS_MASTER_KEY_FILE": str(d / "mk"), "SIS_FETCH_ALLOW": "127.0.0.1"}
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-north-4", "--id", PID)
    cred = cli(env, "credentials", "create", "--project", PID)[0]
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=d / "sisd.log", env=env)
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:3]
    files = d / "files"
    files.mkdir()
    # two sentences with a pause: 0.5 s, A, 1 s, B, 1 s
    src = files / "ab.wav"
    subprocess.run(["sox", root / "16k" / f"{sent[0]['id']}.wav", root / "16k" / f"{sent[1]['id']}.wav",
                    src, "pad", "0.5", "1"], check=True)
    subprocess.run(["sox", src, files / "ab_pad.wav", "pad", "0", "1"], check=True)
    dur_ms = int(float(subprocess.check_output(["soxi", "-D", str(files / "ab_pad.wav")], text=True)) * 1000)
    fs = Files(files)
    c = BasicCredentials(cred["access_key"], cred["secret_key"], PID)
    sdk = SisClient.new_builder().with_credentials(c).with_endpoint(server.base).build()
    yield dict(server=server, sdk=sdk, files=files, fs=fs, texts=[sent[0]["text"], sent[1]["text"]], rows=sent,
               root=root, dir=d, dur_ms=dur_ms)
    fs.shutdown()
    server.stop()


def wait_all(bases, ids, texts, timeout):
    """Polls jobs (spread over the servers `bases`) until none is WAITING;
    each must be FINISHED with exactly `texts` as its segments."""
    deadline = time.time() + timeout
    pending = set(ids)
    while pending and time.time() < deadline:
        for n, i in enumerate(list(pending)):
            r = requests.get(f"{bases[n % len(bases)]}/v1/p/asr/transcriber/jobs/{i}").json()
            if r["status"] != "WAITING":
                assert r["status"] == "FINISHED", r
                assert [s["result"]["text"] for s in r["segments"]] == texts, r
                pending.discard(i)
        time.sleep(0.3)
    assert not pending, f"{len(pending)} of {len(ids)} jobs never finished"


def push(j, url, fmt="auto", prop="chinese_16k_general", **extra):
    cfg = TranscriberConfig(audio_format=fmt, _property=prop, digit_norm="no", **extra)
    return j["sdk"].push_transcriber_jobs(PushTranscriberJobsRequest(body=PostTranscriberJobs(config=cfg, data_url=url))).job_id


def collect(j, job_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = j["sdk"].collect_transcriber_job(CollectTranscriberJobRequest(job_id=job_id))
        if r.status != "WAITING" or time.time() > deadline:
            return r
        time.sleep(0.2)


FORMATS = [
    ("wav_s16", ["-c:a", "pcm_s16le"], "wav"),
    ("wav_alaw", ["-c:a", "pcm_alaw"], "wav"),
    ("wav_mulaw", ["-c:a", "pcm_mulaw"], "wav"),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    ("m4a", ["-c:a", "aac", "-b:a", "64k"], "m4a"),
    ("aac_adts", ["-c:a", "aac", "-b:a", "64k", "-f", "adts"], "aac"),
    ("ogg_vorbis", ["-c:a", "libvorbis", "-q:a", "4"], "ogg"),
    ("ogg_opus", ["-c:a", "libopus", "-b:a", "32k"], "opus"),
    ("flac", ["-c:a", "flac"], "flac"),
]


@pytest.mark.parametrize("name,args,ext", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_container_exact(jobs, name, args, ext):
    out = jobs["files"] / f"{name}.{ext}"
    ffmpeg(["-i", jobs["files"] / "ab_pad.wav", "-ac", "1", *args], out)
    r = collect(jobs, push(jobs, f"{jobs['fs'].url}/{out.name}", need_word_info="yes"))
    assert r.status == "FINISHED", r
    assert [s.result.text for s in r.segments] == jobs["texts"], (name, r.segments)
    assert abs(r.audio_duration - jobs["dur_ms"]) < 200, (r.audio_duration, jobs["dur_ms"])
    for s in r.segments:
        assert s.start_time < s.end_time <= r.audio_duration
        assert "".join(w.word for w in s.result.word_info) == s.result.text
    assert r.create_time.endswith("Z") and r.finish_time >= r.start_time >= r.create_time


def test_amr_nb_and_raw_formats(jobs):
    f = jobs["files"]
    # Debian's ffmpeg has no AMR encoders: the real opencore/vo-amrwbenc encoders through amr-encode
    (f / "nb.amr").write_bytes(amr(f / "ab_pad.wav", wb=False))
    (f / "wb.amr").write_bytes(amr(f / "ab_pad.wav", wb=True))
    ffmpeg(["-i", f / "ab_pad.wav", "-ac", "1", "-f", "s16le"], f / "ab.pcm")
    ffmpeg(["-i", f / "ab_pad.wav", "-ac", "1", "-ar", "8000", "-f", "alaw"], f / "ab8k.alaw")
    cases = [("nb.amr", "auto", "chinese_8k_common"), ("wb.amr", "auto", "chinese_16k_general"), ("ab.pcm", "pcm16k16bit", "chinese_16k_general"),
             ("ab8k.alaw", "alaw8k8bit", "chinese_8k_common")]
    for name, fmt, prop in cases:
        r = collect(jobs, push(jobs, f"{jobs['fs'].url}/{name}", fmt=fmt, prop=prop))
        assert r.status == "FINISHED", (name, r)
        assert [s.result.text for s in r.segments] == jobs["texts"], (name, r.segments)


def test_stereo_roles_by_channel(jobs):
    f, root, rows = jobs["files"], jobs["root"], jobs["rows"]
    # left: sentence A then silence; right: silence then sentence B
    a, b = root / "16k" / f"{rows[0]['id']}.wav", root / "16k" / f"{rows[1]['id']}.wav"
    subprocess.run(["sox", a, f / "left.wav", "pad", "0.5", "0", "trim", "0", "9"], check=True)
    subprocess.run(["sox", b, f / "right.wav", "pad", "5", "0", "trim", "0", "9"], check=True)
    subprocess.run(["sox", "-M", f / "left.wav", f / "right.wav", f / "stereo.flac"], check=True)
    for channel, roles in (("LEFT_AGENT", ["AGENT", "USER"]), ("RIGHT_AGENT", ["USER", "AGENT"])):
        info = AnalysisInfo(diarization=True, channel=channel, emotion=False, speed=True)
        r = collect(jobs, push(jobs, f"{jobs['fs'].url}/stereo.flac", need_analysis_info=info))
        assert r.status == "FINISHED", r
        assert [s.result.text for s in r.segments] == jobs["texts"]
        assert [s.result.analysis_info.role for s in r.segments] == roles
        for s in r.segments:
            chars = len(s.result.text)
            assert s.result.analysis_info.speed == pytest.approx(chars / ((s.end_time - s.start_time) / 1000), abs=0.01)
            assert s.result.analysis_info.emotion is None
    # mono diarization needs a diarization model: refused, not invented
    with pytest.raises(ClientRequestException) as e:
        push(jobs, f"{jobs['fs'].url}/ab.wav", need_analysis_info=AnalysisInfo(channel="MONO"))
    assert e.value.error_code == "SIS.0031"


def test_callback_signed_and_retried(jobs):
    key = (jobs["dir"] / "data" / "callback.key").read_text().strip().encode()
    job = push(jobs, f"{jobs['fs'].url}/ab.wav", callback_url=f"{jobs['fs'].url}/cb")
    assert collect(jobs, job).status == "FINISHED"
    deadline = time.time() + 20
    while time.time() < deadline and len([p for p in jobs["fs"].posts if json.loads(p[1])["job_id"] == job]) < 2:
        time.sleep(0.2)
    posts = [p for p in jobs["fs"].posts if json.loads(p[1])["job_id"] == job]
    assert len(posts) == 2, "one failed delivery (503), then one retry"
    import hashlib
    import hmac
    for headers, body in posts:
        doc = json.loads(body)
        assert doc["status"] == "FINISHED" and [s["result"]["text"] for s in doc["segments"]] == jobs["texts"]
        sig = dict(x.split("=", 1) for x in headers["x-sis-signature"].split(","))
        want = hmac.new(key, sig["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(sig["v1"], want)


def test_not_found_and_other_project(jobs):
    with pytest.raises(ClientRequestException) as e:
        jobs["sdk"].collect_transcriber_job(CollectTranscriberJobRequest(job_id="0" * 32))
    assert (e.value.error_code, e.value.error_msg) == ("SIS.0032", "task id is not found")


def test_bad_audio_is_an_error_status(jobs):
    (jobs["files"] / "junk.bin").write_bytes(os.urandom(20000))
    r = collect(jobs, push(jobs, f"{jobs['fs'].url}/junk.bin"))
    assert r.status == "ERROR"
    raw = requests.get(jobs["server"].base)  # the server keeps serving
    assert raw.status_code == 404
    r = collect(jobs, push(jobs, f"{jobs['fs'].url}/ab.wav"))
    assert [s.result.text for s in r.segments] == jobs["texts"]


@pytest.fixture(scope="module")
def strict(models_dir, tmp_path_factory, jobs):
    """A server with nothing allow-listed except 127.0.0.2, which redirects to 127.0.0.1."""
    d = tmp_path_factory.mktemp("strict")
    redirector = Files(jobs["files"], host="127.0.0.2", redirect_to=f"{jobs['fs'].url}/ab.wav")
    server = Server([models_dir], d / "data", extra=["--no-probe"], log=d / "sisd.log",
                    env={"SIS_FETCH_ALLOW": "127.0.0.2"})
    yield dict(server=server, redirector=redirector, fs=jobs["fs"])
    redirector.shutdown()
    server.stop()


def raw_push(server, url, callback=None):
    cfg = {"audio_format": "auto", "property": "chinese_16k_general"}
    if callback:
        cfg["callback_url"] = callback
    return requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", json={"data_url": url, "config": cfg})


def raw_collect(server, job_id):
    deadline = time.time() + 30
    while True:
        r = requests.get(f"{server.base}/v1/p/asr/transcriber/jobs/{job_id}").json()
        if r["status"] != "WAITING" or time.time() > deadline:
            return r
        time.sleep(0.2)


def test_ssrf_refused(strict):
    s, port = strict["server"], strict["fs"].server_address[1]
    # literal addresses, and localhost (always loopback, never resolved):
    # refused when the job is created
    for url in [f"http://127.0.0.1:{port}/ab.wav", "http://10.1.2.3/a.wav", "http://169.254.169.254/latest/meta-data",
                f"http://[::1]:{port}/ab.wav", f"http://localhost:{port}/ab.wav", f"http://a.localhost:{port}/ab.wav"]:
        r = raw_push(s, url)
        assert r.status_code == 400 and r.json()["error_code"] == "SIS.0032", (url, r.text)
        assert "is not allowed" in r.json()["error_msg"], r.text
    for cb in [f"http://127.0.0.1:{port}/cb", f"http://localhost:{port}/cb"]:
        r = raw_push(s, strict["redirector"].url + "/x", callback=cb)
        assert r.status_code == 400 and "callback_url is not allowed" in r.json()["error_msg"], (cb, r.text)
    # other names are resolved when fetched: a redirect from an allowed host
    # to loopback ends the job with a clear error
    for url in [strict["redirector"].url + "/x"]:
        r = raw_push(s, url)
        assert r.status_code == 200, r.text
        doc = raw_collect(s, r.json()["job_id"])
        assert doc["status"] == "ERROR" and doc["error_code"] == "SIS.0032", doc
        assert "127.0.0.1" in doc["error_msg"] or "::1" in doc["error_msg"], doc
    before = len(strict["fs"].posts)
    assert len(strict["fs"].posts) == before
