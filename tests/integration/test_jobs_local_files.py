"""Local files as jobs (issue 13): with --job-files-dir a job's data_url may
be file:///PATH naming a regular file under that directory, and nothing
else: a path outside it, `..` (plain or percent-encoded), a symbolic link
leading out, a FIFO (refused at once, no worker waits on it), a directory,
a missing file, a file over --fetch-max-mb, and any file: URL on a server
without --job-files-dir are refused when the job is created, with SIS.0032.
Held-out speech from SIS_HELDOUT_DIR; a real sisd on loopback."""

import os
import shutil
import subprocess
import time
from urllib.parse import quote

import pytest
import requests

from conftest import Server


@pytest.fixture(scope="module")
def local(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("local")
    root, rows = heldout
    sent = [r for r in rows if r["kind"] == "sentence"][:2]
    files = d / "files"
    (files / "sub").mkdir(parents=True)
    shutil.copy(root / "16k" / f"{sent[0]['id']}.wav", files / "a.wav")
    shutil.copy(root / "16k" / f"{sent[1]['id']}.wav", files / "sub" / "with space.wav")
    (d / "outside.wav").write_bytes((files / "a.wav").read_bytes())
    os.symlink(d / "outside.wav", files / "escape.wav")
    os.symlink(files / "a.wav", files / "inside.wav")
    os.mkfifo(files / "fifo.wav")
    (files / "big.wav").write_bytes(b"\0" * 1_500_000)
    server = Server([models_dir], d / "data", extra=["--no-probe", "--job-files-dir", str(files),
                                                     "--fetch-max-mb", "1"], log=d / "sisd.log")
    yield dict(server=server, files=files, dir=d, texts=[r["text"] for r in sent])
    server.stop()


def push(server, url):
    return requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", timeout=30, json={
        "data_url": url, "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}})


def collect(server, job_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = requests.get(f"{server.base}/v1/p/asr/transcriber/jobs/{job_id}", timeout=30).json()
        if r["status"] != "WAITING" or time.time() > deadline:
            return r
        time.sleep(0.2)


def file_url(path):
    return "file://" + quote(str(path))


def test_files_under_the_directory_are_transcribed(local):
    s, files = local["server"], local["files"]
    for url, text in [(file_url(files / "a.wav"), local["texts"][0]),
                      (f"file://localhost{quote(str(files / 'sub' / 'with space.wav'))}", local["texts"][1]),
                      (file_url(files / "inside.wav"), local["texts"][0])]:
        r = push(s, url)
        assert r.status_code == 200, (url, r.text)
        doc = collect(s, r.json()["job_id"])
        assert doc["status"] == "FINISHED", (url, doc)
        assert [g["result"]["text"] for g in doc["segments"]] == [text], (url, doc)
    # the files are read, never moved or changed
    assert (files / "a.wav").is_file() and (files / "sub" / "with space.wav").is_file()


def test_everything_else_is_refused_at_creation(local):
    s, files, d = local["server"], local["files"], local["dir"]
    cases = [
        (file_url(d / "outside.wav"), "is outside the directory of job files"),
        (f"file://{files}/../outside.wav", "is outside the directory of job files"),
        (f"file://{files}/sub%2F..%2F..%2Foutside.wav", "'..' is not allowed"),
        (file_url(files / "escape.wav"), "leads outside the directory of job files"),
        (file_url(files / "fifo.wav"), "is not a regular file (a FIFO)"),
        (file_url(files / "sub"), "is not a regular file (a directory)"),
        (file_url(files), "is not a regular file (a directory)"),
        (file_url(files / "missing.wav"), "does not exist"),
        (file_url(files / "big.wav"), "larger than the limit"),
        (f"file://example.com{files}/a.wav", "only local files"),
        ("file:///etc/passwd", "is outside the directory of job files"),
    ]
    for url, says in cases:
        t = time.time()
        r = push(s, url)
        assert time.time() - t < 5, f"{url}: the refusal waited"
        assert r.status_code == 400, (url, r.text)
        body = r.json()
        assert body["error_code"] == "SIS.0032", (url, body)
        assert body["error_msg"].startswith("data_url") and says in body["error_msg"], (url, body)
        # where a link leads is not told
        assert "outside.wav" not in body["error_msg"] or "outside.wav" in url, body
    assert requests.get(s.base + "/health", timeout=5).status_code == 200
    # the FIFO still has no reader: nothing opened it
    assert (files / "fifo.wav").exists()


def test_file_urls_refused_without_a_directory(server, local):
    r = push(server, file_url(local["files"] / "a.wav"))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "SIS.0032", body
    assert 'scheme "file" is not allowed' in body["error_msg"], body
