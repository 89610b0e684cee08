"""`rain2avoid eval`: full-reference scores against clean images, or no-reference scores of a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from ..io import ImageReadError, list_images, read_image
from ..metrics import psnr, ssim
from ..noref import brisque, niqe
from .common import Context, common_options, reason, report_failures

MAX_PSNR = 100.0
"""`eval` reports PSNR above this (identical images: infinite) as this, so JSON stays valid."""

def _pairs(pred: Path, target: Path) -> list[tuple[str, Path, Path]]:
    preds = {p.stem: p for p in list_images(pred)}
    targets = {p.stem: p for p in list_images(target)}
    common = sorted(set(preds) & set(targets), key=lambda s: (len(s), s))
    return [(s, preds[s], targets[s]) for s in common]


FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command(name="eval")
@click.option("--pred", type=FOLDER, help="Folder of derained images.")
@click.option("--target", type=FOLDER, help="Folder of clean images (paired by file stem).")
@click.option("--no-reference", "no_reference", type=FOLDER,
              help="Score this folder without clean images: NIQE and BRISQUE (lower = better).")
@click.option("--compare", type=FOLDER,
              help="With --no-reference: a second folder (e.g. the results) scored beside it, paired by file stem.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--crop-border", type=click.IntRange(min=0), default=0, show_default=True,
              help="Pixels to ignore at each border (--pred/--target).")
@common_options
def evaluate(pred, target, no_reference, compare, as_json, crop_border, quiet, debug, max_pixels):
    """PSNR / SSIM on Y (BT.601 luma) and RGB between two folders, paired by file stem;
    or, with --no-reference, NIQE and BRISQUE of one folder (or two side by side).

    Alpha is ignored (RGBA is scored on its RGB). PSNR is capped at 100 dB: identical
    images score 100 instead of infinity, so means and JSON stay finite. NIQE needs
    images of at least 192x96 pixels; smaller or unreadable files are reported and
    skipped (exit code 1).

    \b
    Examples:
      rain2avoid eval --pred derained/ --target clean/ --json
      rain2avoid eval --no-reference rainy/ --compare derained/
    """
    if no_reference is not None:
        if pred is not None or target is not None or crop_border:
            raise click.UsageError("--no-reference scores one folder on its own: leave out --pred, --target "
                                   "and --crop-border")
        _no_reference(Context(quiet, debug, max_pixels), no_reference, compare, as_json)
        return
    if compare is not None:
        raise click.UsageError("--compare goes with --no-reference (for two folders with clean images "
                               "use --pred and --target)")
    if pred is None or target is None:
        raise click.UsageError("give --pred and --target (full-reference scores), or --no-reference DIR")
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



# --- no reference ------------------------------------------------------------------------------------------------

def _score(ctx: Context, path: Path) -> dict[str, float]:
    image = ctx.read(path)
    return {"niqe": niqe(image), "brisque": brisque(image)}


def _no_reference(ctx: Context, folder: Path, compare: Path | None, as_json: bool) -> None:
    files = {p.stem: p for p in list_images(folder)}
    if compare is not None:
        others = {p.stem: p for p in list_images(compare)}
        unmatched = sorted(set(files) ^ set(others))
        files = {s: p for s, p in files.items() if s in others}
        if unmatched and not ctx.quiet:  # on stderr: stdout may be JSON
            click.echo(f"note: {len(unmatched)} image(s) without a partner of the same name are left out: "
                       f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}", err=True)
    if not files:
        where = f"{folder} and {compare} (no images with matching names)" if compare else folder
        raise click.ClickException(f"no images to score in {where}")
    rows, failures = [], []
    for stem in tqdm(list(files), desc="eval", unit="image", disable=not ctx.bars or len(files) < 2):
        paths = [files[stem]] + ([others[stem]] if compare is not None else [])
        scores = []
        try:
            for path in paths:
                scores.append(_score(ctx, path))
        except Exception as e:  # one bad file must not stop a folder
            if ctx.debug:
                raise
            failures.append(reason(path, e))
            tqdm.write(f"error: {failures[-1]}", file=sys.stderr)
            continue
        row = {"name": stem, **scores[0]}
        if compare is not None:
            row.update(compare_niqe=scores[1]["niqe"], compare_brisque=scores[1]["brisque"])
        rows.append(row)
    if rows:
        _print_no_reference(rows, folder, compare, as_json)
    report_failures(failures, len(files), "could not be scored")
    if failures:
        sys.exit(1)


def _print_no_reference(rows: list[dict], folder: Path, compare: Path | None, as_json: bool) -> None:
    keys = ["niqe", "brisque"] + (["compare_niqe", "compare_brisque"] if compare is not None else [])
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    lower = {k: sum(r[f"compare_{k}"] < r[k] for r in rows) for k in ("niqe", "brisque")} if compare else {}
    if as_json:
        extra = {f"compare_{k}_lower": v for k, v in lower.items()}
        click.echo(json.dumps({"n": len(rows), **means, **extra, "per_image": rows}))
        return
    if compare is None:
        click.echo(f"{'image':<20} {'NIQE':>7} {'BRISQUE':>8}")
        for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
            click.echo(f"{r['name'][:20]:<20} {r['niqe']:7.4f} {r['brisque']:8.3f}")
        return
    click.echo(f"A = {folder}, B = {compare} (lower = better; diff = B - A)")
    click.echo(f"{'image':<20} {'NIQE A':>7} {'NIQE B':>7} {'diff':>7}   {'BRISQUE A':>9} {'BRISQUE B':>9} {'diff':>7}")
    for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
        click.echo(f"{r['name'][:20]:<20} {r['niqe']:7.4f} {r['compare_niqe']:7.4f} "
                   f"{r['compare_niqe'] - r['niqe']:+7.4f}   {r['brisque']:9.3f} {r['compare_brisque']:9.3f} "
                   f"{r['compare_brisque'] - r['brisque']:+7.3f}")
    n = len(rows)
    niqe_lower, brisque_lower = f"{lower['niqe']} of {n}", f"{lower['brisque']} of {n}"
    click.echo(f"{'lower in B':<20} {'':>7} {niqe_lower:>7} {'':>7}   {'':>9} {brisque_lower:>9}")
