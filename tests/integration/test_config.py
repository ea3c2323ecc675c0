"""`sisd serve --config FILE`, `sisd config check` and `sisd config example`:
every key of the example is a setting `serve` accepts, a file's mistakes are
all reported with their keys, secrets are never printed, and the documented
precedence (flag > environment > file > default) holds in a running server."""

import os
import re
import subprocess
import time

import requests

from conftest import SISD, free_port

# the environment of the tests themselves must not leak SIS_* settings in
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("SIS_") and k != "RUST_LOG"}


def sisd(*args, env=None, cwd=None):
    return subprocess.run([SISD, *map(str, args)], env={**CLEAN, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def effective(stdout):
    """`config check`'s output as {key: (value text, source)}."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z0-9-]+) = (.*?)  # (\S+)$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def test_example_lists_every_flag_and_checks_clean(models_dir, tmp_path):
    ex = sisd("config", "example")
    assert ex.returncode == 0, ex.stderr
    keys = re.findall(r"^# ([a-z0-9-]+) = ", ex.stdout, re.M)
    help_text = sisd("serve", "--help").stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", help_text, re.M)) - {"help", "config"}
    assert set(keys) == flags, (set(keys) ^ flags)
    # the example with every default uncommented is a valid file, and gives
    # the same configuration as no file at all
    lines = [re.sub(r"^# ", "", l) for l in ex.stdout.splitlines()
             if re.match(r"^# [a-z0-9-]+ = ", l) and "(no default" not in l]
    f = tmp_path / "example.toml"
    lines = [l for l in lines if not l.startswith("data-dir =")]
    f.write_text("\n".join(lines) + f'\nmodels = ["{models_dir}"]\ndata-dir = "{tmp_path / "d"}"\n')
    with_file = sisd("config", "check", f)
    assert with_file.returncode == 0, with_file.stderr
    eff = effective(with_file.stdout)
    assert eff["max-streams"] == ("1000", "file")
    bare = sisd("config", "check", env={"SIS_MODELS": str(models_dir), "SIS_DATA_DIR": str(tmp_path / "d")})
    assert bare.returncode == 0, bare.stderr
    assert {k: v[0] for k, v in effective(bare.stdout).items()} == {k: v[0] for k, v in eff.items()}


def test_three_mistakes_are_all_reported(models_dir, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(f'models = ["{models_dir}"]\n'
                 'max_streams = 10\n'           # a key spelled with underscores
                 'queue = "many"\n'             # not a number
                 'listen = "localhost"\n'       # not IP:PORT
                 'stream-batch = 4\n')          # fine
    r = sisd("config", "check", f)
    assert r.returncode == 2, r.stdout
    err = r.stderr
    assert "3 mistake(s)" in err, err
    assert re.search(r"^  max_streams: unknown key \(did you mean max-streams\?\)", err, re.M), err
    assert re.search(r"^  queue: .*many", err, re.M), err
    assert re.search(r"^  listen: .*localhost", err, re.M), err
    # serve refuses the same file with the same reasons, before it starts
    s = sisd("serve", "--config", f, "--data-dir", tmp_path / "d")
    assert s.returncode == 2
    for key in ("max_streams", "queue", "listen"):
        assert f"  {key}: " in s.stderr, s.stderr
    # kinds a key cannot have
    f.write_text(f'models = ["{models_dir}"]\nno-vad = [true]\nconfig = "x.toml"\nqueue = 1.5\n'
                 '[http]\nlisten = "127.0.0.1:1"\n')
    r = sisd("config", "check", f)
    assert r.returncode == 2
    assert "4 mistake(s)" in r.stderr, r.stderr
    assert "http: a table; the file has no sections" in r.stderr, r.stderr
    assert "queue: " in r.stderr, r.stderr
    assert "no-vad: expected one value, not an array" in r.stderr, r.stderr
    assert "config: a configuration file cannot name another" in r.stderr, r.stderr
    # an environment variable's mistake is reported next to the file's
    f.write_text(f'models = ["{models_dir}"]\nqueue = "many"\n')
    r = sisd("config", "check", f, env={"SIS_MAX_STREAMS": "lots"})
    assert r.returncode == 2 and "2 mistake(s)" in r.stderr, r.stderr
    assert "SIS_MAX_STREAMS: " in r.stderr and "queue: " in r.stderr
    # not TOML at all
    f.write_text("queue = = 3\n")
    r = sisd("config", "check", f)
    assert r.returncode == 2 and "is not TOML" in r.stderr, r.stderr


def test_secrets_are_redacted(models_dir, tmp_path):
    f = tmp_path / "s.toml"
    key = "k" * 40
    f.write_text(f'models = ["{models_dir}"]\ndata-dir = "{tmp_path / "d"}"\n'
                 f'callback-key = "{key}"\n')
    r = sisd("config", "check", f, env={"SIS_STORE_URL": "postgres://sis:hunter2@127.0.0.1:1/sis"})
    # the store is not reached by `config check`; its URL is only shown
    assert r.returncode == 0, r.stderr
    assert key not in r.stdout and "hunter2" not in r.stdout, r.stdout
    eff = effective(r.stdout)
    assert eff["callback-key"] == ('"<redacted>"', "file")
    assert "hunter2" not in eff["store"][0] and eff["store"][1] == "SIS_STORE_URL"


def serve_port(args, env, ports, tmp_path):
    """Starts `sisd serve ARGS`, finds the port it listens on among the
    candidates, stops it; returns the port."""
    log = open(tmp_path / f"serve-{time.monotonic_ns()}.log", "w")
    p = subprocess.Popen([SISD, "serve", *map(str, args)], env={**CLEAN, **env},
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            assert p.poll() is None, open(log.name).read()
            for port in ports:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                        return port
                except requests.ConnectionError:
                    pass
            time.sleep(0.2)
        raise AssertionError("sisd did not start: " + open(log.name).read())
    finally:
        p.terminate()
        p.wait(15)


def test_precedence_in_a_running_server(models_dir, tmp_path):
    """The port a server listens on comes from the flag, else the
    environment, else the file, else the default."""
    ports = [free_port() for _ in range(3)]
    f = tmp_path / "sisd.toml"
    f.write_text(f'listen = "127.0.0.1:{ports[0]}"\nmodels = ["{models_dir}"]\n'
                 f'data-dir = "{tmp_path / "data"}"\n')
    # file
    assert serve_port(["--config", f], {}, ports, tmp_path) == ports[0]
    # environment over file (the file named by SIS_CONFIG)
    e = {"SIS_CONFIG": str(f), "SIS_LISTEN": f"127.0.0.1:{ports[1]}"}
    assert serve_port([], e, ports, tmp_path) == ports[1]
    # flag over environment
    assert serve_port(["--listen", f"127.0.0.1:{ports[2]}"], e, ports, tmp_path) == ports[2]
    # and config check says where each came from
    r = sisd("config", "check", f, env={"SIS_LISTEN": f"127.0.0.1:{ports[1]}"})
    eff = effective(r.stdout)
    assert eff["listen"] == (f'"127.0.0.1:{ports[1]}"', "SIS_LISTEN")
    assert eff["data-dir"][1] == "file" and eff["queue"] == ("256", "default")
