"""A tiny transducer for the hot-word test packs, and its RNN-T loss.

Encoder: the CTC model's conv subsampling x4 (two stride-2 convolutions
without padding, so a window of 4n+3 feature frames gives exactly n output
frames) and causal depthwise-conv blocks (they learn fast: a pure 2-layer
LSTM encoder was still at 86 % dev CER after 520 steps), then one
unidirectional LSTM layer as a residual layer, and a projection to the
joiner dimension. Its
state fits the two tensors of sherpa-onnx's streaming `lstm` transducer
(h, and c with the convolution caches appended), so the same weights export
as that (windows of T = 4n+3 frames shifted by 4n, h and c carried) and as
an offline transducer (the whole utterance at once), with the same outputs.

Decoder: icefall's stateless decoder (embedding, a grouped convolution over
the last `context_size` = 2 tokens, ReLU, projection). sherpa-onnx starts
every hypothesis with the context [-1, 0] (blank is 0): the embedding of a
negative id is zero, as in icefall.

Joiner: tanh(encoder_out + decoder_out), then a linear layer to the
vocabulary (both inputs are already projected to the joiner dimension).

The loss is plain PyTorch (no torchaudio or k2): log-softmax over the full
(T, U+1, V) lattice, then the forward variable row by row, each row one
logcumsumexp.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model import Block

CHUNK = 32  # decode_chunk_len: feature frames a streaming call advances (8 encoder frames)
WINDOW = CHUNK + 3  # T: feature frames per streaming call
CONTEXT = 2  # decoder context size


def out_frames(t):
    """Encoder frames for t feature frames (works on ints and tensors)."""
    return ((t - 1) // 2 - 1) // 2


class Encoder(nn.Module):
    """Conv subsampling x4, causal depthwise-conv blocks (the CTC model's,
    model.Block), a residual LSTM layer (x + LSTM(LayerNorm(x))), LayerNorm,
    projection to the joiner.

    Streaming state, in the two tensors of sherpa-onnx's `lstm` contract
    (num_encoder_layers = 1): h = the LSTM's h (1, N, hidden); c = the
    LSTM's c followed by every block's convolution cache, flattened
    (1, N, hidden + blocks * d * (k - 1)).
    """

    def __init__(self, feat=80, d=160, blocks=4, k=8, ffn=320, hidden=160, joiner=160):
        super().__init__()
        self.d, self.nblocks, self.k, self.hidden = d, blocks, k, hidden
        self.register_buffer("mean", torch.zeros(feat))
        self.register_buffer("istd", torch.ones(feat))
        self.sub1 = nn.Conv1d(feat, d, 3, stride=2)
        self.sub2 = nn.Conv1d(d, d, 3, stride=2)
        self.blocks = nn.ModuleList([Block(d, k, ffn) for _ in range(blocks)])
        assert hidden == d, "the LSTM is a residual layer"
        self.ln_lstm = nn.LayerNorm(d)
        self.lstm = nn.LSTM(d, hidden, num_layers=1, batch_first=True)
        self.ln = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, joiner)

    @property
    def state_size(self):
        """Last axis of the streaming c tensor."""
        return self.hidden + self.nblocks * self.d * (self.k - 1)

    def forward(self, x, h=None, c=None):
        """x (N, T, 80) features; h (1, N, hidden) and c (1, N, state_size),
        or None (zeros). Returns encoder_out (N, T', joiner), the LSTM output
        after the LayerNorm (for the auxiliary CTC head), and the next h, c."""
        x = (x - self.mean) * self.istd
        x = F.gelu(self.sub1(x.transpose(1, 2)))
        x = F.gelu(self.sub2(x)).transpose(1, 2)
        conv = None if c is None else c[0, :, self.hidden:].reshape(-1, self.nblocks, self.d, self.k - 1)
        caches = []
        for i, b in enumerate(self.blocks):
            x, cache = b(x, None if conv is None else conv[:, i])
            caches.append(cache)
        # residual: the blocks' output reaches the joiner directly (a plain
        # LSTM on top of them saturated and learned nothing in 300 steps)
        if h is None:
            y, (h, lc) = self.lstm(self.ln_lstm(x))
        else:
            y, (h, lc) = self.lstm(self.ln_lstm(x), (h, c[:, :, :self.hidden].contiguous()))
        c = torch.cat([lc, torch.stack(caches, dim=1).flatten(1).unsqueeze(0)], dim=2)
        y = self.ln(x + y)
        return self.proj(y), y, h, c


class Decoder(nn.Module):
    def __init__(self, vocab, dim=160, joiner=160, context=CONTEXT):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab, dim)
        self.conv = nn.Conv1d(dim, dim, context, groups=dim // 4, bias=False)
        self.proj = nn.Linear(dim, joiner)

    def forward(self, y):
        """y (N, U, ) int64 token ids, left-padded with the history; negative
        ids embed to zero. Returns (N, U - context + 1, joiner)."""
        emb = self.embedding(y.clamp(min=0)) * (y >= 0).unsqueeze(-1).to(torch.float32)
        out = F.relu(self.conv(emb.transpose(1, 2))).transpose(1, 2)
        return self.proj(out)


class Joiner(nn.Module):
    def __init__(self, vocab, joiner=160):
        super().__init__()
        self.out = nn.Linear(joiner, vocab)

    def forward(self, encoder_out, decoder_out):
        return self.out(torch.tanh(encoder_out + decoder_out))


class Transducer(nn.Module):
    def __init__(self, vocab, d=160, blocks=4, hidden=160, joiner=160, decoder_dim=160):
        super().__init__()
        self.vocab = vocab
        self.encoder = Encoder(d=d, blocks=blocks, hidden=hidden, joiner=joiner)
        self.decoder = Decoder(vocab, dim=decoder_dim, joiner=joiner)
        self.joiner = Joiner(vocab, joiner=joiner)
        self.ctc = nn.Linear(hidden, vocab)  # auxiliary loss only; not exported

    def decoder_inputs(self, ys):
        """ys: list of label tensors -> (N, U_max + 1, context) history
        windows, each starting from [-1, .., -1, 0] like sherpa-onnx."""
        n, umax = len(ys), max(len(y) for y in ys)
        hist = torch.full((n, umax + self.decoder.context), -1, dtype=torch.int64)
        hist[:, self.decoder.context - 1] = 0
        for i, y in enumerate(ys):
            hist[i, self.decoder.context:self.decoder.context + len(y)] = y
        return hist

    def loss(self, feats, feat_lens, ys, ctc_weight=0.3):
        dev = feats.device
        enc, hid, _, _ = self.encoder(feats)
        t_lens = out_frames(feat_lens).to(dev)
        dec = self.decoder(self.decoder_inputs(ys).to(dev))  # (N, U+1, J)
        logits = self.joiner(enc.unsqueeze(2), dec.unsqueeze(1))  # (N, T, U+1, V)
        targets = torch.zeros(len(ys), max(len(y) for y in ys), dtype=torch.int64)
        for i, y in enumerate(ys):
            targets[i, :len(y)] = y
        targets = targets.to(dev)
        u_lens = torch.tensor([len(y) for y in ys], device=dev)
        ys = [y.to(dev) for y in ys]
        rnnt = rnnt_loss(logits, targets, t_lens, u_lens).mean()
        if ctc_weight <= 0:
            return rnnt, rnnt
        logp = F.log_softmax(self.ctc(hid), dim=-1)
        ctc = F.ctc_loss(logp.transpose(0, 1), torch.cat(ys), t_lens, u_lens, blank=0,
                         zero_infinity=True, reduction="sum") / len(ys)
        return rnnt + ctc_weight * ctc, rnnt


def rnnt_loss(logits, targets, t_lens, u_lens):
    """Per-utterance RNN-T negative log-likelihood (blank = 0).
    logits (N, T, U+1, V); targets (N, U) int64; t_lens, u_lens (N)."""
    n, t_max, u1, _ = logits.shape
    logp = logits.log_softmax(dim=-1)
    blank = logp[..., 0].double()  # (N, T, U+1)
    emit = torch.gather(logp[:, :, :-1, :], 3, targets[:, None, :, None].expand(n, t_max, u1 - 1, 1))
    emit = emit.squeeze(3).double()  # (N, T, U)
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64, device=logits.device)
    zero_col = torch.zeros(n, 1, dtype=torch.float64, device=logits.device)
    alphas = []
    # row t: alpha[t, u] = cum[u] + logcumsumexp_k(start[k] - cum[k]),
    # start[k] = alpha[t-1, k] + blank[t-1, k] (row 0: 0 at k = 0),
    # cum[u] = sum of emit[t, :u]
    # one cumsum for all rows; unbind (not indexing) so that the backward
    # pass stacks the row gradients once instead of once per row
    cums = torch.cat([zero_col[:, None, :].expand(n, t_max, 1), emit.cumsum(2)], dim=2).unbind(1)
    blanks = blank.unbind(1)
    start = torch.cat([zero_col, neg_inf.expand(n, u1 - 1)], dim=1)
    for t in range(t_max):
        cum = cums[t]
        row = cum + torch.logcumsumexp(start - cum, dim=1)
        alphas.append(row)
        start = row + blanks[t]
    alpha = torch.stack(alphas, dim=1)  # (N, T, U+1)
    idx = torch.arange(n, device=logits.device)
    ll = alpha[idx, t_lens - 1, u_lens] + blank[idx, t_lens - 1, u_lens]
    return -ll.float()


def greedy_decode(model, feats, feat_lens, max_sym=1):
    """Greedy search as sherpa-onnx does it (one symbol per frame at most)."""
    dev = feats.device
    enc, _, _, _ = model.encoder(feats)
    t_lens = out_frames(feat_lens)
    hyps = []
    for i in range(enc.shape[0]):
        hist = [-1] * (CONTEXT - 1) + [0]
        out = []
        dec = model.decoder(torch.tensor([hist[-CONTEXT:]], device=dev))[:, -1]
        for t in range(int(t_lens[i])):
            for _ in range(max_sym):
                k = int(model.joiner(enc[i, t:t + 1], dec).argmax(-1))
                if k == 0:
                    break
                out.append(k)
                hist.append(k)
                dec = model.decoder(torch.tensor([hist[-CONTEXT:]], device=dev))[:, -1]
        hyps.append(out)
    return hyps
