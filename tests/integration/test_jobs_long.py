"""Hours of audio (issue 5): real human speech from ../shared/audio,
concatenated into a 2-hour FLAC file, runs as one transcription job. The
server's resident memory stays under 500 MB from start to finish (VmHWM), and
the segment times it reports are the speech segments Silero VAD finds in the
same samples, computed independently here through the sherpa-onnx Python
package with the same settings."""

import os
import subprocess
import threading
import time

import pytest
import requests

import longaudio
from conftest import Server
from test_jobs import Files

HOURS = float(os.environ.get("SIS_LONG_JOB_HOURS", "2"))
TOLERANCE_MS = 200


def rss_kb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not longaudio.clips(), reason="../shared/audio missing")
def test_two_hours_of_real_speech(models_dir, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    wav = tmp_path / "long.wav"
    samples = longaudio.make(HOURS * 3600, wav)
    flac = files / "long.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-c:a", "flac", flac], check=True)
    wav.unlink()
    duration_ms = len(samples) * 1000 // longaudio.RATE
    print(f"file: {duration_ms / 3.6e6:.2f} h, {flac.stat().st_size / 1e6:.0f} MB FLAC")

    fs = Files(files)
    server = Server([models_dir], tmp_path / "data", extra=["--no-probe"], log=tmp_path / "sisd.log",
                    env={"SIS_FETCH_ALLOW": "127.0.0.1"})
    peak = [0]
    stop = threading.Event()

    def sample_rss():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(server.proc.pid, "VmRSS"))
            time.sleep(0.5)

    threading.Thread(target=sample_rss, daemon=True).start()
    try:
        t0 = time.time()
        r = requests.post(f"{server.base}/v1/p/asr/transcriber/jobs", json={
            "data_url": f"{fs.url}/long.flac",
            "config": {"audio_format": "auto", "property": "chinese_16k_general", "add_punc": "yes"}})
        assert r.status_code == 200, r.text
        job = r.json()["job_id"]
        # the reference segments are computed while the server works
        reference = longaudio.silero_segments(samples)
        deadline = time.time() + 1800
        while True:
            r = requests.get(f"{server.base}/v1/p/asr/transcriber/jobs/{job}").json()
            if r["status"] != "WAITING" or time.time() > deadline:
                break
            time.sleep(1)
        took = time.time() - t0
        hwm = rss_kb(server.proc.pid, "VmHWM")
    finally:
        stop.set()
        server.stop()
        fs.shutdown()
    assert r["status"] == "FINISHED", r
    assert abs(r["audio_duration"] - duration_ms) <= 1, (r["audio_duration"], duration_ms)
    segs = [(s["start_time"], s["end_time"]) for s in r["segments"]]
    print(f"job: {took:.0f} s (RTF {took * 1000 / duration_ms:.4f}), peak RSS {hwm / 1024:.0f} MiB "
          f"(sampled {peak[0] / 1024:.0f} MiB); {len(segs)} segments with text, Silero finds {len(reference)}")
    assert hwm < 500 * 1024, f"peak resident memory {hwm / 1024:.0f} MiB"

    # every reported segment is one Silero found, within the tolerance
    worst = 0
    j = 0
    for start, end in segs:
        while j < len(reference) and reference[j][1] + TOLERANCE_MS < start:
            j += 1
        assert j < len(reference), f"segment {start}-{end} ms not found by Silero"
        ref = reference[j]
        d = max(abs(ref[0] - start), abs(ref[1] - end))
        assert d <= TOLERANCE_MS, f"segment {start}-{end} ms vs Silero {ref[0]}-{ref[1]} ms"
        worst = max(worst, d)
    print(f"largest difference from Silero: {worst} ms")
    # segments are only dropped when the tiny model hears no words in them
    assert len(segs) >= len(reference) // 2, (len(segs), len(reference))
    assert segs == sorted(segs) and segs[-1][1] <= duration_ms
