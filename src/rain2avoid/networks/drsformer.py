"""DRSformer (Chen et al., CVPR 2023, "Learning a sparse transformer network for effective image
deraining"), in plain torch, with the Rain2Avoid reference's default configuration.

Restormer's U-shaped skeleton (:class:`~rain2avoid.networks.restormer.UTransformer`,
32 channels at full resolution) with three changes:

* top-k sparse attention (TKSA): per head, the C x C scores keep only their
  largest C/2, 2C/3, 3C/4 and 4C/5 entries in each row (the others get no
  weight); the four softmaxes, each applied to v, are summed with four
  learned scalar weights (initialised to 0.2);
* mixed-scale feed-forward (MSFN): 1x1 conv to ``2 * int(dim * 2.66)``
  channels, parallel 3x3 and 5x5 depthwise convs with ReLU; their first
  halves, then their second halves, go through a grouped 3x3 and a grouped
  5x5 conv (two channels per group) with ReLU; 1x1 projection back;
* a mixture-of-experts feature compensator (MEFC) after the input embedding
  and, instead of refinement blocks, after the last decoder level: a small
  fully connected net on the channel means gives, for each of 4 steps,
  softmax weights over 8 operations (separable convs 1, 3, 5, 7; dilated
  separable convs 3, 5, 7 with dilation 2; 3x3 average pooling); each step
  sums the weighted operations (concatenated, 1x1 conv, ReLU) and adds its
  input (ReLU).

No conv has a bias. 15,609,136 parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .restormer import ChannelAttention, TransformerBlock, UTransformer, run_saving_memory

__all__ = ["DRSformer"]


class TopKAttention(ChannelAttention):
    """Top-k sparse attention (TKSA): four sparsity levels mixed by learned weights."""

    fractions = ((1, 2), (2, 3), (3, 4), (4, 5))   # keep floor(C * a / b) scores per row

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.level_weights = nn.Parameter(torch.full((len(self.fractions),), 0.2))

    def mix(self, scores: torch.Tensor) -> torch.Tensor:
        c = scores.shape[-1]
        ranked = scores.detach().sort(dim=-1, descending=True).values
        total = 0
        for weight, (a, b) in zip(self.level_weights, self.fractions):
            k = max(c * a // b, 1)
            kth = ranked[..., k - 1:k]                                   # the k-th largest score of each row
            total = total + weight * scores.masked_fill(scores < kth, float("-inf")).softmax(dim=-1)
        return total


class MixedScaleFeedForward(nn.Module):
    """Mixed-scale feed-forward network (MSFN): 3x3 and 5x5 depthwise branches, crossed."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dw3 = nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1, groups=2 * hidden, bias=False)
        self.dw5 = nn.Conv2d(2 * hidden, 2 * hidden, 5, 1, 2, groups=2 * hidden, bias=False)
        self.group3 = nn.Conv2d(2 * hidden, hidden, 3, 1, 1, groups=hidden, bias=False)
        self.group5 = nn.Conv2d(2 * hidden, hidden, 5, 1, 2, groups=hidden, bias=False)
        self.project_out = nn.Conv2d(2 * hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project_in(x)
        a3, b3 = F.relu(self.dw3(x)).chunk(2, dim=1)
        a5, b5 = F.relu(self.dw5(x)).chunk(2, dim=1)
        a = F.relu(self.group3(torch.cat([a3, a5], dim=1)))
        b = F.relu(self.group5(torch.cat([b3, b5], dim=1)))
        return self.project_out(torch.cat([a, b], dim=1))


def _separable(c: int, k: int, dilation: int = 1, twice: bool = False) -> nn.Sequential:
    """Depthwise k x k (dilated) conv + 1x1 conv; ``twice``: again after a ReLU."""
    pad = dilation * (k // 2)
    once = [nn.Conv2d(c, c, k, 1, pad, dilation, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False)]
    if not twice:
        return nn.Sequential(*once)
    return nn.Sequential(*once, nn.ReLU(), nn.Conv2d(c, c, k, 1, pad, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False))


def _operations(c: int) -> nn.ModuleList:
    """The 8 candidate operations of one MEFC step."""
    ops = [_separable(c, k, twice=True) for k in (1, 3, 5, 7)]
    ops += [_separable(c, k, dilation=2) for k in (3, 5, 7)]
    ops.append(nn.AvgPool2d(3, 1, 1, count_include_pad=False))
    return nn.ModuleList(ops)


class _CompensatorStep(nn.Module):
    """One MEFC step: the weighted operations, concatenated, 1x1 conv + ReLU, plus the input, ReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.ops = _operations(c)
        self.fuse = nn.Sequential(nn.Conv2d(len(self.ops) * c, c, 1, bias=False), nn.ReLU())

    def forward(self, f: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mixed = [op(f) * weights[:, j, None, None, None] for j, op in enumerate(self.ops)]
        return F.relu(self.fuse(torch.cat(mixed, dim=1)) + f)


class FeatureCompensator(nn.Module):
    """Mixture-of-experts feature compensator (MEFC): ``steps`` residual steps, each a
    softmax-weighted sum of 8 operations, the weights predicted from the input's channel means."""

    def __init__(self, c: int, steps: int = 4, save_memory: bool = True):
        super().__init__()
        self.save_memory = save_memory
        self.steps = nn.ModuleList(_CompensatorStep(c) for _ in range(steps))
        n = steps * len(self.steps[0].ops)
        self.gate = nn.Sequential(nn.Linear(c, 2 * n), nn.ReLU(), nn.Linear(2 * n, n))
        self.pre = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(x.mean(dim=(2, 3))).reshape(x.shape[0], len(self.steps), -1).softmax(dim=-1)
        f = self.pre(x)
        for i, step in enumerate(self.steps):
            f = run_saving_memory(step, f, weights[:, i], save=self.save_memory)
        return f


class DRSformer(UTransformer):
    """DRSformer with the reference's defaults (15,609,136 parameters; see the module docstring)."""

    def __init__(self, dim: int = 32, blocks: Sequence[int] = (4, 6, 6, 8), heads: Sequence[int] = (1, 2, 4, 8),
                 expansion: float = 2.66, in_ch: int = 3, save_memory: bool = True):
        def make_block(d: int, h: int) -> nn.Module:
            return TransformerBlock(d, TopKAttention(d, h), MixedScaleFeedForward(d, expansion))
        super().__init__(make_block, dim, blocks, heads, FeatureCompensator(2 * dim, save_memory=save_memory),
                         before=FeatureCompensator(dim, save_memory=save_memory), in_ch=in_ch,
                         save_memory=save_memory)
