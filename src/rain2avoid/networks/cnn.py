"""The convolutional backbones: the reference's U-Net, DnCNN and ResNet, and our small ``fast`` net.

Each maps ``(B, 3, H, W)`` to the same shape; those that downsample pad the
input to the multiple they need and crop the result back.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import conv_bn, crop_to, pad_to_multiple

__all__ = ["UNet", "DnCNN", "ResNet", "FastNet"]


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
    """DnCNN as the Rain2Avoid reference builds it: conv+ReLU, (depth-2) x conv+BN+ReLU, conv.

    All convs are 3x3, padding 1, without bias; the output is the last conv's
    (the reference does not subtract it from the input). 558,336 parameters.
    """

    def __init__(self, in_ch: int = 3, depth: int = 17, width: int = 64):
        super().__init__()
        layers = [nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.ReLU(inplace=True)]
        layers += [conv_bn(width, width, 3) for _ in range(depth - 2)]
        layers += [nn.Conv2d(width, in_ch, 3, 1, 1, bias=False)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv+BN, identity (or 1x1/stride projection) shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNet(nn.Module):
    """The Rain2Avoid reference's ResNet backbone: a ResNet-18 encoder and a transposed-conv decoder.

    Encoder, ResNet-18 without its pooling and classifier: 7x7/2 conv 3->64 +
    BN + ReLU (1/2); 3x3/2 max-pool and 2 basic blocks of 64 (1/4); 2 blocks
    of 128 (1/8), 256 (1/16), 512 (1/32), each stage starting with stride 2.
    Decoder: 4x4/2 transposed convs with bias, each followed by ReLU and added
    to the encoder feature of its resolution: 512->256 (+ 1/16), 256->128
    (+ 1/8), 128->64 (+ 1/4), 64->64 (+ 1/2); then 64->3 with no activation,
    which is the output (no residual connection to the input).

    13,998,147 parameters. The reference's module also holds ResNet-18's
    classifier (fc 512->1000, 513,000 parameters) although it never uses it,
    so it counts 14,511,147.
    """

    multiple = 32

    def __init__(self, in_ch: int = 3):
        super().__init__()
        self.stem = conv_bn(in_ch, 64, 7, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)
        chans, stages, cin = (64, 128, 256, 512), [], 64
        for i, c in enumerate(chans):
            stages.append(nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c)))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in
                                 ((512, 256), (256, 128), (128, 64), (64, 64), (64, in_ch)))
        for m in self.modules():  # ResNet-18's initialisation of its convolutions
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.multiple)
        skips = [self.stem(x)]                                   # 1/2
        f = self.pool(skips[0])
        for stage in self.stages:                                # 1/4 1/8 1/16 1/32
            f = stage(f)
            skips.append(f)
        f = skips.pop()
        for up in self.ups[:-1]:
            f = F.relu(up(f)) + skips.pop()
        return crop_to(self.ups[-1](f), size)


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
