"""`rain2avoid eval`: full-reference scores of a folder of results against clean images."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..io import ImageReadError, list_images, read_image
from ..metrics import psnr, ssim

MAX_PSNR = 100.0
"""`eval` reports PSNR above this (identical images: infinite) as this, so JSON stays valid."""

def _pairs(pred: Path, target: Path) -> list[tuple[str, Path, Path]]:
    preds = {p.stem: p for p in list_images(pred)}
    targets = {p.stem: p for p in list_images(target)}
    common = sorted(set(preds) & set(targets), key=lambda s: (len(s), s))
    return [(s, preds[s], targets[s]) for s in common]


@click.command(name="eval")
@click.option("--pred", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of derained images.")
@click.option("--target", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of clean images (paired by file stem).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--crop-border", type=click.IntRange(min=0), default=0, show_default=True,
              help="Pixels to ignore at each border.")
def evaluate(pred, target, as_json, crop_border):
    """PSNR / SSIM on Y (BT.601 luma) and RGB between two folders, paired by file stem.

    Alpha is ignored (RGBA is scored on its RGB). PSNR is capped at 100 dB: identical
    images score 100 instead of infinity, so means and JSON stay finite.

    \b
    Example:
      rain2avoid eval --pred derained/ --target clean/ --json
    """
    pairs = _pairs(pred, target)
    if not pairs:
        raise click.ClickException(f"no images with matching names in {pred} and {target}")
    rows = []
    for stem, p, t in pairs:
        try:
            a, b = read_image(p), read_image(t)
        except ImageReadError as e:
            raise click.ClickException(str(e))
        a, b = [np.stack([x] * 3, axis=-1) if x.ndim == 2 else x[..., :3] for x in (a, b)]
        if a.shape != b.shape:
            raise click.ClickException(f"{stem}: sizes differ ({p}: {a.shape[1]}x{a.shape[0]}, "
                                       f"{t}: {b.shape[1]}x{b.shape[0]})")
        a, b = [x.astype(np.float64) / 257.0 if x.dtype == np.uint16 else x for x in (a, b)]
        try:
            scores = {"psnr_y": psnr(a, b, "y", crop_border), "ssim_y": ssim(a, b, "y", crop_border),
                      "psnr_rgb": psnr(a, b, "rgb", crop_border), "ssim_rgb": ssim(a, b, "rgb", crop_border)}
        except ValueError as e:
            raise click.ClickException(f"{stem}: too small to score {p} against {t} "
                                       f"(--crop-border {crop_border}): {' '.join(str(e).split())}")
        scores["psnr_y"], scores["psnr_rgb"] = min(scores["psnr_y"], MAX_PSNR), min(scores["psnr_rgb"], MAX_PSNR)
        rows.append({"name": stem, **scores})
    keys = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if as_json:
        click.echo(json.dumps({"n": len(rows), **means, "per_image": rows}))
        return
    click.echo(f"{'image':<20} {'PSNR-Y':>8} {'SSIM-Y':>7} {'PSNR-RGB':>9} {'SSIM-RGB':>9}")
    for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
        click.echo(f"{r['name'][:20]:<20} {r['psnr_y']:8.2f} {r['ssim_y']:7.4f} {r['psnr_rgb']:9.2f} "
                   f"{r['ssim_rgb']:9.4f}")

