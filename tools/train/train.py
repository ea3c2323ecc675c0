"""Train the tiny causal CTC model on features from make_data.py.

Usage: python train.py DATA_DIR OUT_CKPT [--budget-s S] [--threads N]
The learning rate follows a cosine to the end of a wall-clock budget, so the
run fits the machine; seeds are fixed.
"""

import argparse
import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

import corpus
from model import RIGHT_PAD, TinyCtc

SENTENCES = set(corpus.sentences())

PAD_VALUE = -15.9424  # log(FLT_EPSILON): what the features of digital silence are


def load(path):
    d = np.load(path)
    feats, off = d["feats"], d["offsets"]
    labels, loff = d["labels"], d["label_offsets"]
    utts = []
    for i in range(len(off) - 1):
        utts.append((feats[off[i]:off[i + 1]], labels[loff[i]:loff[i + 1]], str(d["texts"][i])))
    return utts


def batches(utts, max_frames, rng):
    order = sorted(range(len(utts)), key=lambda i: len(utts[i][0]) + rng.random() * 40)
    out, cur, longest = [], [], 0
    for i in order:
        t = len(utts[i][0]) + RIGHT_PAD
        if cur and max(longest, t) * (len(cur) + 1) > max_frames:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, t)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(utts, idx, spec_aug, rng):
    xs = []
    for i in idx:
        f = utts[i][0].astype(np.float32)
        f = np.concatenate([f, np.repeat(f[-1:], RIGHT_PAD, axis=0)])
        if spec_aug:
            f = f.copy()
            for _ in range(2):
                w = rng.randint(0, 10)
                s = rng.randint(0, 80 - w)
                f[:, s:s + w] = f.mean()
            for _ in range(max(1, len(f) // 150)):
                w = rng.randint(0, 12)
                s = rng.randint(0, max(1, len(f) - w))
                f[s:s + w] = f.mean()
        xs.append(f)
    tmax = max(len(x) for x in xs)
    batch = np.full((len(xs), tmax, 80), PAD_VALUE, np.float32)
    for j, x in enumerate(xs):
        batch[j, :len(x)] = x
    lens = torch.tensor([TinyCtc.out_frames(len(x)) for x in xs])
    ys = [torch.from_numpy(utts[i][1].astype(np.int64)) for i in idx]
    return torch.from_numpy(batch).transpose(1, 2), lens, ys


def greedy(logp, n):
    ids = logp[:n].argmax(-1).tolist()
    out, prev = [], 0
    for t in ids:
        if t != 0 and t != prev:
            out.append(t)
        prev = t
    return out


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(b)]


def evaluate(net, dev):
    net.eval()
    errs = {"num": [0, 0], "sent": [0, 0]}
    with torch.no_grad():
        for k in range(0, len(dev), 32):
            idx = list(range(k, min(k + 32, len(dev))))
            x, lens, ys = collate(dev, idx, False, None)
            logp, _ = net.encode(x)
            for j, i in enumerate(idx):
                hyp = greedy(logp[j], int(lens[j]))
                ref = ys[j].tolist()
                kind = "sent" if dev[i][2] in SENTENCES else "num"
                errs[kind][0] += edit_distance(hyp, ref)
                errs[kind][1] += len(ref)
    net.train()
    return {k: 100.0 * e / max(1, n) for k, (e, n) in errs.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--budget-s", type=float, default=1500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=24000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--d", type=int, default=192)
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--init", help="checkpoint to continue from (fine-tuning stage)")
    p.add_argument("--warmup", type=int, default=200)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(args.threads)
    vocab = sum(1 for _ in open(f"{args.data}/tokens.txt", encoding="utf-8"))
    train = load(f"{args.data}/train.npz")
    dev = load(f"{args.data}/dev.npz")

    net = TinyCtc(vocab, d=args.d, blocks=args.blocks)
    if args.init:
        net.load_state_dict(torch.load(args.init)["state"])
    else:
        allf = np.concatenate([u[0][::4] for u in train]).astype(np.float32)
        net.mean.copy_(torch.from_numpy(allf.mean(0)))
        net.istd.copy_(torch.from_numpy(1.0 / (allf.std(0) + 1e-5)))
    print(f"params {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M, vocab {vocab}, "
          f"{len(train)} utterances", flush=True)

    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-2)
    warmup = args.warmup
    t0 = time.time()
    step, epoch, done = 0, 0, False
    while not done:
        epoch += 1
        for idx in batches(train, args.max_frames, rng):
            elapsed = time.time() - t0
            if elapsed > args.budget_s:
                done = True
                break
            frac = elapsed / args.budget_s
            lr = args.lr * min(1.0, (step + 1) / warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x, lens, ys = collate(train, idx, True, rng)
            logp, _ = net.encode(x)
            loss = F.ctc_loss(
                logp.transpose(0, 1), torch.cat(ys), lens, torch.tensor([len(y) for y in ys]),
                blank=0, zero_infinity=True,
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            if step % 100 == 0:
                cer = evaluate(net, dev)
                print(f"epoch {epoch} step {step} t {elapsed:.0f}s lr {lr:.2e} loss {loss.item():.3f} "
                      f"dev CER numbers {cer['num']:.2f}% sentences {cer['sent']:.2f}%", flush=True)
    cer = evaluate(net, dev)
    print(f"final: {step} steps, {epoch} epochs, {time.time() - t0:.0f}s; dev CER numbers "
          f"{cer['num']:.2f}% sentences {cer['sent']:.2f}%", flush=True)
    torch.save({"state": net.state_dict(), "vocab": vocab, "d": args.d, "blocks": args.blocks}, args.out)


if __name__ == "__main__":
    main()
