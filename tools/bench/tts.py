"""Speech synthesis speed (issue 15): sisd's `POST /tts` and `wss /rtts` next
to espeak-ng run directly, and sisd reading a sherpa-onnx VITS pack next to
sherpa-onnx's own command-line tool on the same pack, the same texts, in one
run: `scripts/bench-tts`.

One sisd (defaults: `--tts-max-processes` = cores, one thread per
sherpa-onnx synthesis in its engine workers; one test ASR pack installed because sisd serves nothing
without a pack; `--models testdata/tts-models` for the VITS pack)
synthesises with the voice `chinese_xiaowen_common` (espeak-ng
`cmn-Latn-pinyin+f3`, `-p 50`), and with `chinese_huaxiaomei_common`, which
the committed test pack `testdata/tts-models/zh-tiny-vits-test` reads as its
speaker 0 (an untrained tiny VITS-shaped network: tones, not speech; what it
measures is the cost of the path and of a network of its size, not of a real
voice), both 16 kHz `pcm`. The texts are held-out sentences
(target/heldout/manifest.tsv) joined with 。 and cut at 20 and at 200
characters (8 different texts of each length, taken in turn). Paths:

- sisd /tts: one JSON answer; time to its first byte (the status line) and
  to the whole answer (nearly the same moment: the answer is one JSON document
  written at once), over a kept-alive HTTP/1.1 connection per thread;
- sisd /rtts: a new connection per synthesis (one per connection, as the
  protocol says); time from the connection opened (so including the
  WebSocket upgrade) to the first binary audio message and to END;
- peer, per sentence: `espeak-ng -v cmn-Latn-pinyin+f3 -p 50 -b 1 --stdout`
  with one sentence's pinyin on stdin, one process per sentence as the engine
  runs it (sentences cut at 。, started in order, at most `nproc` processes
  at once over all threads: the engine's default bound); time to the first
  audio byte (past the 44-byte WAV header) on the first sentence's stdout,
  and to the last process's exit;
- peer, whole text: the same command with the whole text's pinyin, one
  process per text (same bound on processes at once);
- sisd /tts (VITS pack), sisd /rtts (VITS pack): as sisd /tts and /rtts,
  with the pack's voice;
- peer of those, sherpa-onnx-offline-tts: `.venv-bench/bin/
  sherpa-onnx-offline-tts` (PyPI sherpa-onnx-bin 2.0.1, the sherpa-onnx
  version sisd links) with the pack's model, tokens and lexicon, `--sid=0
  --num-threads=1`, one process per text, writing a WAV file; each thread
  runs one at a time (no other bound). Its time is the process's, from
  start to exit, so it includes loading the model for every text: the
  honest cost of the command-line tool, which cannot keep a model loaded
  (sisd loads it once, at start). Its "first audio" is its exit: it writes
  the file only at the end. It gets the raw text, where sisd first
  normalises it (`sis_text::normalize_for_speech`, numbers read out in
  hanzi) and cuts it into sentences: the texts have no digit (checked), so
  the normalisation leaves them as they are; the tool cuts the text into
  sentences itself.

The peer's pinyin comes from pypinyin (tools/bench/tts_pinyin.py in
.venv-bench), not from sisd's Rust conversion: the same format, readings
that may differ on polyphones. The peer writes espeak-ng's 22,050 Hz WAV
and does nothing else (no resampling to 16 kHz, no JSON, no base64).

RTF = the request's wall time (to the whole answer / END / the last exit)
over the seconds of audio it produced (sisd: pcm bytes at 16 kHz; espeak-ng:
WAV data bytes at 22,050 Hz; sherpa-onnx-offline-tts: the frames of the WAV
it wrote over its rate, 16 kHz). At each concurrency (threads sending
requests back to back, the same number each per round) the seven paths run
one after the other in each round, the order rotating between rounds; the
ratios sisd / peer (the espeak-ng voice's paths over both espeak-ng peers,
the VITS pack's over sherpa-onnx-offline-tts) are taken per round (medians
of the round) and given as median [min, max] over rounds. CPU per request:
sisd's and its engine workers' utime+stime with their finished children
(espeak-ng; /proc/PID/stat of sisd and every process below it), the peers'
processes (getrusage) — the driver's own CPU in neither.

Writes target/bench-tts/results.json and table.md, prints the table.
Knobs: BENCH_TTS_ROUNDS (7), BENCH_TTS_REQUESTS (per thread per round, 10),
BENCH_TTS_CHARS ("20 200"), BENCH_TTS_CONCURRENCY ("1 8"), BENCH_TTS_PORT
(18700).
"""

