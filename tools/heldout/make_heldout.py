"""Held-out synthetic test set, made by a pipeline the models never trained on.

espeak-ng (voices, speeds and pitches absent from training) -> ffmpeg's
libswresample straight to 16 kHz and to 8 kHz (training used SoX, scipy
polyphase and linear interpolation), 0.4 s of digital silence each side.
Number texts are new (none is in the training set); sentences are the
training sentences read by unseen voices.

Usage: python3 make_heldout.py OUT_DIR [--numbers N] [--sentences N]
Writes OUT_DIR/{16k,8k}/ID.wav and OUT_DIR/manifest.tsv (id, kind, text, voice).
Needs only the Python standard library, espeak-ng and ffmpeg.
"""

import argparse
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import corpus  # noqa: E402

TRAIN_SEED = 20261120  # make_data.py's default: its number texts are excluded
HELDOUT_VOICES = ["f3", "m2", "m7", "f5"]
HELDOUT_SPEEDS = [148, 178]
HELDOUT_PITCHES = [40, 68]


def synth(job):
    out, uid, text, voice, speed, pitch = job
    raw = subprocess.run(
        ["espeak-ng", "-v", f"cmn-Latn-pinyin+{voice}", "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    for rate, sub in ((16000, "16k"), (8000, "8k")):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "wav", "-i", "-",
             "-af", "adelay=400:all=1,apad=pad_dur=0.4", "-ar", str(rate), "-ac", "1",
             "-c:a", "pcm_s16le", os.path.join(out, sub, f"{uid}.wav")],
            input=raw, check=True, capture_output=True,
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--numbers", type=int, default=150)
    p.add_argument("--sentences", type=int, default=150)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()
    rng = random.Random(args.seed)
    train_numbers = set(corpus.number_texts(TRAIN_SEED, 4000))
    numbers = []
    for t in corpus.number_texts(args.seed, args.numbers * 4):
        if t not in train_numbers and t not in numbers:
            numbers.append(t)
        if len(numbers) == args.numbers:
            break
    sentences = rng.sample(corpus.sentences(), args.sentences)
    for sub in ("16k", "8k"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    jobs, rows = [], []
    for kind, texts in (("number", numbers), ("sentence", sentences)):
        for i, text in enumerate(texts):
            uid = f"{kind[0]}{i:03d}"
            voice = rng.choice(HELDOUT_VOICES)
            speed, pitch = rng.choice(HELDOUT_SPEEDS), rng.choice(HELDOUT_PITCHES)
            jobs.append((args.out, uid, text, voice, speed, pitch))
            rows.append(f"{uid}\t{kind}\t{text}\t{voice}/{speed}/{pitch}")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(synth, jobs))
    with open(os.path.join(args.out, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("id\tkind\ttext\tvoice\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} held-out clips in {args.out}")


if __name__ == "__main__":
    main()
