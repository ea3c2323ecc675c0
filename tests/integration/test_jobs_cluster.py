"""Several machines (issue 5): three `sisd` processes on loopback share one
real PostgreSQL store (started by the test) and 100 jobs created through all
three; one process is killed with SIGKILL mid-run and restarted. Every job
finishes with the exact transcript, exactly once across all processes' logs,
and the work is spread over all three nodes."""

import re
import signal
import subprocess
import time

import requests

from conftest import Server
from test_jobs import Files, jobs, wait_all  # noqa: F401  (jobs is a fixture)

N_JOBS = 100


def test_three_nodes_share_postgres(models_dir, tmp_path, jobs, postgres):  # noqa: F811
    fs = Files(jobs["files"])
    env = {"SIS_FETCH_ALLOW": "127.0.0.1", "SIS_STORE_URL": postgres}
    extra = ["--no-probe", "--job-lease-s", "3", "--job-workers", "2"]
    logs = [tmp_path / f"node{i}.log" for i in range(3)]
    nodes = [Server([models_dir], tmp_path / f"data{i}", extra=extra, log=logs[i], env=env) for i in range(3)]
    ids = []
    try:
        for k in range(N_JOBS):
            node = nodes[k % 3]
            r = requests.post(f"{node.base}/v1/p/asr/transcriber/jobs", json={
                "data_url": f"{fs.url}/ab_pad.wav",
                "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no"}})
            assert r.status_code == 200, r.text
            ids.append(r.json()["job_id"])
        # a job created on one node is visible from every other
        r = requests.get(f"{nodes[1].base}/v1/p/asr/transcriber/jobs/{ids[0]}")
        assert r.status_code == 200 and r.json()["status"] in ("WAITING", "FINISHED"), r.text

        # SIGKILL node 0 while it holds leases, then bring it back on the same store
        deadline = time.time() + 120
        while time.time() < deadline and logs[0].read_text().count("job done") < 5:
            time.sleep(0.05)
        nodes[0].proc.send_signal(signal.SIGKILL)
        nodes[0].proc.wait()
        total = sum(p.read_text().count("job done") for p in logs)
        assert total < N_JOBS, "the kill came too late to interrupt anything"
        logs.append(tmp_path / "node0-restarted.log")
        nodes[0] = Server([models_dir], tmp_path / "data0", extra=extra, log=logs[3], env=env)

        wait_all([n.base for n in nodes], ids, jobs["texts"], timeout=300)

        texts = [p.read_text() for p in logs]
        done = [re.findall(r'job done job_id="?(\w+)', t) for t in texts]
        all_done = [i for d in done for i in d]
        assert sorted(all_done) == sorted(ids), "each job finished exactly once"
        assert all(len(d) > 0 for d in done[:3]), [len(d) for d in done]
        print("jobs done per node:", [len(d) for d in done])
        # the store agrees: 100 finished rows of this test's project, nothing
        # else (the database is shared with the other multi-node tests)
        port = postgres.rsplit(":", 1)[1].split("/")[0]
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "sis", "-d", "sis", "-At", "-c",
                              "SELECT status, count(*) FROM jobs WHERE project_id = 'p' GROUP BY status"],
                             check=True, capture_output=True, text=True).stdout.split()
        assert out == [f"FINISHED|{N_JOBS}"], out
        # and the kill did interrupt work: jobs whose lease died with node 0 were leased again
        retaken = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "sis", "-d", "sis", "-At", "-c",
                                  "SELECT count(*) FROM jobs WHERE project_id = 'p' AND attempts > 1"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        print("jobs leased again after the kill:", retaken)
        assert int(retaken) >= 1
    finally:
        for n in nodes:
            n.stop()
        fs.shutdown()