import base64
import functools
import http.client
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import wave
from pathlib import Path

import websocket

from common import machine, pct, sh, sisd

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target/bench-tts"
HELDOUT = Path(os.environ.get("SIS_HELDOUT_DIR", ROOT / "target/heldout"))
BENCH_PYTHON = ROOT / ".venv-bench/bin/python"
ROUNDS = int(os.environ.get("BENCH_TTS_ROUNDS", "7"))
REQUESTS = int(os.environ.get("BENCH_TTS_REQUESTS", "10"))
CHARS = [int(x) for x in os.environ.get("BENCH_TTS_CHARS", "20 200").split()]
CONCURRENCY = [int(x) for x in os.environ.get("BENCH_TTS_CONCURRENCY", "1 8").split()]
PORT = int(os.environ.get("BENCH_TTS_PORT", "18700"))
TEXTS_PER_LENGTH = 8
PACK = "zh-tiny-ctc-offline"
PROPERTY = "chinese_xiaowen_common"
ESPEAK = ["espeak-ng", "-v", "cmn-Latn-pinyin+f3", "-p", "50", "-b", "1", "--stdout"]
RATE = 16000
PEER_RATE = 22050
WAV_HEADER = 44  # espeak-ng's streaming header: RIFF, fmt, data
SLOTS = os.cpu_count() or 1  # sisd's --tts-max-processes default
TICK = os.sysconf("SC_CLK_TCK")
VITS_MODELS = ROOT / "testdata/tts-models"
VITS_PACK = VITS_MODELS / "zh-tiny-vits-test"
VITS_PROPERTY = "chinese_huaxiaomei_common"  # the pack's speaker 0
SHERPA = [str(ROOT / ".venv-bench/bin/sherpa-onnx-offline-tts"), f"--vits-model={VITS_PACK / 'model.onnx'}",
          f"--vits-tokens={VITS_PACK / 'tokens.txt'}", f"--vits-lexicon={VITS_PACK / 'lexicon.txt'}",
          "--sid=0", "--num-threads=1"]
PATHS = ["sisd /tts", "sisd /rtts", "espeak-ng per sentence", "espeak-ng whole text",
         "sisd /tts (VITS pack)", "sisd /rtts (VITS pack)", "sherpa-onnx-offline-tts"]
SISD_PATHS = [p for p in PATHS if p.startswith("sisd ")]
# the ratio columns' peers, and the peers each sisd path is held against
PEERS = ["espeak-ng per sentence", "espeak-ng whole text", "sherpa-onnx-offline-tts"]
AGAINST = {"sisd /tts": PEERS[:2], "sisd /rtts": PEERS[:2],
           "sisd /tts (VITS pack)": PEERS[2:], "sisd /rtts (VITS pack)": PEERS[2:]}
BASE = f"http://127.0.0.1:{PORT}"


def log(msg):
    print(f"[bench-tts] {msg}", file=sys.stderr, flush=True)




def make_texts(sentences, chars):
    """TEXTS_PER_LENGTH texts of `chars` characters, each from consecutive
    held-out sentences joined with 。, starting at different sentences."""
    texts = []
    for k in range(TEXTS_PER_LENGTH):
        i, text = k * 17, ""
        while len(text) < chars:
            text += sentences[i % len(sentences)] + "。"
            i += 1
        texts.append(text[:chars])
    return texts


def split_sentences(text):
    """Cut at 。！？ as the engine does (sis_text::split_sentences; these
    texts have no sentence over its 100 characters)."""
    pieces = re.findall(r"[^。！？]+[。！？]?", text)
    assert all(len(p) <= 100 for p in pieces), pieces
    return pieces


def peer_pinyin(texts):
    """{text: [espeak-ng input per sentence]} from tools/bench/tts_pinyin.py."""
    sentences = sorted({s for t in texts for s in split_sentences(t)})
    r = subprocess.run([BENCH_PYTHON, ROOT / "tools/bench/tts_pinyin.py"],
                       input=json.dumps(sentences, ensure_ascii=False),
                       capture_output=True, text=True, check=True)
    pinyin = dict(zip(sentences, json.loads(r.stdout)))
    return {t: [pinyin[s] for s in split_sentences(t)] for t in texts}


# ---- the seven paths: each returns {"first": s, "done": s, "audio": s} ----

