"""Build a tiny, test-only TTS pack that sherpa-onnx loads as a VITS model.

Usage (torch, onnx, onnxruntime, pypinyin: tools/train/requirements.txt):

    python tools/tts_testpack/make_vits_testpack.py OUT_DIR [--speakers N]

writes OUT_DIR/{model.onnx, tokens.txt, lexicon.txt, pack.toml}.

The network is NOT trained and does not speak: it has seeded random weights
and turns each phone into a few frames of a harmonic tone (pitch, loudness
and timbre set by the random network, pauses silent). What it is for: tests
of the TTS load and synthesis path that need no downloaded model. It has the
interface of the VITS exports sherpa-onnx reads (like the AISHELL-3 vits-zh
pack with a lexicon):

  inputs   x             int64 (1, L)   token ids (blanks interleaved)
           x_length      int64 (1,)     L
           noise_scale   float (1,)     loudness of a deterministic noise part
           length_scale  float (1,)     every duration is multiplied by it
                                        (sherpa-onnx passes 1/speed)
           noise_scale_w float (1,)     depth of a small duration wobble
           sid           int64 (1,)     speaker: sets the base pitch (clamped
                                        to [0, n_speakers-1] inside the graph)
  output   y             float (1, 1, T*HOP)

Duration of a token: round(base * length_scale) frames (at least 1) of HOP
samples, base in [8, 20] for phones, [3, 5] for blanks, 6 for pauses (sil,
eos, #0: silent); so the output length is close to inversely proportional to
`speed`. Output is deterministic (the "noise" is a fixed hash of the sample
index), finite, and peaks near 0.2. The base pitch is 180 Hz for one speaker;
with --speakers N, sid k gets 110 + 130 k/(N-1) Hz.

Rebuilding gives byte-identical files (seeded weights, fixed export).
NOTE: crates/sis-engine/src/pack.rs does not know kind = "tts" yet, and the
router/config tests discover every pack under testdata/models: write the pack
there only together with the Rust change that accepts it.

The lexicon covers a built-in list of common characters plus every hanzi in
tools/train/corpus.py (which holds every character of the held-out texts),
one reading per character (pypinyin's most common one), as an initial and a
toned final (`你 n i3`).
"""

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from pypinyin import Style, lazy_pinyin
from torch import nn

ROOT = Path(__file__).resolve().parents[2]

SAMPLE_RATE = 16000
HOP = 128  # samples per frame (8 ms at 16 kHz)
SEED = 20261128
OPSET = 17

# tokens.txt: id 0 is the blank sherpa-onnx interleaves (add_blank=1 always
# uses id 0); "sil"/"eos" make sherpa-onnx's Chinese lexicon frontend put
# sil at both ends of a sentence and eos after it; punctuation becomes "#0"
# (the "pad" token) because the punctuation itself is not a token.
BLANK = "_"
SPECIALS = [BLANK, "sil", "eos", "#0"]
SILENT = {"sil", "eos", "#0"}

# Punctuation in the model metadata: sherpa-onnx's Chinese frontend emits a
# pause token only for punctuation listed here (and splits sentences at
# . ; ! ? - : 。 ； ！ ？ ： ” whether listed or not).
PUNCTUATION = ", . ! ? ; : - “ ” ， 。 ！ ？ ； ： 、"

# Common characters (frequency-ordered list written for this pack), plus the
# characters of the test sentences used in tools/tts_testpack.
COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可"
    "主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家"
    "电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合"
    "还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明"
    "看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想"
    "已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边"
    "流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战"
    "先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶"
    "油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例"
    "真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
    "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际"
    "商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何"
    "除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派"
    "层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞"
    "您请谢吗呢吧啊哦嗯喂零幺块钱角分秒号星期周末早晚午昨今明后"
    "你好世界零一二三四五六七八九十百千万亿点元"
)

# Substrings of the `comment` metadata that switch sherpa-onnx to another
# VITS flavour (offline-tts-vits-model.cc): the comment must contain none.
COMMENT_FLAVOURS = ("piper", "coqui", "icefall", "melo", "Inflect")


def hanzi(text):
    return [c for c in text if "\u4e00" <= c <= "\u9fff"]


def character_set(extra_files):
    seen = {}
    for c in hanzi(COMMON):
        seen.setdefault(c, None)
    for f in extra_files:
        for c in hanzi(Path(f).read_text(encoding="utf-8")):
            seen.setdefault(c, None)
    return list(seen)


