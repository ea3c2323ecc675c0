"""Make the synthetic training and dev sets (features + labels).

Usage: python make_data.py OUT_DIR [--numbers N] [--sentence-reps R] [--jobs J]
Deterministic: every utterance has its own seed.
"""

import argparse
import multiprocessing as mp
import os
import random
import time

import numpy as np

import audio_pipeline as ap
import corpus

# Voice settings. Held-out variants/speeds/pitches never appear in training.
TRAIN_VARIANTS = ["", "f1", "f2", "f4", "m1", "m3", "m4", "m5", "m6", "m8"]
TRAIN_SPEEDS = [120, 130, 140, 155, 165, 185, 195, 210]
TRAIN_PITCHES = [25, 35, 50, 60, 75, 90]
HELDOUT_VARIANTS = ["f3", "m2", "m7", "f5"]
HELDOUT_SPEEDS = [148, 178]
HELDOUT_PITCHES = [40, 68]


def synth_one(job):
    idx, text, variant, speed, pitch, seed, eight_prob, codec_prob, feat_kind = job
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    raw = ap.espeak(text, variant, speed, pitch)
    res = pyrng.choice(list(ap.TRAIN_RESAMPLERS))
    x16 = ap.TRAIN_RESAMPLERS[res](raw, ap.ESPEAK_RATE, 16000)
    # degrade() draws from a numpy Generator; use python's random for choices
    class R:
        def random(self):
            return pyrng.random()

        def uniform(self, a, b):
            return pyrng.uniform(a, b)

        def choice(self, xs):
            return pyrng.choice(xs)

        def standard_normal(self, n):
            return rng.standard_normal(n)

    y, desc = ap.degrade(R(), x16, eight_khz_prob=eight_prob, codec_prob=codec_prob)
    feats = ap.features(y, feat_kind)
    return idx, text, feats.astype(np.float16), len(y) / 16000.0, f"{res},{desc}"


def build_jobs(args):
    rng = random.Random(args.seed)
    jobs = []
    sents = corpus.sentences()
    nums = corpus.number_texts(args.seed, args.numbers)
    items = [("num", t) for t in nums]
    for s in sents:
        items += [("sent", s)] * args.sentence_reps
    for i, (_, t) in enumerate(items):
        jobs.append((i, t, rng.choice(TRAIN_VARIANTS), rng.choice(TRAIN_SPEEDS),
                     rng.choice(TRAIN_PITCHES), args.seed * 1_000_003 + i, 0.35, args.codec_prob, args.features))
    # dev: unseen number strings and sentences, unseen voice settings
    dev_nums = corpus.number_texts(args.seed + 7919, 200)
    train_set = set(nums)
    dev_nums = [t for t in dev_nums if t not in train_set][:60]
    dev_sents = rng.sample(sents, 60)
    dev = []
    for j, t in enumerate(dev_nums + dev_sents):
        dev.append((j, t, rng.choice(HELDOUT_VARIANTS), rng.choice(HELDOUT_SPEEDS),
                    rng.choice(HELDOUT_PITCHES), args.seed * 7_000_003 + j, 0.0, 0.0, args.features))
    return jobs, dev


def save(path, results, vocab):
    tok = {c: i + 1 for i, c in enumerate(vocab)}
    results.sort(key=lambda r: r[0])
    feats = [r[2] for r in results]
    offsets = np.cumsum([0] + [len(f) for f in feats])
    labels = [np.array([tok[c] for c in r[1]], np.int32) for r in results]
    loff = np.cumsum([0] + [len(lb) for lb in labels])
    np.savez(
        path,
        feats=np.concatenate(feats),
        offsets=offsets,
        labels=np.concatenate(labels),
        label_offsets=loff,
        texts=np.array([r[1] for r in results]),
        desc=np.array([r[4] for r in results]),
    )
    return sum(r[3] for r in results)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--numbers", type=int, default=4000)
    p.add_argument("--sentence-reps", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=20261120)
    p.add_argument("--codec-prob", type=float, default=0.0,
                   help="share of utterances through a lossy codec (AMR-NB in the 8 kHz branch; AMR-WB or MP3 otherwise)")
    p.add_argument("--features", choices=sorted(ap.FEATURES), default="nemo",
                   help="nemo: the CTC packs' features; kaldi: sherpa-onnx's default fbank (transducers)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    vocab = corpus.vocabulary()
    with open(os.path.join(args.out, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("<blk> 0\n")
        for i, c in enumerate(vocab):
            f.write(f"{c} {i + 1}\n")
    jobs, dev = build_jobs(args)
    t0 = time.time()
    with mp.Pool(args.jobs) as pool:
        train = pool.map(synth_one, jobs, chunksize=32)
        devr = pool.map(synth_one, dev, chunksize=8)
    hours = save(os.path.join(args.out, "train.npz"), train, vocab) / 3600
    save(os.path.join(args.out, "dev.npz"), devr, vocab)
    print(f"{len(train)} training utterances, {hours:.2f} h; {len(devr)} dev; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
