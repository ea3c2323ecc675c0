"""Broken model packs: the server refuses to start with a clear message and is
never killed by sherpa-onnx (which ends the process on many invalid models).
Also: `models verify`, `models install --from`, the loopback rule of --auth none."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, SISD, Server

PACKS = ROOT / "testdata/models"


def rehash(pack: Path):
    text = (pack / "pack.toml").read_text()

    def repl(m):
        path = m.group(1)
        digest = hashlib.sha256((pack / path).read_bytes()).hexdigest()
        return f'path = "{path}"\nsha256 = "{digest}"'

    (pack / "pack.toml").write_text(re.sub(r'path = "([^"]+)"\nsha256 = "[0-9a-f]+"', repl, text))


def broken(tmp_path, src, mutate, fix_hash=True):
    dst = tmp_path / "models" / src
    shutil.copytree(PACKS / src, dst)
    mutate(dst)
    if fix_hash:
        rehash(dst)
    return dst


def drop_metadata(key: bytes, file="model.onnx"):
    def m(d):
        b = (d / file).read_bytes()
        assert key in b
        (d / file).write_bytes(b.replace(key, key[:-1] + b"X"))
    return m


def tokens_without_blank(d):
    t = (d / "tokens.txt").read_text(encoding="utf-8")
    (d / "tokens.txt").write_text(t.replace("<blk> 0", "<nope> 0"), encoding="utf-8")


def extra_token(d):
    t = (d / "tokens.txt").read_text(encoding="utf-8")
    n = len([line for line in t.splitlines() if line.strip()])
    (d / "tokens.txt").write_text(t + f"extra {n}\n", encoding="utf-8")


def flip_byte(d):
    b = bytearray((d / "tokens.txt").read_bytes())
    b[10] ^= 1
    (d / "tokens.txt").write_bytes(bytes(b))


CASES = [
    ("streaming model without window_size", "zh-tiny-ctc-streaming", drop_metadata(b"window_size"), True, "window_size"),
    ("streaming model without cache dims", "zh-tiny-ctc-streaming", drop_metadata(b"cache_last_time_dim2"), True, "cache_last_time_dim2"),
    ("offline model without vocab_size", "zh-tiny-ctc-offline", drop_metadata(b"vocab_size"), True, "vocab_size"),
    ("tokens without blank", "zh-tiny-ctc-offline", tokens_without_blank, True, "blank"),
    ("tokens count differs from model", "zh-tiny-ctc-offline", extra_token, True, "vocab_size"),
    ("token ids with a gap", "zh-tiny-ctc-offline",
     lambda d: (d / "tokens.txt").write_text((d / "tokens.txt").read_text(encoding="utf-8") + "extra 9999\n", encoding="utf-8"), True, "without gaps"),
    # sherpa-onnx exits 255 on both (measured)
    ("lstm encoder without rnn_hidden_size", "zh-tiny-transducer-streaming",
     drop_metadata(b"rnn_hidden_size", "encoder.onnx"), True, "rnn_hidden_size"),
    ("offline transducer encoder of an unknown type", "zh-tiny-transducer-offline",
     drop_metadata(b"conformer", "encoder.onnx"), True, "not an offline transducer"),
    ("sha256 mismatch", "zh-tiny-ctc-offline", flip_byte, False, "sha256"),
    ("missing file", "zh-tiny-ctc-offline", lambda d: (d / "model.onnx").unlink(), False, "model.onnx"),
    ("garbage onnx", "zh-tiny-ctc-offline", lambda d: (d / "model.onnx").write_bytes(b"\x0a\xff\xff" * 1000), True, "not a valid ONNX"),
    ("unsupported model type", "zh-tiny-ctc-offline",
     lambda d: (d / "pack.toml").write_text((d / "pack.toml").read_text().replace('model_type = "nemo_ctc"', 'model_type = "whisper"')), True, "not supported"),
    ("bad property", "zh-tiny-ctc-offline",
     lambda d: (d / "pack.toml").write_text((d / "pack.toml").read_text().replace('"chinese_16k_common"', '"chinese_44k_common"')), True, "invalid property"),
    ("malformed manifest", "zh-tiny-ctc-offline", lambda d: (d / "pack.toml").write_text("name = "), False, "pack.toml"),
]


@pytest.mark.parametrize("name,src,mutate,fix_hash,needle", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
def test_broken_pack_refused_at_start(tmp_path, name, src, mutate, fix_hash, needle, probe):
    pack = broken(tmp_path, src, mutate, fix_hash)
    args = [SISD, "serve", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "data", "--models", pack.parent]
    if not probe:
        args.append("--no-probe")
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr)  # a clean refusal, not sherpa-onnx's exit 255 or a signal
    assert needle in p.stderr, p.stderr
    assert str(pack) in p.stderr or pack.name in p.stderr, p.stderr
    # verify reports it too
    v = subprocess.run([SISD, "models", "verify", "--models", pack.parent], capture_output=True, text=True)
    assert v.returncode == 1 and "FAILED" in v.stdout
    # and install refuses it
    i = subprocess.run([SISD, "models", "install", "--from", pack, "--models-dir", tmp_path / "inst"], capture_output=True, text=True)
    assert i.returncode == 1 and needle in i.stderr, i.stderr


def test_good_packs_verify_and_probe(models_dir):
    v = subprocess.run([SISD, "models", "verify", "--models", models_dir], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout
    assert v.stdout.count("ok\t") == 3
    for pack in sorted(models_dir.iterdir()):
        p = subprocess.run([SISD, "models", "probe", pack], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    lst = subprocess.run([SISD, "models", "list", "--models", models_dir], capture_output=True, text=True).stdout
    assert "chinese_8k_common" in lst and "silero_vad" in lst


def test_auth_none_refused_off_loopback(tmp_path, models_dir):
    p = subprocess.run([SISD, "serve", "--listen", "0.0.0.0:0", "--data-dir", tmp_path, "--models", models_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "loopback" in p.stderr


def test_env_configuration(tmp_path, models_dir):
    import os
    import requests
    from conftest import free_port
    port = free_port()
    env = dict(os.environ, SIS_LISTEN=f"127.0.0.1:{port}", SIS_MODELS=f"{models_dir}", SIS_DATA_DIR=str(tmp_path), SIS_AUTH="none")
    proc = subprocess.Popen([SISD, "serve", "--no-probe"], env=env, stderr=subprocess.DEVNULL)
    try:
        import time
        for _ in range(100):
            try:
                r = requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert {p["name"] for p in r.json()["packs"]} == {"silero-vad", "zh-tiny-ctc-offline", "zh-tiny-ctc-streaming"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_catalog_lists_pinned_archives():
    out = subprocess.run([SISD, "models", "catalog"], capture_output=True, text=True).stdout
    assert re.search(r"sha256 [0-9a-f]{64}", out)
