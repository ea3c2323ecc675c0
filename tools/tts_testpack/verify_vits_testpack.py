"""Check a pack from make_vits_testpack.py against sherpa-onnx, and record how
sherpa-onnx treats bad input: which cases return audio, which return nothing,
which end the process.

Usage:  python tools/tts_testpack/verify_vits_testpack.py PACK_DIR [--json OUT]

Every case runs in a child process of its own, since sherpa-onnx ends the
process (exit code 255, or SIGABRT for an uncaught C++ exception) on many
invalid models and inputs. Two front doors are exercised:

  py   the sherpa_onnx Python module (OfflineTts.generate)
  capi libsherpa-onnx-c-api.so through ctypes, called the way the Rust crate
       sherpa-onnx 2.0.1 calls it (SherpaOnnxCreateOfflineTts, then
       SherpaOnnxOfflineTtsGenerateWithConfig; its defaults: max_num_sentences
       0 -> 1, silence_scale 0.2)

The broken-pack cases (a metadata key dropped or changed, a file missing or
malformed) need the `onnx` module and work on copies in a temporary folder.
"""

import argparse
import ctypes
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

TEXT = "你好，世界。今天是二零二六年。"
# 500 characters: service phrases and numbers, with punctuation
LONG_UNIT = "您好，请问有什么可以帮您？我要查询话费余额。请稍等，正在为您查询一下。"
LONG = (LONG_UNIT * (500 // len(LONG_UNIT) + 1))[:500]


# ---------------------------------------------------------------- child side


def audio_facts(samples, sample_rate):
    import numpy as np

    s = np.asarray(samples, dtype=np.float64)
    facts = {"n": int(s.size), "sample_rate": int(sample_rate)}
    if s.size:
        finite = bool(np.isfinite(s).all())
        facts.update(
            seconds=round(s.size / sample_rate, 4) if sample_rate > 0 else None,
            finite=finite,
            peak=round(float(np.abs(s).max()), 4) if finite else None,
            rms=round(float(np.sqrt((s**2).mean())), 4) if finite else None,
            sha256=__import__("hashlib").sha256(np.asarray(samples, dtype=np.float32).tobytes()).hexdigest()[:16],
        )
    return facts


def py_tts(d, lexicon=True, num_threads=1):
    import sherpa_onnx as so

    vits = so.OfflineTtsVitsModelConfig(
        model=str(d / "model.onnx"),
        lexicon=str(d / "lexicon.txt") if lexicon else "",
        tokens=str(d / "tokens.txt"),
    )
    cfg = so.OfflineTtsConfig(model=so.OfflineTtsModelConfig(vits=vits, num_threads=num_threads))
    return so.OfflineTts(cfg)


class CApi:
    """The C structs of sherpa-onnx 2.0.1 (as the sherpa-onnx-sys crate
    declares them) and the calls the Rust crate makes."""

    def __init__(self):
        import sherpa_onnx

        lib = Path(sherpa_onnx.__file__).parent / "lib" / "libsherpa-onnx-c-api.so"
        self.lib = ctypes.CDLL(str(lib))
        P, F, I = ctypes.c_char_p, ctypes.c_float, ctypes.c_int32

        def S(name, fields):
            return type(name, (ctypes.Structure,), {"_fields_": fields})

        self.Vits = S("Vits", [("model", P), ("lexicon", P), ("tokens", P), ("data_dir", P),
                               ("noise_scale", F), ("noise_scale_w", F), ("length_scale", F),
                               ("dict_dir", P)])
        Matcha = S("Matcha", [("acoustic_model", P), ("vocoder", P), ("lexicon", P), ("tokens", P),
                              ("data_dir", P), ("noise_scale", F), ("length_scale", F), ("dict_dir", P)])
        Kokoro = S("Kokoro", [("model", P), ("voices", P), ("tokens", P), ("data_dir", P),
                              ("length_scale", F), ("dict_dir", P), ("lexicon", P), ("lang", P)])
        Kitten = S("Kitten", [("model", P), ("voices", P), ("tokens", P), ("data_dir", P),
                              ("length_scale", F), ("lexicon", P)])
        Zipvoice = S("Zipvoice", [("tokens", P), ("encoder", P), ("decoder", P), ("vocoder", P),
                                  ("data_dir", P), ("lexicon", P), ("feat_scale", F), ("t_shift", F),
                                  ("target_rms", F), ("guidance_scale", F)])
        Pocket = S("Pocket", [("lm_flow", P), ("lm_main", P), ("encoder", P), ("decoder", P),
                              ("text_conditioner", P), ("vocab_json", P), ("token_scores_json", P),
                              ("voice_embedding_cache_capacity", I)])
        Supertonic = S("Supertonic", [("duration_predictor", P), ("text_encoder", P),
                                      ("vector_estimator", P), ("vocoder", P), ("tts_json", P),
                                      ("unicode_indexer", P), ("voice_style", P)])
        self.Model = S("Model", [("vits", self.Vits), ("num_threads", I), ("debug", I), ("provider", P),
                                 ("matcha", Matcha), ("kokoro", Kokoro), ("kitten", Kitten),
                                 ("zipvoice", Zipvoice), ("pocket", Pocket), ("supertonic", Supertonic)])
        self.Config = S("Config", [("model", self.Model), ("rule_fsts", P), ("max_num_sentences", I),
                                   ("rule_fars", P), ("silence_scale", F)])
        self.Audio = S("Audio", [("samples", ctypes.POINTER(ctypes.c_float)), ("n", I), ("sample_rate", I)])
        self.Gen = S("Gen", [("silence_scale", F), ("speed", F), ("sid", I),
                             ("reference_audio", ctypes.POINTER(ctypes.c_float)), ("reference_audio_len", I),
                             ("reference_sample_rate", I), ("reference_text", P), ("num_steps", I),
                             ("extra", P), ("phoneme_codepoints", ctypes.POINTER(I)),
                             ("phoneme_codepoints_lens", ctypes.POINTER(I)),
                             ("phoneme_codepoints_num_sentences", I), ("tokens", ctypes.POINTER(P)),
                             ("tokens_lens", ctypes.POINTER(I)), ("tokens_num_sentences", I)])
        L = self.lib
        L.SherpaOnnxCreateOfflineTts.restype = ctypes.c_void_p
        L.SherpaOnnxCreateOfflineTts.argtypes = [ctypes.POINTER(self.Config)]
        L.SherpaOnnxOfflineTtsSampleRate.restype = I
        L.SherpaOnnxOfflineTtsSampleRate.argtypes = [ctypes.c_void_p]
        L.SherpaOnnxOfflineTtsNumSpeakers.restype = I
        L.SherpaOnnxOfflineTtsNumSpeakers.argtypes = [ctypes.c_void_p]
        L.SherpaOnnxOfflineTtsGenerateWithConfig.restype = ctypes.POINTER(self.Audio)
        L.SherpaOnnxOfflineTtsGenerateWithConfig.argtypes = [
            ctypes.c_void_p, P, ctypes.POINTER(self.Gen), ctypes.c_void_p, ctypes.c_void_p]
        L.SherpaOnnxDestroyOfflineTtsGeneratedAudio.argtypes = [ctypes.POINTER(self.Audio)]
        L.SherpaOnnxDestroyOfflineTts.argtypes = [ctypes.c_void_p]

    def create(self, d, lexicon=True, num_threads=1):
        # as the Rust crate's OfflineTtsConfig::default() plus model paths:
        # every other pointer NULL, max_num_sentences 0, silence_scale 0
        c = self.Config()
        c.model.vits.model = str(d / "model.onnx").encode()
        c.model.vits.lexicon = str(d / "lexicon.txt").encode() if lexicon else None
        c.model.vits.tokens = str(d / "tokens.txt").encode()
        c.model.vits.noise_scale, c.model.vits.noise_scale_w, c.model.vits.length_scale = 0.667, 0.8, 1.0
        c.model.num_threads = num_threads
        self._keep = c
        return self.lib.SherpaOnnxCreateOfflineTts(ctypes.byref(c))

    def generate(self, tts, text, sid=0, speed=1.0):
        g = self.Gen()
        g.silence_scale, g.speed, g.sid, g.num_steps = 0.2, speed, sid, 5
        g.extra = b"{}"
        p = self.lib.SherpaOnnxOfflineTtsGenerateWithConfig(tts, text.encode(), ctypes.byref(g), None, None)
        if not p:
            return None
        a = p.contents
        samples = [a.samples[i] for i in range(a.n)]
        rate = a.sample_rate
        self.lib.SherpaOnnxDestroyOfflineTtsGeneratedAudio(p)
        return samples, rate


def child(case):
    d = Path(case["pack"])
    api = case["api"]
    out = {}
    if api == "py":
        tts = py_tts(d, lexicon=case.get("lexicon", True), num_threads=case.get("num_threads", 1))
        out["sample_rate"], out["num_speakers"] = tts.sample_rate, tts.num_speakers
        print(json.dumps(out), flush=True)  # created: a later crash is in generate
        for i, (text, sid, speed) in enumerate(case.get("gen", [])):
            a = tts.generate(text, sid=sid, speed=speed)
            out[f"gen{i}"] = audio_facts(a.samples, a.sample_rate)
            print(json.dumps(out), flush=True)
    else:
        c = CApi()
        tts = c.create(d, lexicon=case.get("lexicon", True), num_threads=case.get("num_threads", 1))
        if not tts:
            out["create"] = "NULL"
            print(json.dumps(out), flush=True)
            return
        out["sample_rate"] = c.lib.SherpaOnnxOfflineTtsSampleRate(tts)
        out["num_speakers"] = c.lib.SherpaOnnxOfflineTtsNumSpeakers(tts)
        print(json.dumps(out), flush=True)  # created: a later crash is in generate
        for i, (text, sid, speed) in enumerate(case.get("gen", [])):
            r = c.generate(tts, text, sid, speed)
            out[f"gen{i}"] = "NULL" if r is None else audio_facts(*r)
            print(json.dumps(out), flush=True)
        c.lib.SherpaOnnxDestroyOfflineTts(tts)
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------- parent side


def run_case(name, case, python):
    p = subprocess.run(
        [python, __file__, "--child", json.dumps(case)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    rc = p.returncode
    how = "ok" if rc == 0 else (f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    # sherpa-onnx logs "FILE:FUNC:LINE message"; keep those and any exception text
    log = [l for l in p.stderr.splitlines() if l.strip()]
    keep = [l[:300] for l in log if "sherpa-onnx/" in l or "Error" in l or "what()" in l
            or "terminate" in l or "Exception" in l or "rror" in l][-6:]
    return {"name": name, "api": case["api"], "outcome": how, "result": result, "log": keep}


def metadata_variant(src, dst, change):
    import onnx

    shutil.copytree(src, dst)
    m = onnx.load(str(dst / "model.onnx"))
    props = {p.key: p.value for p in m.metadata_props}
    change(props)
    del m.metadata_props[:]
    for k, v in props.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, str(dst / "model.onnx"))
    return dst


def file_variant(src, dst, change):
    shutil.copytree(src, dst)
    change(dst)
    return dst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pack", type=Path, nargs="?")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the children")
    ap.add_argument("--no-broken", action="store_true", help="skip the broken-pack cases")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.pack is None:
        ap.error("PACK_DIR is required")
    pack = args.pack.resolve()
    results = []

    def case(name, api="py", d=pack, **kw):
        r = run_case(name, {"api": api, "pack": str(d), **kw}, args.python)
        results.append(r)
        print(f"{name:<38} {api:<4} {r['outcome']:<15} {json.dumps(r['result'], ensure_ascii=False)[:400]}")
        for l in r["log"]:
            print(f"    | {l}")
        return r

    # --- the pack itself
    speeds = case("speed 1.0 / 0.5 / 2.0 / 1.0 again", gen=[(TEXT, 0, 1.0), (TEXT, 0, 0.5), (TEXT, 0, 2.0), (TEXT, 0, 1.0)])
    case("speed via C API", api="capi", gen=[(TEXT, 0, 1.0), (TEXT, 0, 0.5), (TEXT, 0, 2.0)])
    for api in ("py", "capi"):
        case("empty text", api, gen=[("", 0, 1.0)])
        case("blank text", api, gen=[("   ", 0, 1.0)])
        case("punctuation only", api, gen=[("。，！？", 0, 1.0)])
        case("OOV only (emoji, Latin, digits)", api, gen=[("😀 hello ABC 123", 0, 1.0)])
        case("500 chars", api, gen=[(LONG, 0, 1.0)])
        case("500 chars, no punctuation", api, gen=[("您好请问有什么可以帮您" * 50, 0, 1.0)])
        case("sid 5 (n_speakers 1)", api, gen=[(TEXT, 5, 1.0)])
        case("sid -1", api, gen=[(TEXT, -1, 1.0)])
        case("speed 0", api, gen=[(TEXT, 0, 0.0)])
        case("speed -1", api, gen=[(TEXT, 0, -1.0)])
        case("speed 100", api, gen=[(TEXT, 0, 100.0)])
        case("speed 0.05", api, gen=[(TEXT, 0, 0.05)])
    case("no lexicon given", "py", lexicon=False, gen=[(TEXT, 0, 1.0)])
    case("no lexicon given", "capi", lexicon=False, gen=[(TEXT, 0, 1.0)])
    case("num_threads 0", "capi", num_threads=0, gen=[(TEXT, 0, 1.0)])

    if not args.no_broken:
        try:
            import onnx  # noqa: F401
        except ImportError:
            print("no onnx module: broken-pack cases skipped")
            args.no_broken = True
    if not args.no_broken:
        tmp = Path(tempfile.mkdtemp(prefix="vits-testpack-"))
        n = [0]

        def meta(name, change, apis=("capi",)):
            n[0] += 1
            d = metadata_variant(pack, tmp / f"m{n[0]}", change)
            for api in apis:
                case(name, api, d, gen=[(TEXT, 0, 1.0)])

        def files(name, change, apis=("capi",)):
            n[0] += 1
            d = file_variant(pack, tmp / f"f{n[0]}", change)
            for api in apis:
                case(name, api, d, gen=[(TEXT, 0, 1.0)])

        for key in ["sample_rate", "n_speakers", "language", "comment", "add_blank",
                    "punctuation", "model_type"]:
            meta(f"metadata without {key}", lambda p, k=key: p.pop(k),
                 apis=("capi", "py") if key == "sample_rate" else ("capi",))
        meta("metadata n_speakers=-1", lambda p: p.update(n_speakers="-1"))
        meta("metadata n_speakers=0, sid 0", lambda p: p.update(n_speakers="0"))
        n[0] += 1
        d = metadata_variant(pack, tmp / f"m{n[0]}", lambda p: p.update(n_speakers="0"))
        case("metadata n_speakers=0, sid 3", "capi", d, gen=[(TEXT, 3, 1.0)])
        meta("metadata sample_rate=0", lambda p: p.update(sample_rate="0"))
        meta("metadata sample_rate=abc", lambda p: p.update(sample_rate="abc"))
        meta("metadata language=English", lambda p: p.update(language="English"), apis=("capi", "py"))
        meta("metadata add_blank=0", lambda p: p.update(add_blank="0"))
        meta("metadata comment=piper", lambda p: p.update(comment="piper"), apis=("capi", "py"))
        meta("metadata comment=melo (no version)", lambda p: p.update(comment="melo"))
        meta("metadata frontend=characters", lambda p: p.update(frontend="characters"))
        meta("metadata jieba=1", lambda p: p.update(jieba="1"))

        files("model.onnx missing", lambda d: (d / "model.onnx").unlink())
        files("model.onnx missing", lambda d: (d / "model.onnx").unlink(), apis=("py",))
        files("model.onnx garbage", lambda d: (d / "model.onnx").write_bytes(b"not a model"))
        files("model.onnx garbage", lambda d: (d / "model.onnx").write_bytes(b"not a model"), apis=("py",))
        files("tokens.txt missing", lambda d: (d / "tokens.txt").unlink())
        files("lexicon.txt missing", lambda d: (d / "lexicon.txt").unlink())
        files("tokens.txt empty", lambda d: (d / "tokens.txt").write_text(""))
        files("tokens.txt line with 3 fields",
              lambda d: (d / "tokens.txt").write_text((d / "tokens.txt").read_text() + "a b c\n"))
        files("tokens.txt without eos (sil kept)",
              lambda d: (d / "tokens.txt").write_text(
                  "".join(l + "\n" for l in (d / "tokens.txt").read_text().splitlines()
                          if not l.startswith("eos "))), apis=("capi", "py"))
        files("tokens.txt id beyond the embedding",
              lambda d: (d / "tokens.txt").write_text(
                  (d / "tokens.txt").read_text().replace("\nsil 1\n", "\nsil 100000\n")), apis=("capi", "py"))
        n[0] += 1
        d = file_variant(pack, tmp / f"f{n[0]}", lambda d: (d / "tokens.txt").write_text(
            "".join(l + "\n" for l in (d / "tokens.txt").read_text().splitlines()
                    if l.split()[0] not in ("sil", "eos"))))
        for api in ("capi", "py"):
            case("tokens.txt without sil and eos", api, d,
                 gen=[(TEXT, 0, 1.0), ("", 0, 1.0), ("😀 hello", 0, 1.0), ("。", 0, 1.0)])
        files("lexicon.txt empty", lambda d: (d / "lexicon.txt").write_text(""))
        files("lexicon.txt unknown phone",
              lambda d: (d / "lexicon.txt").write_text("你 qqq9\n" + (d / "lexicon.txt").read_text()))
        shutil.rmtree(tmp, ignore_errors=True)

    # durations per speed
    r = speeds["result"]
    if all(k in r for k in ("gen0", "gen1", "gen2", "gen3")):
        base = r["gen0"]["n"]
        print("\ndurations: " + ", ".join(
            f"speed {s}: {r[k]['seconds']} s (x{r[k]['n'] / base:.3f})"
            for s, k in [(1.0, "gen0"), (0.5, "gen1"), (2.0, "gen2")]))
        print("deterministic:", r["gen0"]["sha256"] == r["gen3"]["sha256"])
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
