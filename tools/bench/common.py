"""What the benchmark drivers of tools/bench share: a sisd of their own on
loopback, the machine's description, percentiles."""

import contextlib
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SISD = ROOT / "target/release/sisd"


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def pct(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)]


def machine():
    """The machine, the date and the commit, for results.json."""
    return {
        "machine": {"nproc": sh("nproc"), "cpu": sh("lscpu | grep 'Model name' | sed 's/Model name: *//'"),
                    "os": sh(". /etc/os-release && echo $PRETTY_NAME")},
        "date": sh("date -u '+%Y-%m-%dT%H:%M:%SZ'"),
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD"),
    }


@contextlib.contextmanager
def sisd(out, packs, port, *flags):
    """A fresh `out` (models, data, sisd.log), `packs` installed, sisd
    serving them on 127.0.0.1:`port` until the block ends (then SIGTERM)."""
    subprocess.run(["rm", "-rf", str(out)], check=True)
    (out / "models").mkdir(parents=True)
    for pack in packs:
        subprocess.run([SISD, "models", "install", "--from", pack, "--models-dir", out / "models"],
                       check=True, capture_output=True)
    server = subprocess.Popen([SISD, "serve", "--listen", f"127.0.0.1:{port}", "--models", out / "models",
                               "--data-dir", out / "data", "--no-probe", *flags],
                              stdout=subprocess.DEVNULL, stderr=open(out / "sisd.log", "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("sisd did not start")
                time.sleep(0.2)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
