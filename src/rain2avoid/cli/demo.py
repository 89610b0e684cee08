"""`rain2avoid demo`: the whole method on a built-in example with synthetic rain."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ..io import write_image
from .common import SEED


@click.command()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("rain2avoid-demo"),
              show_default=True, help="Folder for the demo's pictures.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the rain put on the photo and of the training.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display (the results are printed all the same).")
def demo(output, seed, quiet):
    """Put synthetic rain on a built-in clean photo, derain it and score the result.

    Writes clean.png, rainy.png, mask.png, derained.png and comparison.png
    (rainy | mask | derained | clean) into the output folder.

    \b
    Example:
      rain2avoid demo -o demo/
    """
    from ..ldgp import rotation_for_angle
    from ..metrics import psnr, ssim
    from ..pipeline import derain_detailed
    from ..synth import add_rain, clean_example
    clean = clean_example("astronaut")
    rainy, _ = add_rain(clean, angle=10, intensity=0.5, seed=seed)
    # Stages and the training bar only on a terminal, as `derain` shows them: in a log the bar is noise.
    r = derain_detailed(rainy, seed=seed, progress=not quiet and sys.stderr.isatty())
    gray = np.repeat(r.mask[..., None], 3, axis=2)
    comparison = np.concatenate([rainy, gray, r.image, clean], axis=1)
    for name, image in [("clean", clean), ("rainy", rainy), ("mask", r.mask), ("derained", r.image),
                        ("comparison", comparison)]:
        write_image(output / f"{name}.png", image)
    click.echo(f"rain rendered at 10 deg from vertical, estimated {rotation_for_angle(r.angle):+d} deg; "
               f"derained in {r.seconds:.1f} s")
    click.echo(f"{'':10} {'PSNR-Y':>8} {'SSIM-Y':>7}")
    for name, image in [("rainy", rainy), ("derained", r.image)]:
        click.echo(f"{name:10} {psnr(image, clean):8.2f} {ssim(image, clean):7.4f}")
    click.echo(f"pictures in {output}/ (comparison.png: rainy | mask | derained | clean)")


