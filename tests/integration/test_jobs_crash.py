"""Accepted jobs are never lost (issue 5): `kill -9` of the server in the
middle of 20 jobs, then a restart on the same store: all 20 finish, each
exactly once (one "job done" across both processes' logs), and each job's
callback arrives, with its job_id."""

import json
import re
import signal
import subprocess
import time

import requests

from conftest import Server
from test_jobs import Files, jobs, wait_all  # noqa: F401  (jobs is a fixture)


def test_kill_9_loses_nothing(models_dir, tmp_path, jobs):  # noqa: F811
    fs = Files(jobs["files"])
    long = jobs["files"] / "ab_x4.wav"
    subprocess.run(["sox", *[jobs["files"] / "ab_pad.wav"] * 4, long], check=True)
    data = tmp_path / "data"
    env = {"SIS_FETCH_ALLOW": "127.0.0.1"}
    extra = ["--no-probe", "--job-lease-s", "3", "--job-workers", "2"]
    logs = [tmp_path / "sisd1.log", tmp_path / "sisd2.log"]
    server = Server([models_dir], data, extra=extra, log=logs[0], env=env)
    ids = []
    for _ in range(20):
        r = requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", json={
            "data_url": f"{fs.url}/{long.name}",
            "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no",
                       "callback_url": f"{fs.url}/cb"}})
        assert r.status_code == 200, r.text
        ids.append(r.json()["job_id"])
    # kill -9 while some jobs are done, some running, most waiting
    deadline = time.time() + 60
    while time.time() < deadline and logs[0].read_text().count("job done") < 3:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    done_before = logs[0].read_text().count("job done")
    assert 3 <= done_before < 20, done_before
    server = Server([models_dir], data, extra=extra, log=logs[1], env=env)
    try:
        wait_all([server.base], ids, jobs["texts"] * 4, timeout=120)
        done = re.findall(r'job done job_id="?(\w+)', logs[0].read_text() + logs[1].read_text())
        assert sorted(done) == sorted(ids), "each job finished exactly once"
        # every callback arrives (the receiver refuses each job's first delivery)
        deadline = time.time() + 60
        while time.time() < deadline:
            ok = {json.loads(b)["job_id"] for _, b in fs.posts}
            if ok >= set(ids) and all(sum(1 for _, b in fs.posts if json.loads(b)["job_id"] == i) >= 2 for i in ids):
                break
            time.sleep(0.3)
        for i in ids:
            bodies = [json.loads(b) for _, b in fs.posts if json.loads(b)["job_id"] == i]
            assert len(bodies) >= 2 and all(b["status"] == "FINISHED" for b in bodies), (i, len(bodies))
    finally:
        server.stop()
        fs.shutdown()
