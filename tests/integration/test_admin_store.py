"""Operator commands find the store as `sisd serve` does (issue 13): from
another working directory, with SIS_DATA_DIR or a relative --data-dir, they
use that store and name it on stderr (an absolute sqlite:// URL); without
them they refuse to work on a store that does not exist instead of quietly
creating an empty one (only `projects create` and `users create` create)."""

import os
import subprocess

from conftest import SISD

PID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def run(args, cwd, env, stdin=None):
    base = {k: v for k, v in os.environ.items() if k not in ("SIS_DATA_DIR", "SIS_STORE_URL")}
    return subprocess.run([SISD, *args], cwd=cwd, env={**base, **env}, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_commands_use_and_name_the_same_store_from_anywhere(tmp_path):
    tmp_path = tmp_path.resolve()
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "mk").write_text(key)
    data = tmp_path / "install" / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"SIS_DATA_DIR": str(data), "SIS_MASTER_KEY_FILE": str(tmp_path / "mk")}
    db = data / "sisd.db"

    r = run(["projects", "create", "--domain", "acme", "--name", "cn-north-4", "--id", PID], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert f"using store sqlite://{db} (new)" in r.stderr, r.stderr
    r = run(["credentials", "create", "--project", PID], tmp_path, env)
    assert r.returncode == 0 and f"using store sqlite://{db}\n" in r.stderr, r.stderr

    # another directory, SIS_DATA_DIR: the same store, named
    r = run(["projects", "list"], elsewhere, env)
    assert r.returncode == 0, r.stderr
    assert f"using store sqlite://{db}\n" in r.stderr, r.stderr
    assert PID in r.stdout
    # a relative --data-dir is taken from the working directory, and shown absolute
    r = run(["credentials", "list", "--data-dir", "../install/data"], elsewhere,
            {"SIS_MASTER_KEY_FILE": env["SIS_MASTER_KEY_FILE"]})
    assert r.returncode == 0, r.stderr
    assert f"using store sqlite://{db}\n" in r.stderr, r.stderr
    assert PID in r.stdout

    # no SIS_DATA_DIR: ./sisd-data has no store; nothing is created
    for args in (["projects", "list"], ["users", "list"], ["credentials", "list"],
                 ["credentials", "create", "--project", PID], ["credentials", "revoke", "AK"],
                 ["users", "delete", "--name", "alice"]):
        r = run(args, elsewhere, {"SIS_MASTER_KEY_FILE": env["SIS_MASTER_KEY_FILE"]})
        assert r.returncode != 0, (args, r.stdout)
        assert f"no store at {elsewhere}/sisd-data/sisd.db" in r.stderr, (args, r.stderr)
        assert "--data-dir" in r.stderr
        assert not (elsewhere / "sisd-data").exists(), args
    # nor with a --store naming a missing SQLite file
    r = run(["projects", "list", "--store", "sqlite://nothing.db"], elsewhere, {})
    assert r.returncode != 0 and f"no store at {elsewhere}/nothing.db" in r.stderr, r.stderr
    assert not (elsewhere / "nothing.db").exists()
    # creating is what `projects create` and `users create` are for
    r = run(["users", "create", "--name", "alice"], elsewhere, {}, stdin="correct-horse-battery\n")
    assert r.returncode == 0, r.stderr
    assert f"using store sqlite://{elsewhere}/sisd-data/sisd.db (new)" in r.stderr, r.stderr
    r = run(["users", "list"], elsewhere, {})
    assert r.returncode == 0 and "alice" in r.stdout, r.stderr
