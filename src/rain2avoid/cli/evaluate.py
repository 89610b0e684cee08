"""`rain2avoid eval`: full-reference scores against clean images, or no-reference scores of a folder."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from ..io import list_images
from ..pairing import by_stem, pair_by_stem
from .common import Context, common_options, interrupted_exit_code, reason, report_failures, sigterm_as_interrupt

MAX_PSNR = 100.0
"""`eval` reports PSNR above this (identical images: infinite) as this, so JSON stays valid."""

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
    images of at least 192x96 pixels, BRISQUE of 14x14, and both some texture: where
    one is undefined, the image gets n/a (null) for it, a note says why, and its
    mean is taken over the others. Unreadable files, pairs of different sizes or
    too small to score, and names held by two files of a folder (a.png and a.jpg)
    are reported and skipped (exit code 1); files without a partner are named in a
    note and left out.

    --json keys: n (images scored), the means (psnr_y ssim_y psnr_rgb ssim_rgb; or
    niqe brisque, with n_niqe n_brisque the images each is taken over, and with
    --compare compare_niqe compare_brisque and how many are lower in it,
    compare_niqe_lower compare_brisque_lower), per_image (name and scores),
    unpaired (files without a partner) and skipped (one line per file or pair left
    out). The object is printed even when nothing could be scored (n 0, the means
    null), an empty folder too (exit code 2).

    \b
    Examples:
      rain2avoid eval --pred derained/ --target clean/ --json
      rain2avoid eval --no-reference rainy/ --compare derained/
    """
    if no_reference is not None and (pred is not None or target is not None or crop_border):
        raise click.UsageError("--no-reference scores one folder on its own: leave out --pred, --target "
                               "and --crop-border")
    if no_reference is None and compare is not None:
        raise click.UsageError("--compare goes with --no-reference (for two folders with clean images "
                               "use --pred and --target)")
    if no_reference is None and (pred is None or target is None):
        raise click.UsageError("give --pred and --target (full-reference scores), or --no-reference DIR")
    ctx = Context(quiet, debug, max_pixels)
    try:
        with sigterm_as_interrupt():
            if no_reference is not None:
                _no_reference(ctx, no_reference, compare, as_json)
            else:
                _full_reference(ctx, pred, target, as_json, crop_border)
    except KeyboardInterrupt as e:  # nothing is written: only the scores so far are lost
        click.echo("interrupted: no scores printed", err=True)
        sys.exit(interrupted_exit_code(e))


def _say_unpaired(ctx: Context, unpaired: list[Path]) -> None:
    """One note on stderr (stdout may be JSON) naming the files left out for want of a partner."""
    if unpaired and not ctx.quiet:
        names = [str(p) for p in unpaired]
        click.echo(f"note: {len(names)} image(s) without a partner of the same name are left out: "
                   f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}", err=True)


def _no_pairs(first: Path, second: Path) -> str:
    """Why no image of ``first`` pairs with one of ``second``: a folder without images, or no names match."""
    empty = [str(folder) for folder in (first, second) if not list_images(folder)]
    if empty:
        return f"no images in {' and '.join(empty)}"
    return f"no images with matching names in {first} and {second}"


def _error(failures: list[str], line: str) -> None:
    """Report a file or pair that is left out (one line, now) and keep it for the list at the end."""
    failures.append(line)
    tqdm.write(f"error: {line}", file=sys.stderr)


def _columns(text: str) -> int:
    """Terminal columns ``text`` takes: two for an East Asian wide or fullwidth character (雨), none for
    a combining mark (the accent of a decomposed é), one for any other."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me") else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, width: int) -> str:
    """``text`` and spaces up to ``width`` terminal columns: a table's name cell (``f"{text:<{width}}"``
    counts characters, so a name with wide characters would push its row's numbers right)."""
    return text + " " * max(0, width - _columns(text))


def _name_width(rows: list[dict]) -> int:
    """Width of a table's name column in terminal columns: 20, or the widest name (never cut: two names
    may differ only at the end)."""
    return max([20] + [_columns(r["name"]) for r in rows])


def _score_pair(ctx: Context, stem: str, p: Path, t: Path, crop_border: int) -> dict[str, float]:
    """PSNR (capped at MAX_PSNR) and SSIM on Y and RGB of ``p`` against ``t``; ValueError (one line naming
    the files) when they cannot be scored."""
    from ..metrics import as_rgb, psnr, ssim
    a, b = ctx.read(p), ctx.read(t)
    a, b = as_rgb(a), as_rgb(b)
    if a.shape != b.shape:
        raise ValueError(f"{stem}: sizes differ ({p}: {a.shape[1]}x{a.shape[0]}, "
                         f"{t}: {b.shape[1]}x{b.shape[0]})")
    try:
        scores = {"psnr_y": psnr(a, b, "y", crop_border), "ssim_y": ssim(a, b, "y", crop_border),
                  "psnr_rgb": psnr(a, b, "rgb", crop_border), "ssim_rgb": ssim(a, b, "rgb", crop_border)}
    except ValueError as e:
        raise ValueError(f"{stem}: too small to score {p} against {t} "
                         f"(--crop-border {crop_border}): {' '.join(str(e).split())}") from e
    scores["psnr_y"], scores["psnr_rgb"] = min(scores["psnr_y"], MAX_PSNR), min(scores["psnr_rgb"], MAX_PSNR)
    return scores


