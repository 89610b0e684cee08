"""Restormer (Zamir et al., CVPR 2022), in plain torch, with the reference's default configuration.

A four-level U-shaped transformer. Its blocks attend across channels, not
pixels (the attention matrix is C x C per head), so memory grows linearly
with the image size. Each block is ``x + attention(norm(x))`` followed by
``x + feed_forward(norm(x))``:

* attention (MDTA): 1x1 conv to q, k, v, then a 3x3 depthwise conv; per
  head, q and k are L2-normalised over the pixels, the C x C matrix
  ``softmax(q k^T * temperature)`` (a learned temperature per head) mixes
  the channels of v; 1x1 projection.
* feed-forward (GDFN): 1x1 conv to two branches of ``int(dim * 2.66)``
  channels, a 3x3 depthwise conv, ``gelu(a) * b``, 1x1 projection back.
* layer norm over the channels of each pixel, with a bias.

Levels: 3x3 conv 3 -> 48; encoder 4, 6, 6 blocks at 48, 96, 192 channels
(1, 2, 4 heads), 8 blocks at 384 (8 heads) at 1/8 resolution. Downsampling
is a 3x3 conv halving the channels then pixel-unshuffle; upsampling a 3x3 conv
doubling them then pixel-shuffle. The decoder concatenates the skip and
reduces the channels with a 1x1 conv at levels 3 and 2 (6 blocks each), keeps
the 96 channels at level 1 (4 blocks, then 4 refinement blocks); a 3x3 conv
to 3 channels is added to the input. No conv has a bias. 26,126,644 parameters.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch.utils.checkpoint import checkpoint

from .base import crop_to, pad_to_multiple

__all__ = ["Restormer", "LayerNorm2d", "ChannelAttention", "TransformerBlock", "UTransformer", "run_saving_memory"]


def run_saving_memory(module: nn.Module, *args: torch.Tensor, save: bool = True) -> torch.Tensor:
    """``module(*args)``; when training with ``save``, its activations are not kept for the
    backward pass but recomputed then (``torch.utils.checkpoint``): the same gradients for
    about a third more compute, and memory for one module's activations instead of all.
    """
    if save and module.training and torch.is_grad_enabled():
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of a (B, C, H, W) tensor, with weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On (B, H, W, C): one fused op that keeps only its mean and 1/std for the backward
        # pass (no copy when x is channels-last, as in training).
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Multi-head transposed attention (MDTA): a C x C attention map per head."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, 1, 1, groups=3 * dim, bias=False)
        self.project = nn.Conv2d(dim, dim, 1, bias=False)

    def mix(self, scores: torch.Tensor) -> torch.Tensor:
        """Attention weights from the scaled scores (B, heads, c, c)."""
        return scores.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        out = self.mix((q @ k.transpose(-2, -1)) * self.temperature) @ v
        return self.project(out.reshape(b, c, h, w))


class GatedFeedForward(nn.Module):
    """Gated-dconv feed-forward network (GDFN): ``gelu(a) * b`` of two depthwise-conv branches."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dw(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """``x + attention(norm(x))``, then ``x + feed_forward(norm(x))``."""

    def __init__(self, dim: int, attention: nn.Module, feed_forward: nn.Module):
        super().__init__()
        self.norm1, self.attention = LayerNorm2d(dim), attention
        self.norm2, self.feed_forward = LayerNorm2d(dim), feed_forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.feed_forward(self.norm2(x))


# make_block(dim, heads) -> one transformer block
BlockFactory = Callable[[int, int], nn.Module]


class UTransformer(nn.Module):
    """The U-shaped skeleton Restormer and DRSformer share (see the module docstring).

    ``before`` runs on the embedded input before the first encoder level and
    ``refinement`` on the last decoder level's output (``2 * dim`` channels),
    before the output conv. With ``save_memory`` (the default), training
    recomputes each block's activations in the backward pass instead of
    keeping them (:func:`run_saving_memory`). Without it a full 320 x 480 image
    needs about 26 GB for Restormer's saved activations alone (1.6 GB measured
    at 80 x 120, and it grows with the pixels).
    """

    multiple = 8

    def __init__(self, make_block: BlockFactory, dim: int, blocks: Sequence[int], heads: Sequence[int],
                 refinement: nn.Module, before: nn.Module | None = None, in_ch: int = 3,
                 save_memory: bool = True):
        super().__init__()
        self.save_memory = save_memory
        dims = [dim, 2 * dim, 4 * dim, 8 * dim]
        stack = lambda n, d, h: nn.Sequential(*[make_block(d, h) for _ in range(n)])  # noqa: E731
        self.embed = nn.Conv2d(in_ch, dim, 3, 1, 1, bias=False)
        self.before = before if before is not None else nn.Identity()
        self.encoders = nn.ModuleList(stack(n, d, h) for n, d, h in zip(blocks[:3], dims, heads))
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(d, d // 2, 3, 1, 1, bias=False), nn.PixelUnshuffle(2))
                                   for d in dims[:3])
        self.latent = stack(blocks[3], dims[3], heads[3])
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(d, 2 * d, 3, 1, 1, bias=False), nn.PixelShuffle(2))
                                 for d in dims[:0:-1])                       # 8d -> 4d, 4d -> 2d, 2d -> d
        self.reduce = nn.ModuleList([nn.Conv2d(dims[3], dims[2], 1, bias=False),
                                     nn.Conv2d(dims[2], dims[1], 1, bias=False), nn.Identity()])
        self.decoders = nn.ModuleList([stack(blocks[2], dims[2], heads[2]), stack(blocks[1], dims[1], heads[1]),
                                       stack(blocks[0], dims[1], heads[0])])  # level 1 keeps 2 * dim
        self.refinement = refinement
        self.out = nn.Conv2d(dims[1], in_ch, 3, 1, 1, bias=False)

    def _stage(self, stage: nn.Module, f: torch.Tensor) -> torch.Tensor:
        """A stack of blocks, one block at a time; other modules as they are."""
        if not isinstance(stage, nn.Sequential):
            return stage(f)
        for block in stage:
            f = run_saving_memory(block, f, save=self.save_memory)
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.multiple)
        f = self.before(self.embed(x))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            f = self._stage(encoder, f)
            skips.append(f)
            f = down(f)
        f = self._stage(self.latent, f)
        for up, reduce, decoder in zip(self.ups, self.reduce, self.decoders):
            f = self._stage(decoder, reduce(torch.cat([up(f), skips.pop()], dim=1)))
        return crop_to(self.out(self._stage(self.refinement, f)) + x, size)


class Restormer(UTransformer):
    """Restormer with the reference's defaults (26,126,644 parameters; see the module docstring)."""

    def __init__(self, dim: int = 48, blocks: Sequence[int] = (4, 6, 6, 8), refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), expansion: float = 2.66, in_ch: int = 3,
                 save_memory: bool = True):
        def make_block(d: int, h: int) -> nn.Module:
            return TransformerBlock(d, ChannelAttention(d, h), GatedFeedForward(d, expansion))
        refinement = nn.Sequential(*[make_block(2 * dim, heads[0]) for _ in range(refinement_blocks)])
        super().__init__(make_block, dim, blocks, heads, refinement, in_ch=in_ch, save_memory=save_memory)
