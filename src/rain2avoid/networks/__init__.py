"""Image-to-image backbones for self-supervised rain removal.

Every network maps a batch of RGB images ``(B, 3, H, W)`` in ``[0, 1]`` to a
tensor of the same shape. Networks that downsample pad the input inside
``forward`` to the multiple they need (reflect padding, replicate when the
image is too small to reflect) and crop the result back, so any ``H, W`` works.

Backbones (parameters; the first five are the ones the Rain2Avoid reference offers,
with its default configurations):

============  ===========  ==============================================================
``unet``       4,540,052   the reference's U-Net (its default backbone)
``resnet``    13,998,147   the reference's ResNet-18 encoder + transposed-conv decoder
``dncnn``        558,336   the reference's DnCNN (17 layers)
``restormer`` 26,126,644   Restormer (Zamir et al., CVPR 2022)
``drsformer`` 15,609,136   DRSformer (Chen et al., CVPR 2023)
``fast``          33,356   ours: a tiny residual U-Net for quick training on a CPU
============  ===========  ==============================================================

``benchmarks/backbones.py`` measures a training step of each on a 480x320 image.
"""

from __future__ import annotations

import torch.nn as nn

from ..settings import BACKBONE_NAMES
from .base import crop_to, pad_to_multiple
from .cnn import DnCNN, FastNet, ResNet, UNet
from .drsformer import DRSformer
from .restormer import Restormer

__all__ = [
    "pad_to_multiple", "crop_to", "UNet", "DnCNN", "ResNet", "FastNet", "Restormer", "DRSformer",
    "BACKBONES", "build_network",
]

BACKBONES = dict(zip(BACKBONE_NAMES, (FastNet, UNet, DnCNN, ResNet, Restormer, DRSformer), strict=True))


def build_network(name: str, **kwargs) -> nn.Module:
    """Instantiate the backbone called ``name`` (see ``BACKBONES``) with ``kwargs``."""
    try:
        cls = BACKBONES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}") from None
    return cls(**kwargs)