def _full_reference(ctx: Context, pred: Path, target: Path, as_json: bool, crop_border: int) -> None:
    """Score each pair of ``pred`` and ``target``; report and skip the bad ones (exit code 1)."""
    found = pair_by_stem(pred, target)
    _say_unpaired(ctx, found.unpaired)
    keys = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    if not found.pairs and not found.ambiguous:
        if as_json:   # the help promises the object whatever happens
            _print_full_json([], dict.fromkeys(keys), found.unpaired, [])
        raise click.UsageError(_no_pairs(pred, target))
    failures: list[str] = []
    for line in found.ambiguous:
        _error(failures, f"{line}; left out")
    pairs = found.pairs   # in the natural order of the files of --pred, as report and --no-reference list them
    rows = []
    for stem, p, t in tqdm(pairs, desc="eval", unit="image", disable=not ctx.bars or len(pairs) < 2):
        try:
            rows.append({"name": stem, **_score_pair(ctx, stem, p, t, crop_border)})
        except Exception as e:  # one bad pair must not stop the others
            if ctx.debug:
                raise
            named = t if str(t) in str(e) and str(p) not in str(e) else p  # the file the error is about
            _error(failures, reason(named, e))
    total = len(pairs) + len(found.ambiguous)
    if not rows and not as_json:   # --json still prints its object (n 0, means null): scripts parse stdout
        raise click.ClickException(f"no pair of {pred} and {target} could be scored "
                                   f"({len(failures)} reported above)")
    means = {k: float(np.mean([r[k] for r in rows])) if rows else None for k in keys}
    if as_json:
        _print_full_json(rows, means, found.unpaired, failures)
    else:
        w = _name_width(rows)
        click.echo(f"{_pad('image', w)} {'PSNR-Y':>8} {'SSIM-Y':>7} {'PSNR-RGB':>9} {'SSIM-RGB':>9}")
        for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
            click.echo(f"{_pad(r['name'], w)} {r['psnr_y']:8.2f} {r['ssim_y']:7.4f} {r['psnr_rgb']:9.2f} "
                       f"{r['ssim_rgb']:9.4f}")
    report_failures(failures, total, "could not be scored")
    if failures:
        sys.exit(1)


def _print_full_json(rows: list[dict], means: dict, unpaired: list[Path], failures: list[str]) -> None:
    """The --json object of full-reference ``rows``: n, ``means`` (null for no rows), per_image,
    unpaired and skipped."""
    click.echo(json.dumps({"n": len(rows), **means, "per_image": rows, "unpaired": [str(f) for f in unpaired],
                           "skipped": failures}))


# --- no reference ------------------------------------------------------------------------------------------------

def _score(ctx: Context, path: Path) -> dict[str, float | None]:
    """NIQE and BRISQUE of the file ``path``; a score undefined for it (too small, flat) is None,
    with a note saying why; ValueError when neither is defined."""
    from ..noref import brisque, niqe
    image = ctx.read(path)
    scores, undefined = {}, []
    for key, metric in (("niqe", niqe), ("brisque", brisque)):
        try:
            scores[key] = metric(image)
        except ValueError as e:
            scores[key] = None
            undefined.append(" ".join(str(e).split()))
    if len(undefined) == len(scores):
        raise ValueError("; ".join(undefined))
    for line in undefined:
        if not ctx.quiet:
            tqdm.write(f"note: {path}: {line} (left out of its mean)", file=sys.stderr)
    return scores