def phones_of(ch):
    """The character's usual reading as (initial, toned final)."""
    initial = lazy_pinyin(ch, style=Style.INITIALS, strict=False)[0]
    final = lazy_pinyin(ch, style=Style.FINALS_TONE3, strict=False, neutral_tone_with_five=True)[0]
    whole = lazy_pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True)[0]
    if not whole or not whole[-1].isdigit():
        return None  # no reading known
    if not final:
        return [whole]  # e.g. 嗯 n2: a syllable without initial/final split
    return [initial, final] if initial else [final]


def build_lexicon(chars):
    lexicon = []
    for c in chars:
        p = phones_of(c)
        if p is None or any((not t) or any(s.isspace() for s in t) for t in p):
            print(f"skip {c}: no reading", file=sys.stderr)
            continue
        lexicon.append((c, p))
    phones = sorted({t for _, p in lexicon for t in p})
    tokens = SPECIALS + [t for t in phones if t not in SPECIALS]
    return lexicon, tokens


class TinyVits(nn.Module):
    """VITS-shaped: text encoder, duration predictor, length regulator,
    frame decoder, harmonic waveform generator. Random weights."""

    def __init__(self, vocab, n_speakers, silent_ids, blank_id, harmonics=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.enc1 = nn.Conv1d(16, 32, 3, padding=1)
        self.enc2 = nn.Conv1d(32, 32, 3, padding=1)
        self.dur = nn.Conv1d(32, 1, 1)
        self.wobble = nn.Conv1d(32, 1, 1)
        self.dec1 = nn.Conv1d(32 + 1, 32, 5, padding=2)
        self.dec2 = nn.Conv1d(32, 2 + harmonics, 3, padding=1)
        self.harmonics = harmonics
        silent = torch.zeros(vocab)
        silent[list(silent_ids)] = 1.0
        self.register_buffer("silent", silent)
        blank = torch.zeros(vocab)
        blank[blank_id] = 1.0
        self.register_buffer("blank", blank)
        n = max(1, n_speakers)
        # base pitch per speaker: 110 Hz .. 240 Hz
        self.register_buffer("spk_f0", torch.linspace(110.0, 240.0, n) if n > 1 else torch.tensor([180.0]))
        self.n_speakers = n
        # fixed smoothing of the loudness across frame edges (Hann window)
        win = torch.hann_window(2 * HOP + 1, periodic=False)
        self.register_buffer("smooth", (win / win.sum()).view(1, 1, -1))

    def forward(self, x, x_length, noise_scale, length_scale, noise_scale_w, sid):
        tok = x[0]  # (L,)
        L = tok.shape[0]
        h = self.emb(tok).t().unsqueeze(0)  # (1, 16, L)
        h = torch.tanh(self.enc1(h))
        h = torch.tanh(self.enc2(h))  # (1, 32, L)

        pos = torch.arange(L, device=x.device)
        valid = (pos < x_length[0]).to(torch.float32)
        silent = self.silent[tok]
        blank = self.blank[tok]
        phone = (1.0 - silent) * (1.0 - blank)
        g = torch.sigmoid(self.dur(h)[0, 0])
        # phones: 8..20 frames, blanks 3..5, pauses 6 (before length_scale)
        base = phone * (8.0 + 12.0 * g) + blank * (3.0 + 2.0 * g) + silent * 6.0
        wob = 1.0 + 0.1 * noise_scale_w[0] * torch.tanh(self.wobble(h)[0, 0])
        # rounded (not VITS's ceil) so the total stays close to proportional
        # to length_scale; at least one frame per token
        d = torch.floor(base * wob * length_scale[0] + 0.5)
        d = torch.clamp(d, min=1.0) * valid  # (L,), frames per token
        d_int = d.to(torch.int64)

        # length regulation without data-dependent Python: mark each token's
        # first frame, then a running count names the token of every frame
        total = d_int.sum()
        end = torch.cumsum(d_int, 0)
        start = end - d_int
        frames = torch.arange(total + 1, device=x.device)
        marks = torch.zeros_like(frames).scatter_add(0, start, (d_int > 0).to(torch.int64))
        idx = torch.cumsum(marks, 0)[:-1] - 1  # (T,)
        idx = torch.clamp(idx, min=0)

        hf = h[0].index_select(1, idx)  # (32, T)
        t = frames[:-1].to(torch.float32)
        ramp = (t - start.index_select(0, idx).to(torch.float32)) / d.index_select(0, idx)
        z = torch.cat([hf, ramp.unsqueeze(0)], 0).unsqueeze(0)  # (1, 33, T)
        z = torch.tanh(self.dec1(z))
        z = self.dec2(z)[0]  # (2 + H, T)

        s = torch.clamp(sid, min=0, max=self.n_speakers - 1)
        f0 = self.spk_f0.index_select(0, s) * torch.pow(2.0, 0.25 * torch.tanh(z[0]))  # (T,) Hz
        amp = (0.12 + 0.25 * torch.sigmoid(z[1])) * (1.0 - silent.index_select(0, idx))
        weights = torch.softmax(z[2:], 0)  # (H, T)

        # sample level: phase runs continuously across frames, wrapped per frame
        w = 2.0 * torch.pi * f0 / SAMPLE_RATE  # rad / sample
        step = w * HOP
        # accumulated in float64: a float32 running sum over a long text loses
        # about 1e-3 rad and runtimes would disagree
        step64 = step.to(torch.float64)
        phase0 = torch.remainder(torch.cumsum(step64, 0) - step64, 2.0 * torch.pi)
        phase0 = phase0.to(torch.float32)  # (T,)
        k = torch.arange(HOP, device=x.device).to(torch.float32)
        phase = phase0.unsqueeze(1) + w.unsqueeze(1) * k.unsqueeze(0)  # (T, HOP)
        mult = torch.arange(1, self.harmonics + 1, device=x.device).to(torch.float32)
        harm = torch.sin(phase.unsqueeze(0) * mult.view(-1, 1, 1))  # (H, T, HOP)
        voiced = (harm * weights.unsqueeze(2)).sum(0)  # (T, HOP)

        # "noise": a linear congruential hash of the sample index, in exact
        # int64 arithmetic so every runtime computes the same values
        n = frames[:-1].unsqueeze(1) * HOP + torch.arange(HOP, device=x.device).unsqueeze(0)
        n = n * 1103515245 + 12345
        n = n - torch.div(n, 2147483648, rounding_mode="floor") * 2147483648
        noise = n.to(torch.float32) / 1073741824.0 - 1.0  # (T, HOP) in [-1, 1)
        sig = voiced + 0.05 * noise_scale[0] * noise

        a = amp.unsqueeze(1).expand(-1, HOP).reshape(1, 1, -1)
        a = nn.functional.conv1d(a, self.smooth, padding=HOP)
        y = sig.reshape(1, 1, -1) * a
        return y


def export(model, path):
    x = torch.tensor([[1, 0, 7, 0, 9, 0, 3, 0, 2]], dtype=torch.int64)
    args = (
        x,
        torch.tensor([x.shape[1]], dtype=torch.int64),
        torch.tensor([0.667]),
        torch.tensor([1.0]),
        torch.tensor([0.8]),
        torch.tensor([0], dtype=torch.int64),
    )
    torch.onnx.export(
        model,
        args,
        path,
        dynamo=False,
        opset_version=OPSET,
        input_names=["x", "x_length", "noise_scale", "length_scale", "noise_scale_w", "sid"],
        output_names=["y"],
        dynamic_axes={"x": {1: "L"}, "y": {2: "T"}},
        do_constant_folding=True,
    )


def add_metadata(path, meta):
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    m.producer_name = "sisd tools/tts_testpack"
    m.doc_string = ""
    onnx.checker.check_model(m)
    onnx.save(m, path)


def check_against_torch(model, path, n_tokens):
    """The ONNX graph must follow the eager model for other lengths/scales."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for L, ls, sid in [(1, 1.0, 0), (7, 0.5, 0), (41, 2.0, 3), (301, 1.0, -2)]:
        x = torch.randint(0, n_tokens, (1, L), generator=g)
        feeds = {
            "x": x.numpy(),
            "x_length": np.array([L], dtype=np.int64),
            "noise_scale": np.array([0.667], dtype=np.float32),
            "length_scale": np.array([ls], dtype=np.float32),
            "noise_scale_w": np.array([0.8], dtype=np.float32),
            "sid": np.array([sid], dtype=np.int64),
        }
        (y,) = sess.run(["y"], feeds)
        with torch.no_grad():
            ref = model(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
        assert y.shape == ref.shape, (y.shape, ref.shape)
        assert y.shape[0] == 1 and y.shape[1] == 1 and y.shape[2] % HOP == 0
        assert np.isfinite(y).all()
        assert np.abs(y - ref).max() < 1e-3, np.abs(y - ref).max()


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_pack_toml(out, name, n_speakers, files):
    """The pack's manifest (docs/PACKS.md, kind "tts"): two SIS voices no
    other test uses, read by speakers 0 and 1 (0 and 0 with one speaker)."""
    second = min(1, n_speakers - 1)
    lines = [
        f'name = "{name}"',
        'kind = "tts"',
        'model_type = "vits"',
        'language = "zh"',
        f"sample_rate = {SAMPLE_RATE}",
        'description = "Untrained tiny VITS-shaped network: a harmonic tone per pinyin phone, not speech"',
        "# Exercises the TTS load and synthesis path only: the server warns when it serves it.",
        "test_only = true",
        "",
        "# The SIS voices it reads, with the speaker id of each; every id must be",
        f"# below the model's n_speakers metadata ({n_speakers}).",
        "[speakers]",
        "chinese_huaxiaomei_common = 0",
        f"chinese_huaxiaolong_common = {second}",
        "",
    ]
    for path, role in files:
        lines += [
            "[[files]]",
            f'path = "{path}"',
            f'sha256 = "{sha256(out / path)}"',
            f'role = "{role}"',
            "",
        ]
    (out / "pack.toml").write_text("\n".join(lines), encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="pack directory to write")
    ap.add_argument("--speakers", type=int, default=1, help="n_speakers metadata (default 1)")
    ap.add_argument(
        "--text",
        action="append",
        default=None,
        help="file whose hanzi the lexicon must cover (repeatable; default tools/train/corpus.py)",
    )
    ap.add_argument(
        "--check-covers",
        action="append",
        default=None,
        help="TSV whose 3rd column must be covered (default target/heldout/manifest.tsv if present)",
    )
    args = ap.parse_args()
    if args.speakers < 1:
        ap.error("--speakers must be >= 1")

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    texts = args.text if args.text is not None else [ROOT / "tools/train/corpus.py"]
    chars = character_set(texts)
    lexicon, tokens = build_lexicon(chars)
    covered = {c for c, _ in lexicon}

    covers = args.check_covers
    if covers is None:
        covers = [p for p in [ROOT / "target/heldout/manifest.tsv"] if p.exists()]
    for f in covers:
        rows = Path(f).read_text(encoding="utf-8").splitlines()[1:]
        need = {c for r in rows if r.strip() for c in hanzi(r.split("\t")[2])}
        missing = sorted(need - covered)
        if missing:
            sys.exit(f"{f}: the lexicon lacks {''.join(missing)}")
        print(f"{f}: all {len(need)} characters covered")

    token_id = {t: i for i, t in enumerate(tokens)}
    comment = "sisd test pack: untrained tiny VITS-shaped network, not speech"
    assert not any(s in comment for s in COMMENT_FLAVOURS)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokens.txt").write_text("".join(f"{t} {i}\n" for t, i in token_id.items()), encoding="utf-8")
    (out / "lexicon.txt").write_text(
        "".join(f"{c} {' '.join(p)}\n" for c, p in lexicon), encoding="utf-8"
    )

    model = TinyVits(
        len(tokens),
        args.speakers,
        silent_ids=[token_id[t] for t in SILENT],
        blank_id=token_id[BLANK],
    ).eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "model.onnx")
        with torch.no_grad():
            export(model, raw)
        meta = {
            # read by sherpa-onnx (offline-tts-vits-model.cc); these five end
            # the process when missing: sample_rate, n_speakers, language,
            # comment (and a key given but empty or negative)
            "model_type": "vits",
            "comment": comment,
            "language": "Chinese",
            "sample_rate": SAMPLE_RATE,
            "add_blank": 1,
            "n_speakers": args.speakers,
            "punctuation": PUNCTUATION,
            # informational
            "hop_length": HOP,
            "test_only": 1,
            "num_tokens": len(tokens),
            "url": "tools/tts_testpack/make_vits_testpack.py",
        }
        add_metadata(raw, meta)
        check_against_torch(model, raw, len(tokens))
        (out / "model.onnx").write_bytes(Path(raw).read_bytes())

    write_pack_toml(
        out,
        out.resolve().name,
        args.speakers,
        [("model.onnx", "model"), ("tokens.txt", "tokens"), ("lexicon.txt", "lexicon")],
    )
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{out}: {len(lexicon)} lexicon entries, {len(tokens)} tokens, {size} bytes")
    for p in sorted(out.iterdir()):
        print(f"  {p.name} {p.stat().st_size} {sha256(p)}")


if __name__ == "__main__":
    main()
