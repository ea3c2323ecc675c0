"""Job audio and results in S3-compatible object storage (issue 5): sisd
with `--objects s3://BUCKET/PREFIX` against a real S3 HTTP endpoint on
loopback (moto's server, started here; bucket created and read with boto3).
Results live in the bucket, not in the store; the downloaded audio is kept in
the bucket while the job runs, so after a `kill -9` the restarted server
finishes the job from that copy without fetching data_url again; every
object a finished job no longer needs is deleted."""

import signal
import sqlite3
import subprocess
import time

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from conftest import Server, free_port
from test_jobs import Files, jobs  # noqa: F401  (jobs is a fixture)

BUCKET = "sis-jobs"


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "sis-test", "AWS_SECRET_ACCESS_KEY": "sis-test-secret",
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    client.create_bucket(Bucket=BUCKET)
    yield client, env
    server.stop()


def keys(client, prefix):
    r = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in r.get("Contents", []))


def wait_done(base, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(f"{base}/v1/p/asr/transcriber/jobs/{job_id}").json()
        if r["status"] != "WAITING":
            return r
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def create(base, url):
    r = requests.post(f"{base}/v1/p/asr/transcriber/jobs", json={
        "data_url": url, "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def test_results_live_in_the_bucket(models_dir, tmp_path, jobs, s3):  # noqa: F811
    client, env = s3
    files = Files(jobs["files"], once=True)
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--objects", f"s3://{BUCKET}/one"],
                    log=tmp_path / "sisd.log", env={**env, "SIS_FETCH_ALLOW": "127.0.0.1"})
    try:
        job = create(server.base, f"{files.url}/ab_pad.wav")
        r = wait_done(server.base, job)
        assert r["status"] == "FINISHED", r
        assert [s["result"]["text"] for s in r["segments"]] == jobs["texts"]
        # the document is in the bucket, under this job, and not in the store
        stored = keys(client, "one/")
        assert len(stored) == 1 and stored[0].startswith(f"one/results/{job}/"), stored
        body = client.get_object(Bucket=BUCKET, Key=stored[0])["Body"].read().decode()
        assert r["segments"][0]["result"]["text"] in body
        db = sqlite3.connect(tmp_path / "data" / "sisd.db")
        row = db.execute("SELECT result, result_key, audio_key FROM jobs WHERE id = ?", (job,)).fetchone()
        assert row[0] is None and row[1] == stored[0].removeprefix("one/") and row[2] == f"audio/{job}", row
        # the audio copy was deleted when the job ended
        assert keys(client, "one/audio/") == []
    finally:
        server.stop()
        files.shutdown()


def test_takeover_reads_the_audio_copy(models_dir, tmp_path, jobs, s3):  # noqa: F811
    client, env = s3
    long = jobs["files"] / "ab_x60.wav"
    subprocess.run(["sox", *[jobs["files"] / "ab_pad.wav"] * 60, long], check=True)
    files = Files(jobs["files"], once=True)
    extra = ["--no-probe", "--objects", f"s3://{BUCKET}/two", "--job-lease-s", "3", "--job-workers", "1"]
    env = {**env, "SIS_FETCH_ALLOW": "127.0.0.1"}
    logs = [tmp_path / "sisd1.log", tmp_path / "sisd2.log"]
    server = Server([models_dir], tmp_path / "data", extra=extra, log=logs[0], env=env)
    try:
        job = create(server.base, f"{files.url}/{long.name}")
        deadline = time.time() + 60
        # the copy counts once its key is on the job's row (logged after both)
        while time.time() < deadline and "audio copy kept in object storage" not in logs[0].read_text():
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        assert keys(client, f"two/audio/{job}") == [f"two/audio/{job}"]
        assert "job done" not in logs[0].read_text(), "the job ended before the kill"
        server = Server([models_dir], tmp_path / "data", extra=extra, log=logs[1], env=env)
        r = wait_done(server.base, job)
        assert r["status"] == "FINISHED", r
        assert [s["result"]["text"] for s in r["segments"]] == jobs["texts"] * 60
        assert files.gets.count(f"/{long.name}") == 1, "data_url was fetched once"
        assert "audio taken from object storage" in logs[1].read_text()
        assert keys(client, "two/audio/") == []
        assert [k.split("/")[2] for k in keys(client, "two/results/")] == [job]
    finally:
        server.stop()
        files.shutdown()


def test_uploads_live_in_the_bucket(models_dir, tmp_path, jobs, s3):  # noqa: F811
    """With --objects, an upload is an object under uploads/{project}/ (so
    every node sharing the bucket can run its job); the project's uploads
    are counted by listing the bucket; a deleted upload is gone from it."""
    client, env = s3
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe", "--objects", f"s3://{BUCKET}/up"],
                    log=tmp_path / "sisd.log", env=env)
    try:
        wav = (jobs["files"] / "ab_pad.wav").read_bytes()
        r = requests.post(f"{server.base}/v1/p/asr/transcriber/uploads", data=wav, timeout=30)
        assert r.status_code == 200, r.text
        u = r.json()
        assert keys(client, "up/uploads/") == [f"up/uploads/p/{u['upload_id']}"]
        assert client.get_object(Bucket=BUCKET, Key=f"up/uploads/p/{u['upload_id']}")["Body"].read() == wav
        r = wait_done(server.base, create(server.base, u["data_url"]))
        assert r["status"] == "FINISHED", r
        assert [s["result"]["text"] for s in r["segments"]] == jobs["texts"]
        # no second copy of the audio was made for the job
        assert keys(client, "up/audio/") == []
        assert requests.delete(f"{server.base}/v1/p/asr/transcriber/uploads/{u['upload_id']}",
                               timeout=30).status_code == 200
        assert keys(client, "up/uploads/") == []
        assert not (tmp_path / "data" / "uploads").exists()
    finally:
        server.stop()