def _no_reference(ctx: Context, folder: Path, compare: Path | None, as_json: bool) -> None:
    failures: list[str] = []
    if compare is None:  # files of one stem each keep their row, named by the whole file name
        groups = by_stem(list_images(folder))
        files = [(f.stem if len(fs) == 1 else f.name, [f]) for fs in groups.values() for f in fs]
    else:
        found = pair_by_stem(folder, compare)
        _say_unpaired(ctx, found.unpaired)
        for line in found.ambiguous:
            _error(failures, f"{line}; left out")
        files = [(stem, [a, b]) for stem, a, b in found.pairs]
    if not files:
        if failures:
            raise click.ClickException(f"no pair of {folder} and {compare} could be scored "
                                       f"({len(failures)} reported above)")
        if as_json:   # the help promises the object whatever happens
            _print_no_reference([], folder, compare, True, found.unpaired if compare is not None else [], [])
        raise click.UsageError(_no_pairs(folder, compare) if compare else f"no images to score in {folder}")
    rows, total = [], len(files) + len(failures)
    for name, paths in tqdm(files, desc="eval", unit="image", disable=not ctx.bars or len(files) < 2):
        scores = []
        try:
            for path in paths:
                scores.append(_score(ctx, path))
        except Exception as e:  # one bad file must not stop a folder
            if ctx.debug:
                raise
            _error(failures, reason(path, e))
            continue
        row = {"name": name, **scores[0]}
        if compare is not None:
            row.update(compare_niqe=scores[1]["niqe"], compare_brisque=scores[1]["brisque"])
        rows.append(row)
    if rows or as_json:   # --json prints its object even when nothing was scored (n 0, means null)
        _print_no_reference(rows, folder, compare, as_json, found.unpaired if compare is not None else [], failures)
    report_failures(failures, total, "could not be scored")
    if failures:
        sys.exit(1)


def _cell(value: float | None, width: int, decimals: int, sign: str = "") -> str:
    """A table cell: ``value`` with ``decimals``, or n/a where the score is undefined."""
    return f"{'n/a':>{width}}" if value is None else f"{value:{sign}{width}.{decimals}f}"


def _print_no_reference(rows: list[dict], folder: Path, compare: Path | None, as_json: bool,
                        unpaired: list[Path], failures: list[str]) -> None:
    """The table or JSON object of ``rows``. A score undefined for an image (None) leaves that image
    out of the score's means (with --compare, out of both folders' means and the count of lower
    ones): ``n_niqe`` and ``n_brisque`` say over how many images each mean is taken."""
    both = {k: [r for r in rows if r[k] is not None and r.get(f"compare_{k}", 0) is not None]
            for k in ("niqe", "brisque")}
    keys = ["niqe", "brisque"] + (["compare_niqe", "compare_brisque"] if compare is not None else [])
    scored = {k: both[k.removeprefix("compare_")] for k in keys}   # compare_niqe: the rows both have NIQE for
    means = {k: float(np.mean([r[k] for r in scored[k]])) if scored[k] else None for k in keys}
    lower = {k: sum(r[f"compare_{k}"] < r[k] for r in both[k]) for k in ("niqe", "brisque")} if compare else {}
    counts = {f"n_{k}": len(both[k]) for k in ("niqe", "brisque")}
    if as_json:
        extra = {f"compare_{k}_lower": v for k, v in lower.items()}
        click.echo(json.dumps({"n": len(rows), **means, **counts, **extra, "per_image": rows,
                               "unpaired": [str(f) for f in unpaired], "skipped": failures}))
        return
    w = _name_width(rows)
    if compare is None:
        click.echo(f"{_pad('image', w)} {'NIQE':>7} {'BRISQUE':>8}")
        for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
            click.echo(f"{_pad(r['name'], w)} {_cell(r['niqe'], 7, 4)} {_cell(r['brisque'], 8, 3)}")
    else:
        click.echo(f"A = {folder}, B = {compare} (lower = better; diff = B - A)")
        click.echo(f"{_pad('image', w)} {'NIQE A':>7} {'NIQE B':>7} {'diff':>7}   "
                   f"{'BRISQUE A':>9} {'BRISQUE B':>9} {'diff':>7}")
        for r in rows + [{"name": f"mean ({len(rows)})", **means}]:
            diff = {k: None if r[k] is None or r[f"compare_{k}"] is None else r[f"compare_{k}"] - r[k]
                    for k in ("niqe", "brisque")}
            click.echo(f"{_pad(r['name'], w)} {_cell(r['niqe'], 7, 4)} {_cell(r['compare_niqe'], 7, 4)} "
                       f"{_cell(diff['niqe'], 7, 4, '+')}   {_cell(r['brisque'], 9, 3)} "
                       f"{_cell(r['compare_brisque'], 9, 3)} {_cell(diff['brisque'], 7, 3, '+')}")
        niqe_lower, brisque_lower = (f"{lower[k]} of {len(both[k])}" for k in ("niqe", "brisque"))
        click.echo(f"{_pad('lower in B', w)} {'':>7} {niqe_lower:>7} {'':>7}   {'':>9} {brisque_lower:>9}")
    for k, label in (("niqe", "NIQE"), ("brisque", "BRISQUE")):
        if len(both[k]) < len(rows):
            click.echo(f"{label} means over {len(both[k])} of {len(rows)} image(s): undefined for the others "
                       f"(too small or flat; see the notes)")
