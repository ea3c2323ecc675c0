"""What a hot-word vocabulary costs (issue 14), on the transducer packs, next to
no vocabulary, in one run: `scripts/bench-hotwords`.

One sisd (defaults: 2 engine worker processes) serves the committed
transducer packs (zh-tiny-transducer-{offline,streaming}, modified_beam_search
with per-stream hot-word lists). Three configurations: no vocabulary, a
1,000-word and a 10,000-word vocabulary of words unrelated to the audio
(deterministic random 2-4 character words over the pack's own tokens, so
every word reaches sherpa-onnx's hot-word list; none occurs in the held-out
texts). In interleaved rounds:

- short-audio: the held-out clips (16 kHz PCM) one request at a time; latency
  (median, p95) and CER per configuration; the first request after a
  vocabulary is created (compilation, lists written) is reported apart;
- real-time streams: `rasr-load` opens N streams (continue-stream, 6 s of
  held-out audio each, 100 ms frames); the server's CPU per stream gives
  streams per core (100 % / CPU % per stream), with the p95 final latency.

Then the weight curve: for each SIS weight 1..10, a vocabulary holding the
transducer homophones of tests/integration/test_hotwords.py (售候中心 for
售后中心 ...) at that weight; hits = place phrases whose place comes out in
the vocabulary's spelling; false alarms = other held-out clips (sentences
naming no place, numbers) in which any of its words appears, and their CER.

Writes target/bench-hotwords/results.json and table.md, prints the tables.
Knobs: BENCH_HW_ROUNDS (3), BENCH_HW_CLIPS (60), BENCH_HW_STREAMS (16),
BENCH_HW_CURVE_CLIPS (at most this many place phrases and as many others per
weight; 1000).
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
import base64
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))
from common import machine, pct, sisd  # noqa: E402
from conftest import edit_distance  # noqa: E402
from test_hotwords import FAMILIES  # noqa: E402  the homophones the test uses

HOMOPHONES = FAMILIES["transducer"]["homophones"]
OUT = ROOT / "target/bench-hotwords"
HELDOUT = Path(os.environ.get("SIS_HELDOUT_DIR", ROOT / "target/heldout"))
LOAD = ROOT / "target/release/rasr-load"
ROUNDS = int(os.environ.get("BENCH_HW_ROUNDS", "3"))
CLIPS = int(os.environ.get("BENCH_HW_CLIPS", "60"))
STREAMS = int(os.environ.get("BENCH_HW_STREAMS", "16"))
CURVE_CLIPS = int(os.environ.get("BENCH_HW_CURVE_CLIPS", "1000"))
PORT = int(os.environ.get("BENCH_HW_PORT", "18690"))
PACKS = ["zh-tiny-transducer-offline", "zh-tiny-transducer-streaming"]
PROPERTY = "chinese_16k_hotword"
SIZES = [0, 1000, 10000]
BASE = f"http://127.0.0.1:{PORT}"


def log(msg):
    print(f"[bench-hotwords] {msg}", file=sys.stderr, flush=True)



def post(path, body):
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        doc = json.loads(r.read())
    return doc, (time.perf_counter() - t) * 1000


def unrelated_words(n, tokens, texts, seed):
    rng = random.Random(seed)
    words = set()
    while len(words) < n:
        w = "".join(rng.choice(tokens) for _ in range(rng.randint(2, 4)))
        if not any(w in t for t in texts):
            words.add(w)
    return sorted(words)



def main():
    rows = [line.split("\t") for line in (HELDOUT / "manifest.tsv").read_text("utf-8").splitlines()[1:]]
    clips = [(r[0], r[2]) for r in rows if r[1] == "sentence"][:CLIPS // 2] + \
            [(r[0], r[2]) for r in rows if r[1] == "number"][:CLIPS - CLIPS // 2]
    pcm = {}
    for uid, _ in clips:
        with wave.open(str(HELDOUT / "16k" / f"{uid}.wav")) as w:
            pcm[uid] = base64.b64encode(w.readframes(w.getnframes())).decode()
    tokens = [line.split()[0] for line in
              (ROOT / "testdata/models" / PACKS[0] / "tokens.txt").read_text("utf-8").splitlines()]
    tokens = [t for t in tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    texts = [r[2] for r in rows]

    packs = [ROOT / "testdata/models" / p for p in PACKS] + [ROOT / "../shared/models/silero_vad"]
    with sisd(OUT, packs, PORT, "--max-streams", "4096") as server:
        results = run(server, clips, pcm, tokens, texts)
        results["curve"] = curve(rows)
    report(results)


def short_audio(vocabulary_id):
    cfg = {"audio_format": "pcm16k16bit", "property": PROPERTY, "add_punc": "no", "digit_norm": "no"}
    if vocabulary_id:
        cfg["vocabulary_id"] = vocabulary_id
    return cfg


def run(server, clips, pcm, tokens, texts):
    vocabularies = {0: None}
    first = {}
    for n in SIZES[1:]:
        doc, _ = post("/v1/bench/asr/vocabularies", {
            "name": f"unrelated{n}", "language": "chinese_mandarin",
            "contents": unrelated_words(n, tokens, texts, seed=n)})
        vocabularies[n] = doc["vocabulary_id"]
    # the first requests naming each vocabulary: compilation and the lists
    # written in each engine worker (2 requests, one per worker, likely)
    for n in SIZES:
        first[n] = [post("/v1/bench/asr/short-audio", {
            "data": pcm[clips[0][0]], "config": short_audio(vocabularies[n])})[1] for _ in range(2)]
        log(f"first requests with {n} words: {first[n][0]:.0f} ms, {first[n][1]:.0f} ms")
    lat = {n: [] for n in SIZES}
    errs = {n: [0, 0] for n in SIZES}
    streams = {n: [] for n in SIZES}
    for rnd in range(ROUNDS):
        order = SIZES if rnd % 2 == 0 else SIZES[::-1]
        for n in order:
            for uid, text in clips:
                doc, ms = post("/v1/bench/asr/short-audio", {"data": pcm[uid],
                                                             "config": short_audio(vocabularies[n])})
                lat[n].append(ms)
                if rnd == 0:
                    errs[n][0] += edit_distance(text, doc["result"]["text"])
                    errs[n][1] += len(text)
            log(f"round {rnd + 1}: short-audio {n} words: median {statistics.median(lat[n]):.1f} ms")
        for n in order:
            args = [LOAD, "--proto", "sis", "--url", f"ws://127.0.0.1:{PORT}/v1/bench/rasr/continue-stream",
                    "-n", str(STREAMS), "--property", PROPERTY, "--server-pid", str(server.pid),
                    "--seed", str(rnd + 1), "--label", f"{n} words"]
            if vocabularies[n]:
                args += ["--vocabulary-id", vocabularies[n]]
            r = subprocess.run([*map(str, args), HELDOUT / "16k"], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"rasr-load: {r.stderr}")
            line = json.loads(r.stdout.strip().splitlines()[-1])
            streams[n].append(line)
            log(f"round {rnd + 1}: {STREAMS} streams, {n} words: {line['ok']}/{line['n']} ok, "
                f"server CPU {line['server']['cpu_pct_per_stream']} % of a core per stream, "
                f"final p95 {line['final_ms']['p95'] if line['final_ms'] else None} ms")
    return {
        **machine(),
        "config": {"rounds": ROUNDS, "clips": len(clips), "streams": STREAMS, "packs": PACKS,
                   "property": PROPERTY},
        "first_ms": first, "latency_ms": lat, "cer": {n: 100.0 * e / t for n, (e, t) in errs.items()},
        "streams": streams,
    }


def curve(rows):
    places = [(r[0], r[2]) for r in rows if r[1] == "sentence" and any(c in r[2] for c in HOMOPHONES)]
    others = [(r[0], r[2]) for r in rows if r[1] == "sentence" and (r[0], r[2]) not in places]
    others += [(r[0], r[2]) for r in rows if r[1] == "number"][:len(others)]
    places, others = places[:CURVE_CLIPS], others[:CURVE_CLIPS]
    audio = {}
    for uid, _ in places + others:
        with wave.open(str(HELDOUT / "16k" / f"{uid}.wav")) as w:
            audio[uid] = base64.b64encode(w.readframes(w.getnframes())).decode()
    out = []
    for weight in [None, *range(1, 11)]:
        vid = None
        if weight:
            doc, _ = post("/v1/bench/asr/vocabularies", {
                "name": f"places_w{weight}", "language": "chinese_mandarin",
                "contents": [f"{h}|{weight}" for h in HOMOPHONES.values()]})
            vid = doc["vocabulary_id"]
        hits = common = 0
        for uid, text in places:
            got = post("/v1/bench/asr/short-audio", {"data": audio[uid], "config": short_audio(vid)})[0]
            place = next(c for c in HOMOPHONES if c in text)
            hits += HOMOPHONES[place] in got["result"]["text"]
            common += place in got["result"]["text"]
        false, err, tot = 0, 0, 0
        for uid, text in others:
            got = post("/v1/bench/asr/short-audio", {"data": audio[uid], "config": short_audio(vid)})[0]
            t = got["result"]["text"]
            false += any(h in t for h in HOMOPHONES.values())
            err += edit_distance(text, t)
            tot += len(text)
        out.append({"weight": weight, "places": len(places), "hits": hits, "common": common,
                    "others": len(others), "false_alarms": false, "others_cer": 100.0 * err / tot})
        log(f"weight {weight}: {hits}/{len(places)} hits, {common} common, {false}/{len(others)} false alarms, "
            f"CER elsewhere {100.0 * err / tot:.2f} %")
    return out


def report(res):
    (OUT / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    base = statistics.median(res["latency_ms"][0])
    cpu0 = statistics.median(s["server"]["cpu_pct_per_stream"] for s in res["streams"][0])
    lines = [
        f"Commit {res['commit']}, {res['date']}, {res['machine']['nproc']} x {res['machine']['cpu']}; "
        f"{res['config']['rounds']} rounds, {res['config']['clips']} clips, {res['config']['streams']} streams.",
        "",
        "| vocabulary | short-audio median ms | p95 ms | ratio to none | first 2 requests ms | CER % "
        "| CPU % of a core per stream | streams per core | ratio to none | final p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in SIZES:
        lat = res["latency_ms"][n]
        cpu = statistics.median(s["server"]["cpu_pct_per_stream"] for s in res["streams"][n])
        p95 = statistics.median(s["final_ms"]["p95"] for s in res["streams"][n] if s["final_ms"])
        ok = sum(s["ok"] for s in res["streams"][n])
        tot = sum(s["n"] for s in res["streams"][n])
        lines.append(
            f"| {n:,} words | {statistics.median(lat):.1f} | {pct(lat, 0.95):.1f} | "
            f"{statistics.median(lat) / base:.3f} | {', '.join(f'{x:.0f}' for x in res['first_ms'][n])} | "
            f"{res['cer'][n]:.2f} | {cpu:.3f} | {100 / cpu:.0f} | {cpu0 / cpu:.3f} | {p95:.0f}"
            + ("" if ok == tot else f" ({tot - ok} of {tot} streams failed)") + " |")
    lines += ["", "Weight curve (short-audio, offline transducer; score = sherpa-onnx's per-token boost):", "",
              "| weight | score | place in the vocabulary's spelling | in the common spelling "
              "| false alarms elsewhere | CER elsewhere % |", "|---|---|---|---|---|---|"]
    for c in res["curve"]:
        w = c["weight"]
        lines.append(f"| {w or 'no vocabulary'} | {'' if w is None else f'{0.5 + 0.25 * (w - 1):.2f}'} | "
                     f"{c['hits']}/{c['places']} | {c['common']}/{c['places']} | "
                     f"{c['false_alarms']}/{c['others']} | {c['others_cer']:.2f} |")
    table = "\n".join(lines) + "\n"
    (OUT / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
