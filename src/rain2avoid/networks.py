"""Image-to-image backbones for self-supervised rain removal.

Every network maps a batch of RGB images ``(B, 3, H, W)`` in ``[0, 1]`` to a
tensor of the same shape.  Networks that downsample pad the input inside
``forward`` to the multiple they need (reflect padding, replicate when the
image is too small to reflect) and crop the result back, so any ``H, W`` works.

Backbones
---------
``unet``    the U-Net of the Rain2Avoid reference (about 4.54 M parameters).
``dncnn``   DnCNN (17 layers, residual noise prediction).
``resnet``  ResNet-18 encoder with a light U-Net decoder, residual output.
``fast``    a tiny residual U-Net meant for quick per-image training on a CPU.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "pad_to_multiple", "crop_to", "UNet", "DnCNN", "ResNetUNet", "FastNet",
    "BACKBONES", "build_network",
]


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


class UNet(nn.Module):
    """The Rain2Avoid reference U-Net.

    Encoder: 7x7/2 3->64 (ReLU, no norm), 5x5/2 64->128, 5x5/2 128->256,
    3x3/2 256->512 (BN + ReLU).  Decoder: nearest x2 upsampling, concat with the
    matching encoder feature, 3x3 conv + BN + LeakyReLU(0.2): 768->256, 384->128,
    192->64, and a final 3x3 conv on [up, input] 67->3 with bias, no activation.
    Convs followed by BN have no bias, giving 4,540,052 parameters
    (4,541,396 with biases); both match the reference's "about 4.54 M".
    """

    multiple = 16

    def __init__(self, in_ch: int = 3, out_ch: int = 3, bias: bool = False):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(in_ch, 64, 7, 2, 3), nn.ReLU(inplace=True))
        self.enc2 = conv_bn(64, 128, 5, 2, bias=bias)
        self.enc3 = conv_bn(128, 256, 5, 2, bias=bias)
        self.enc4 = conv_bn(256, 512, 3, 2, bias=bias)
        lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.dec3 = conv_bn(512 + 256, 256, 3, act=lrelu(), bias=bias)
        self.dec2 = conv_bn(256 + 128, 128, 3, act=lrelu(), bias=bias)
        self.dec1 = conv_bn(128 + 64, 64, 3, act=lrelu(), bias=bias)
        self.out = nn.Conv2d(64 + in_ch, out_ch, 3, 1, 1, bias=True)

    @staticmethod
    def _up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.multiple)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d = self.dec3(self._up_cat(e4, e3))
        d = self.dec2(self._up_cat(d, e2))
        d = self.dec1(self._up_cat(d, e1))
        d = self.out(self._up_cat(d, x))
        return crop_to(d, size)


class DnCNN(nn.Module):
    """DnCNN: conv+ReLU, (depth-2) x conv+BN+ReLU, conv; output = input - noise.

    All convs are 3x3 with padding 1, so no padding to a multiple is needed.
    """

    def __init__(self, in_ch: int = 3, depth: int = 17, width: int = 64):
        super().__init__()
        layers = [nn.Conv2d(in_ch, width, 3, 1, 1), nn.ReLU(inplace=True)]
        layers += [conv_bn(width, width, 3) for _ in range(depth - 2)]
        layers += [nn.Conv2d(width, in_ch, 3, 1, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv+BN, identity (or 1x1/stride projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNetUNet(nn.Module):
    """ResNet-18 encoder (stem 7x7/2 + maxpool, 4 stages of 2 BasicBlocks with
    64, 128, 256, 512 channels) and a light U-Net decoder (bilinear x2 upsample,
    concat skip, 3x3 conv+BN+ReLU) back to full resolution; output = input + residual.
    """

    multiple = 32

    def __init__(self, in_ch: int = 3, dec: Tuple[int, ...] = (256, 128, 64, 32, 16)):
        super().__init__()
        self.stem = conv_bn(in_ch, 64, 7, 2)                       # /2, 64
        self.pool = nn.MaxPool2d(3, 2, 1)                           # /4
        chans, stages, cin = (64, 128, 256, 512), [], 64
        for i, c in enumerate(chans):
            stages.append(nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c)))
            cin = c
        self.stages = nn.ModuleList(stages)                         # /4 /8 /16 /32
        skips = (256, 128, 64, 64, in_ch)                           # s3, s2, s1, stem, input
        ups, cin = [], 512
        for c, s in zip(dec, skips):
            ups.append(conv_bn(cin + s, c, 3))
            cin = c
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, in_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, size = pad_to_multiple(x, self.multiple)
        s0 = self.stem(xp)
        feats, f = [], self.pool(s0)
        for stage in self.stages:
            f = stage(f)
            feats.append(f)
        skips = [feats[2], feats[1], feats[0], s0, xp]
        for up, s in zip(self.ups, skips):
            f = F.interpolate(f, size=s.shape[-2:], mode="bilinear", align_corners=False)
            f = up(torch.cat([f, s], dim=1))
        return crop_to(xp + self.head(f), size)


class FastNet(nn.Module):
    """A small, fast residual U-Net for per-image training on a CPU.

    Space-to-depth (pixel unshuffle x2) keeps full-resolution detail while all
    convolutions run at 1/2 and 1/4 resolution; pixel shuffle brings the
    residual back to full resolution.  Output = input + residual.
    33,356 parameters with the defaults (``width=16, depth=2``).
    """

    multiple = 4

    def __init__(self, in_ch: int = 3, width: int = 16, depth: int = 2):
        super().__init__()
        c, c2 = width, 2 * width
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        self.enc = nn.Sequential(nn.Conv2d(4 * in_ch, c, 3, 1, 1), act())            # /2
        self.down = nn.Sequential(nn.Conv2d(c, c2, 3, 2, 1), act())                    # /4
        self.mid = nn.Sequential(*[m for _ in range(depth) for m in (nn.Conv2d(c2, c2, 3, 1, 1), act())])
        self.up = nn.Sequential(nn.Conv2d(c2, 4 * c, 1), nn.PixelShuffle(2))          # /2
        self.dec = nn.Sequential(nn.Conv2d(2 * c, c, 3, 1, 1), act())
        self.out = nn.Sequential(nn.Conv2d(c, 4 * in_ch, 3, 1, 1), nn.PixelShuffle(2))  # /1
        nn.init.zeros_(self.out[0].weight)  # start as the identity map
        nn.init.zeros_(self.out[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, size = pad_to_multiple(x, self.multiple)
        e = self.enc(F.pixel_unshuffle(xp, 2))
        m = self.mid(self.down(e))
        d = self.dec(torch.cat([self.up(m), e], dim=1))
        return crop_to(xp + self.out(d), size)


BACKBONES = {"unet": UNet, "dncnn": DnCNN, "resnet": ResNetUNet, "fast": FastNet}


def build_network(name: str, **kwargs) -> nn.Module:
    """Instantiate the backbone called ``name`` (see ``BACKBONES``) with ``kwargs``."""
    try:
        cls = BACKBONES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}") from None
    return cls(**kwargs)
