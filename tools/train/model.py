"""A tiny causal CTC network for the test packs.

Conv subsampling x4 (two stride-2 convolutions without padding), then blocks of
causal depthwise convolution + feed-forward. The only state a stream needs is
the last K-1 inputs of every depthwise convolution, so the same weights export
as an offline model (whole utterance) and a streaming one (67-frame windows
shifted by 64, the same outputs bit for bit).
"""

import torch
import torch.nn.functional as F
from torch import nn

WINDOW = 67  # feature frames per streaming call
SHIFT = 64  # frames the window advances; 16 output frames per call
RIGHT_PAD = 3  # replicate frames appended offline so that outputs = T // 4


class Block(nn.Module):
    def __init__(self, d, k, ffn):
        super().__init__()
        self.k = k
        self.ln1 = nn.LayerNorm(d)
        self.dw = nn.Conv1d(d, d, k, groups=d)
        self.pw = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ffn)
        self.ff2 = nn.Linear(ffn, d)

    def forward(self, x, cache=None):
        """x: (B, T, d). cache: (B, d, k-1) or None (zeros). Returns x, new cache."""
        y = self.ln1(x)
        yt = y.transpose(1, 2)
        if cache is None:
            ext = F.pad(yt, (self.k - 1, 0))
        else:
            ext = torch.cat([cache, yt], dim=2)
        new_cache = ext[:, :, -(self.k - 1):]
        z = self.dw(ext).transpose(1, 2)
        x = x + self.pw(F.gelu(z))
        x = x + self.ff2(F.gelu(self.ff1(self.ln2(x))))
        return x, new_cache


class TinyCtc(nn.Module):
    def __init__(self, vocab, d=192, blocks=6, k=8, ffn=384, feat=80):
        super().__init__()
        self.d, self.nblocks, self.k = d, blocks, k
        self.register_buffer("mean", torch.zeros(feat))
        self.register_buffer("istd", torch.ones(feat))
        self.sub1 = nn.Conv1d(feat, d, 3, stride=2)
        self.sub2 = nn.Conv1d(d, d, 3, stride=2)
        self.blocks = nn.ModuleList([Block(d, k, ffn) for _ in range(blocks)])
        self.ln = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab)

    def encode(self, feats_bct, caches=None):
        """feats (B, 80, T) -> log-probs (B, T', V), new caches (B, blocks, d, k-1)."""
        x = (feats_bct - self.mean[None, :, None]) * self.istd[None, :, None]
        x = F.gelu(self.sub1(x))
        x = F.gelu(self.sub2(x)).transpose(1, 2)
        new = []
        for i, b in enumerate(self.blocks):
            x, c = b(x, None if caches is None else caches[:, i])
            new.append(c)
        logits = self.out(self.ln(x))
        return F.log_softmax(logits, dim=-1), torch.stack(new, dim=1)

    @staticmethod
    def out_frames(t):
        return ((t - 1) // 2 - 1) // 2


class OfflineExport(nn.Module):
    """Offline nemo_ctc: (N, 80, T), lengths (N) -> log-probs (N, T//4, V), lengths."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, audio_signal, length):
        x = torch.cat([audio_signal, audio_signal[:, :, -1:].expand(-1, -1, RIGHT_PAD)], dim=2)
        logp, _ = self.net.encode(x)
        return logp, torch.div(length, 4, rounding_mode="floor")


class OnlineExport(nn.Module):
    """Online nemo_ctc: window (B, 80, 67) + NeMo-named states -> 16 frames + states."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, audio_signal, length, cache_last_channel, cache_last_time, cache_last_channel_len):
        logp, new_time = self.net.encode(audio_signal, cache_last_time)
        # cache_last_channel is not used by this network, but it must be consumed
        # or the exporter drops the input and shifts the positional order.
        return (
            logp,
            torch.div(length, 4, rounding_mode="floor"),
            cache_last_channel * 1.0,
            new_time,
            cache_last_channel_len + logp.shape[1],
        )