class Client:
    """One thread's client state: a kept-alive HTTP connection, and the WAV
    file sherpa-onnx-offline-tts writes."""

    ids = itertools.count()

    def __init__(self):
        self.http = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
        self.wav = OUT / f"sherpa-onnx-{next(Client.ids)}.wav"

    def close(self):
        self.http.close()
        self.wav.unlink(missing_ok=True)


def tts_body(text, prop, fmt="pcm"):
    return {"text": text, "config": {"audio_format": fmt, "sample_rate": str(RATE), "property": prop}}


def via_rest(client, text, _pinyin, prop=PROPERTY):
    body = json.dumps(tts_body(text, prop)).encode()
    t0 = time.perf_counter()
    client.http.request("POST", "/v1/bench/tts", body, {"Content-Type": "application/json"})
    resp = client.http.getresponse()
    first = time.perf_counter() - t0
    data = resp.read()
    done = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"/tts answered {resp.status}: {data[:300]!r}")
    pcm = base64.b64decode(json.loads(data)["result"]["data"])
    return {"first": first, "done": done, "audio": len(pcm) / 2 / RATE}


def via_rtts(_client, text, _pinyin, prop=PROPERTY):
    t0 = time.perf_counter()
    ws = websocket.create_connection(f"ws://127.0.0.1:{PORT}/v1/bench/rtts", timeout=120)
    try:
        connected = time.perf_counter() - t0
        ws.send(json.dumps({"command": "START", **tts_body(text, prop)}))
        first, nbytes = None, 0
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                if first is None:
                    first = time.perf_counter() - t0
                nbytes += len(data)
            elif op == websocket.ABNF.OPCODE_TEXT:
                msg = json.loads(data)
                if msg["resp_type"] == "END":
                    done = time.perf_counter() - t0
                    if msg.get("reason") != "NORMAL":
                        raise RuntimeError(f"/rtts ended with {msg}")
                    break
                if msg["resp_type"] != "START":
                    raise RuntimeError(f"/rtts sent {msg}")
            else:
                raise RuntimeError(f"/rtts closed before END (opcode {op})")
    finally:
        ws.close()
    return {"first": first, "done": done, "audio": nbytes / 2 / RATE, "connect": connected}


class Espeak:
    """espeak-ng processes, at most SLOTS at once over all threads."""

    slots = threading.BoundedSemaphore(SLOTS)

    def __init__(self, pinyin):
        """Starts one process for `pinyin` once a slot is free; the slot is
        given back when the process has exited."""
        Espeak.slots.acquire()
        self.first, self.nbytes, self.code = None, 0, None
        self.proc = subprocess.Popen(ESPEAK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self.read, args=(pinyin,))
        self.reader.start()

    def read(self, pinyin):
        try:
            # a sentence's pinyin is far below a pipe's 64 KiB: no deadlock
            self.proc.stdin.write((pinyin + "\n").encode())
            self.proc.stdin.close()
            fd = self.proc.stdout.fileno()
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.nbytes += len(chunk)
                if self.first is None and self.nbytes > WAV_HEADER:
                    self.first = time.perf_counter()  # the first audio, past the header
            self.proc.stdout.close()
            self.code = self.proc.wait()
            self.end = time.perf_counter()
        finally:
            Espeak.slots.release()

    def join(self):
        self.reader.join()
        if self.code != 0:
            raise RuntimeError(f"espeak-ng exited with {self.code}")
        return self


def peer_audio(runs):
    return sum(r.nbytes - WAV_HEADER for r in runs) / 2 / PEER_RATE


def via_sentences(_client, _text, pinyin):
    t0 = time.perf_counter()
    runs = [Espeak(p) for p in pinyin]  # started in order, each when a slot is free
    runs = [r.join() for r in runs]
    return {"first": runs[0].first - t0, "done": max(r.end for r in runs) - t0,
            "audio": peer_audio(runs), "processes": len(runs)}


def via_whole(_client, _text, pinyin):
    t0 = time.perf_counter()
    run = Espeak(" ".join(pinyin)).join()
    return {"first": run.first - t0, "done": run.end - t0, "audio": peer_audio([run]), "processes": 1}


