"""What every backbone shares: padding to the multiple a network needs, and back."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "crop_to", "conv_bn"]


def pad_to_multiple(x: torch.Tensor, m: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) at the bottom/right so H and W are multiples of ``m``.

    Uses reflect padding, or replicate padding when the image is too small to
    reflect (reflect needs the pad to be smaller than the dimension).
    Returns the padded tensor and the original ``(h, w)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Crop ``x`` back to the top-left ``size = (h, w)`` (inverse of :func:`pad_to_multiple`)."""
    h, w = size
    return x[..., :h, :w]


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, act: nn.Module | None = None,
            bias: bool = False) -> nn.Sequential:
    """Conv(k, padding k//2) + BatchNorm + activation (ReLU by default)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias),
        nn.BatchNorm2d(cout),
        act if act is not None else nn.ReLU(inplace=True),
    )
