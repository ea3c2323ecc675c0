"""Train the tiny transducer (transducer.py) on features from
`make_data.py --features kaldi`.

Usage: python train_transducer.py DATA_DIR OUT_CKPT [--budget-s S] [--threads N]
RNN-T loss plus an auxiliary CTC loss on the encoder (weight 0.3; the CTC
head is not exported).

Homophone noise (`--homophone-noise P`, default 0.1): each target character
that shares its pinyin and tone (pypinyin) with other tokens is replaced by
one of them with probability P. Real speech models meet every syllable
written many ways, so the spellings they did not choose stay close behind;
a model trained on 357 sentences alone puts them so far behind that they
never enter a 4-path beam, and contextual biasing (hot words) can only
rerank what the beam holds. With the noise the usual spelling still wins
(it is the majority), and the homophones stay within reach of a boost. The learning rate follows a cosine to the end of a
wall-clock budget, so the run fits the machine; seeds are fixed.
"""

import argparse
import math
import random
import time

import numpy as np
import torch

from pypinyin import Style, pinyin

from train import PAD_VALUE, SENTENCES, batches, edit_distance, load
from transducer import Transducer, greedy_decode


def homophone_groups(tokens_txt):
    """token id -> ids of the other tokens read with the same pinyin and tone."""
    by_sound = {}
    for line in open(tokens_txt, encoding="utf-8"):
        tok, tid = line.split()
        if len(tok) == 1 and "\u4e00" <= tok <= "\u9fff":
            by_sound.setdefault(pinyin(tok, style=Style.TONE3)[0][0], []).append(int(tid))
    return {t: [o for o in ids if o != t] for ids in by_sound.values() if len(ids) > 1 for t in ids}


def add_homophone_noise(ys, groups, p, rng):
    out = []
    for y in ys:
        y = y.clone()
        for k, t in enumerate(y.tolist()):
            if t in groups and rng.random() < p:
                y[k] = rng.choice(groups[t])
        out.append(y)
    return out


def collate(utts, idx, spec_aug, rng):
    xs = []
    for i in idx:
        f = utts[i][0].astype(np.float32)
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
    lens = torch.tensor([len(x) for x in xs])
    ys = [torch.from_numpy(utts[i][1].astype(np.int64)) for i in idx]
    return torch.from_numpy(batch), lens, ys


def evaluate(net, dev, device, limit=None):
    net.eval()
    errs = {"num": [0, 0], "sent": [0, 0]}
    items = list(range(len(dev)))[:limit]
    with torch.no_grad():
        for k in range(0, len(items), 32):
            idx = items[k:k + 32]
            x, lens, ys = collate(dev, idx, False, None)
            hyps = greedy_decode(net, x.to(device), lens)
            for j, i in enumerate(idx):
                ref = ys[j].tolist()
                kind = "sent" if dev[i][2] in SENTENCES else "num"
                errs[kind][0] += edit_distance(hyps[j], ref)
                errs[kind][1] += len(ref)
    net.train()
    return {k: 100.0 * e / max(1, n) for k, (e, n) in errs.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--budget-s", type=float, default=3300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=12000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--d", type=int, default=160)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--hidden", type=int, default=160)
    p.add_argument("--joiner", type=int, default=160)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--homophone-noise", type=float, default=0.1,
                   help="probability of writing a target character as one of its homophones")
    p.add_argument("--init", help="checkpoint to continue from")
    p.add_argument("--device", default="cpu", help="cpu (the recipe's), or cuda where there is one")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(args.threads)
    vocab = sum(1 for _ in open(f"{args.data}/tokens.txt", encoding="utf-8"))
    train = load(f"{args.data}/train.npz")
    dev = load(f"{args.data}/dev.npz")
    groups = homophone_groups(f"{args.data}/tokens.txt")
    print(f"{len(groups)} tokens have homophones among the tokens; noise {args.homophone_noise}", flush=True)

    net = Transducer(vocab, d=args.d, blocks=args.blocks, hidden=args.hidden, joiner=args.joiner,
                     decoder_dim=args.joiner)
    if args.init:
        net.load_state_dict(torch.load(args.init)["state"])
    else:
        allf = np.concatenate([u[0][::4] for u in train]).astype(np.float32)
        net.encoder.mean.copy_(torch.from_numpy(allf.mean(0)))
        net.encoder.istd.copy_(torch.from_numpy(1.0 / (allf.std(0) + 1e-5)))
    exported = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("ctc."))
    net.to(args.device)
    print(f"params {exported / 1e6:.2f} M exported, vocab {vocab}, {len(train)} utterances", flush=True)

    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-2)
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
            lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x, lens, ys = collate(train, idx, True, rng)
            ys = add_homophone_noise(ys, groups, args.homophone_noise, rng)
            loss, rnnt = net.loss(x.to(args.device), lens, ys, ctc_weight=args.ctc_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            if step % 20 == 0:
                print(f"epoch {epoch} step {step} t {elapsed:.0f}s lr {lr:.2e} loss {loss.item():.3f} "
                      f"rnnt {rnnt.item():.3f}", flush=True)
            if step % args.eval_every == 0:
                cer = evaluate(net, dev, args.device)
                print(f"  dev CER numbers {cer['num']:.2f}% sentences {cer['sent']:.2f}%", flush=True)
                torch.save(_ckpt(net, args, vocab), args.out)
    cer = evaluate(net, dev, args.device)
    print(f"final: {step} steps, {epoch} epochs, {time.time() - t0:.0f}s; dev CER numbers "
          f"{cer['num']:.2f}% sentences {cer['sent']:.2f}%", flush=True)
    torch.save(_ckpt(net, args, vocab), args.out)


def _ckpt(net, args, vocab):
    return {"state": {k: v.cpu() for k, v in net.state_dict().items()}, "vocab": vocab, "d": args.d, "blocks": args.blocks, "hidden": args.hidden,
            "joiner": args.joiner}


if __name__ == "__main__":
    main()