def via_sherpa(client, text, _pinyin):
    """One sherpa-onnx-offline-tts process for the raw text: start to exit,
    model load included; the audio is the WAV it wrote."""
    client.wav.unlink(missing_ok=True)
    t0 = time.perf_counter()
    r = subprocess.run([*SHERPA, f"--output-filename={client.wav}", text],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"sherpa-onnx-offline-tts exited with {r.returncode}: {r.stderr[-300:]!r}")
    with wave.open(str(client.wav)) as w:
        if w.getframerate() != RATE:
            raise RuntimeError(f"sherpa-onnx-offline-tts wrote {w.getframerate()} Hz")
        audio = w.getnframes() / w.getframerate()
    return {"first": done, "done": done, "audio": audio, "processes": 1}


VIA = dict(zip(PATHS, [via_rest, via_rtts, via_sentences, via_whole,
                       functools.partial(via_rest, prop=VITS_PROPERTY),
                       functools.partial(via_rtts, prop=VITS_PROPERTY), via_sherpa]))


# ---- measuring ----

def proc_stat(pid):
    """(ppid, utime+stime+cutime+cstime in ticks) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def sisd_cpu(pid):
    """sisd's CPU and that of every process below it (the engine workers,
    which live as long as sisd does), each with its finished children."""
    stats = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stats[int(p.name)] = proc_stat(p.name)
            except (OSError, IndexError, ValueError):  # gone meanwhile
                pass
    below, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        below.add(parent)
        todo += [p for p, (pp, _) in stats.items() if pp == parent and p not in below]
    return sum(stats[p][1] for p in below if p in stats) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def step(server, path, texts, pinyin, concurrency, rnd):
    """`concurrency` threads, each sending REQUESTS requests back to back."""
    results = [[] for _ in range(concurrency)]
    errors = []
    clients = [Client() for _ in range(concurrency)]
    start = threading.Barrier(concurrency + 1)

    def worker(i):
        start.wait()
        try:
            for k in range(REQUESTS):
                text = texts[(rnd * REQUESTS * concurrency + i * REQUESTS + k) % len(texts)]
                results[i].append(VIA[path](clients[i], text, pinyin[text]))
        except Exception as e:  # reported after the step
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    cpu0 = sisd_cpu(server.pid) if path in SISD_PATHS else children_cpu()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = (sisd_cpu(server.pid) if path in SISD_PATHS else children_cpu()) - cpu0
    for c in clients:
        c.close()
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    reqs = [r for rs in results for r in rs]
    return {"wall_s": wall, "rps": len(reqs) / wall, "cpu_ms_per_req": 1000 * cpu / len(reqs), "requests": reqs}


def summary(reqs):
    return {"rtf": statistics.median(r["done"] / r["audio"] for r in reqs),
            "first": statistics.median(r["first"] for r in reqs)}


def main():
    rows = [line.split("\t") for line in (HELDOUT / "manifest.tsv").read_text("utf-8").splitlines()[1:]]
    sentences = [r[2] for r in rows if r[1] == "sentence"]
    texts = {n: make_texts(sentences, n) for n in CHARS}
    # sisd's normalisation rewrites digits only: with none, sherpa-onnx-offline-tts
    # given the raw text reads what sisd's VITS path reads
    assert not any(re.search(r"[0-9０-９]", t) for ts in texts.values() for t in ts), texts
    speakers = tomllib.loads((VITS_PACK / "pack.toml").read_text("utf-8"))["speakers"]
    assert speakers[VITS_PROPERTY] == 0, speakers  # the peer's --sid=0
    pinyin = peer_pinyin([t for ts in texts.values() for t in ts])

    with sisd(OUT, [ROOT / "testdata/models" / PACK], PORT, "--models", VITS_MODELS) as server:
        results = run(server, texts, pinyin)
    report(results)


def run(server, texts, pinyin):
    t_start = time.monotonic()
    # warm-up, not measured: every path once on every text length
    for n in CHARS:
        for path in PATHS:
            client = Client()
            VIA[path](client, texts[n][0], pinyin[texts[n][0]])
            client.close()
    steps = {}
    for rnd in range(ROUNDS):
        order = PATHS[rnd % len(PATHS):] + PATHS[:rnd % len(PATHS)]
        for n in CHARS:
            for c in CONCURRENCY:
                for path in order:
                    s = step(server, path, texts[n], pinyin, c, rnd)
                    steps.setdefault(f"{n}/{c}/{path}", []).append(s)
                    m = summary(s["requests"])
                    log(f"round {rnd + 1}: {n} chars, concurrency {c}, {path}: RTF {m['rtf']:.4f}, "
                        f"first audio {1000 * m['first']:.1f} ms, {s['rps']:.1f} req/s")
    return {
        **machine(),
        "espeak_ng": sh("espeak-ng --version"),
        "sherpa_onnx_bin": sh(f"{BENCH_PYTHON} -c 'import importlib.metadata as m; "
                              f"print(m.version(\"sherpa-onnx-bin\"))'"),
        "config": {"rounds": ROUNDS, "requests_per_thread": REQUESTS, "chars": CHARS,
                   "concurrency": CONCURRENCY, "property": PROPERTY, "peer": " ".join(ESPEAK),
                   "peer_slots": SLOTS, "sample_rate": RATE, "peer_pinyin": "pypinyin 0.55.0",
                   "vits_pack": str(VITS_PACK.relative_to(ROOT)), "vits_property": VITS_PROPERTY,
                   "vits_peer": " ".join(Path(a).name if i == 0 else a.replace(f"{ROOT}/", "")
                                         for i, a in enumerate(SHERPA)),
                   "vits_peer_text": "raw: sisd normalises first, a no-op on these texts (no digit)"},
        "texts": texts, "peer_pinyin": pinyin, "steps": steps,
        "duration_s": time.monotonic() - t_start,
    }


def ratio_cell(res, n, c, path, peer, key):
    rs = [summary(a["requests"])[key] / summary(b["requests"])[key]
          for a, b in zip(res["steps"][f"{n}/{c}/{path}"], res["steps"][f"{n}/{c}/{peer}"])]
    return f"{statistics.median(rs):.2f} [{min(rs):.2f}, {max(rs):.2f}]"


def report(res):
    (OUT / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    cfg = res["config"]
    lines = [
        f"Commit {res['commit']}, {res['date']}, {res['machine']['nproc']} x {res['machine']['cpu']}; "
        f"{cfg['rounds']} rounds, {cfg['requests_per_thread']} requests per thread per round; "
        f"voice {cfg['property']} ({cfg['peer']}), sisd {cfg['sample_rate']} Hz pcm; "
        f"the peer's pinyin from {cfg['peer_pinyin']}, at most {cfg['peer_slots']} espeak-ng at once; "
        f"VITS pack {cfg['vits_pack']}, voice {cfg['vits_property']} (speaker 0), "
        f"its peer `{cfg['vits_peer']}`, one process per text, given the text "
        f"{cfg['vits_peer_text']}.",
        "",
        "| chars | concurrency | path | audio s | RTF p50 | first audio p50 / p95 ms | whole p50 / p95 ms "
        "| req/s | CPU ms/req | RTF ÷ peer per sentence | first audio ÷ peer per sentence "
        "| RTF ÷ peer whole text | first audio ÷ peer whole text "
        "| RTF ÷ sherpa-onnx-offline-tts | first audio ÷ sherpa-onnx-offline-tts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in cfg["chars"]:
        for c in cfg["concurrency"]:
            for path in PATHS:
                steps = res["steps"][f"{n}/{c}/{path}"]
                reqs = [r for s in steps for r in s["requests"]]
                first = [1000 * r["first"] for r in reqs]
                done = [1000 * r["done"] for r in reqs]
                row = (f"| {n} | {c} | {path} | {statistics.median(r['audio'] for r in reqs):.2f} | "
                       f"{statistics.median(r['done'] / r['audio'] for r in reqs):.4f} | "
                       f"{statistics.median(first):.1f} / {pct(first, 0.95):.1f} | "
                       f"{statistics.median(done):.1f} / {pct(done, 0.95):.1f} | "
                       f"{statistics.median(s['rps'] for s in steps):.1f} | "
                       f"{statistics.median(s['cpu_ms_per_req'] for s in steps):.1f} |")
                row += "".join(f" {ratio_cell(res, n, c, path, peer, key)} |"
                               if peer in AGAINST.get(path, []) else "  |"
                               for peer in PEERS for key in ("rtf", "first"))
                lines.append(row)
    lines += ["", "sisd /tts: first audio = the answer's first byte (one JSON document, written at once); "
              "sisd /rtts: from the connection opened to the first binary message / END; "
              "espeak-ng: from the first process started to its first audio byte on stdout "
              "(past the 44-byte WAV header) / the last exit; "
              "sherpa-onnx-offline-tts: from the process started to its exit for both "
              "(it writes its WAV file at the end), model load included. "
              "Ratios: per round (medians of the round), median [min, max] over rounds; below 1 sisd is faster."]
    table = "\n".join(lines) + "\n"
    (OUT / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
