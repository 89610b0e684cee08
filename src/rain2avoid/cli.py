"""Command line: a thin layer over the Python API.

Exit codes: 0 all done, 1 some files failed (each reported, the rest done),
2 usage errors (bad flags, output equal to input, ...).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import click
import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .io import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError, list_images,
                 read_image, to_float_rgb, write_image)
from .ldgp import rotation_for_angle
from .metrics import psnr, ssim
from .sdrl import FOLDER_PRESETS, PRESETS, ModelFileError

MAX_PSNR = 100.0
"""`eval` reports PSNR above this (identical images: infinite) as this, so JSON stays valid."""


class Context:
    """Flags shared by every command."""

    def __init__(self, quiet: bool, debug: bool, max_pixels: int):
        self.quiet, self.debug, self.max_pixels = quiet, debug, max_pixels
        # Progress bars only on a terminal: in logs and pipes they are noise around the messages.
        self.bars = not quiet and sys.stderr.isatty()
        if not debug:  # our one-line errors say it; OpenCV's own decoder warnings would repeat it
            import cv2
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    def say(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message)

    def read(self, path: Path, with_meta: bool = False):
        return read_image(path, max_pixels=self.max_pixels, with_meta=with_meta)


def _common(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-file messages.")(f)
    f = click.option("--debug", is_flag=True, help="Show full Python tracebacks on errors.")(f)
    f = click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
                     help="Refuse images with more pixels than this (checked before decoding).")(f)
    return f


def _inputs(path: Path) -> tuple[list[Path], bool]:
    """The images to process and whether ``path`` is a folder."""
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise click.UsageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
        return files, True
    if not path.exists():
        raise click.UsageError(f"input {path} does not exist")
    return [path], False


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _reason(path: Path, error: Exception) -> str:
    """One line naming ``path`` (once) and what went wrong."""
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError, MemoryError)):  # unexpected: say what it was
        text = f"{type(error).__name__}: {text}"
    return text if str(path) in text else f"{path}: {text}"


def _make_folder(folder: Path) -> None:
    """Create an output folder before any work, so a bad output fails fast and clearly."""
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"output folder {folder} is an existing file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"cannot create output folder {folder}: {e.strerror or e}")


def _check_outputs(jobs: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Usage errors before any work: unknown format, output = input, two inputs -> one output."""
    written: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst.suffix.lower() not in IMAGE_EXTENSIONS:
            raise click.UsageError(f"output {dst}: unsupported image format {dst.suffix!r} "
                                   f"(use one of {' '.join(IMAGE_EXTENSIONS)})")
        if _same_file(src, dst) and not overwrite:
            raise click.UsageError(f"output {dst} is the input file; choose another output or pass --overwrite")
        if dst.resolve() in written:
            raise click.UsageError(f"{written[dst.resolve()]} and {src} would both write {dst}; "
                                   f"rename one of them")
        written[dst.resolve()] = src
    for folder in sorted({dst.parent for _, dst in jobs}):
        _make_folder(folder)


def _report(failures: list[str], total: int, what: str = "failed") -> None:
    """List the failures of a multi-file run at the end, where they are seen."""
    if failures and total > 1:
        click.echo(f"{len(failures)} of {total} file(s) {what}:", err=True)
        for line in failures:
            click.echo(f"  {line}", err=True)


def _run(ctx: Context, jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], None], what: str,
         force: bool = True, overwrite: bool = False) -> None:
    """Run ``work(src, dst)`` for each job; report and skip failures; exit 1 if any failed.

    An output equal to its input is a usage error unless ``overwrite``; an
    existing output is skipped unless ``force``. Any error in one file is
    reported in one line (a traceback only with ``--debug``) and the rest go on.
    """
    _check_outputs(jobs, overwrite)
    failures: list[str] = []
    bar = tqdm(jobs, desc=what, unit="image", disable=not ctx.bars or len(jobs) < 2)
    for src, dst in bar:
        if dst.exists() and not force and not (overwrite and _same_file(src, dst)):
            ctx.say(f"skip {src.name}: {dst} exists (use --force to redo)")
            continue
        try:
            work(src, dst)
        except Exception as e:  # one bad file must not stop a folder
            if ctx.debug:
                raise
            failures.append(_reason(src, e))
            tqdm.write(f"error: {failures[-1]}", file=sys.stderr)
    _report(failures, len(jobs))
    if failures:
        sys.exit(1)


def _output_for(src: Path, output: Path, folder: bool, suffix: str | None = None) -> Path:
    """Output path: inside ``output`` for a folder (or when ``output`` is a folder), else ``output``."""
    name = src.stem + suffix if suffix else src.name
    if folder or output.is_dir() or not output.suffix:
        return output / name
    return output


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rain2avoid")
def main():
    """Remove rain streaks from photos, learning from each rainy image itself (Rain2Avoid).

    \b
    Examples:
      rain2avoid demo                          # try it on a built-in example
      rain2avoid derain rainy.jpg -o clean.jpg
      rain2avoid derain photos/ -o derained/
      rain2avoid eval --pred derained/ --target clean/
    """


def _settings_options(f):
    f = click.option("--seed", type=int, default=None, help="Random seed (same seed, same output on CPU).")(f)
    f = click.option("--sampler", type=click.Choice(["nss", "uniform"]), default=None,
                     help="Reference sampler.")(f)
    f = click.option("--refs", "refs", type=click.IntRange(min=1), default=None,
                     help="Number of sampled references (with --target sampled).")(f)
    f = click.option("--target", type=click.Choice(["expected", "sampled"]), default=None,
                     help="Train on the closed-form expected reference or on sampled ones.")(f)
    f = click.option("--steps", type=click.IntRange(min=0), default=None, help="Training steps.")(f)
    f = click.option("--backbone", type=click.Choice(["fast", "unet", "dncnn", "resnet"]), default=None,
                     help="Network.")(f)
    f = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)(f)
    return f


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: no CUDA GPU is available here; use --device cpu")


@main.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file (one image) or folder.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True,
              help="fast: seconds per image; high: 3 networks averaged (3x slower, a little better); "
                   "reference: the original "
                   "method's settings (5,000 U-Net steps: slow).")
@_settings_options
@click.option("--save-intermediates", is_flag=True, help="Also write <stem>_mask.png and <stem>_reference.png.")
@click.option("--overwrite", is_flag=True, help="Allow writing over the input file.")
@click.option("--force", is_flag=True, help="Redo images whose output already exists.")
@_common
def derain(input, output, preset, device, backbone, steps, target, refs, sampler, seed, save_intermediates,
           overwrite, force, quiet, debug, max_pixels):
    """Derain an image, or every image in a folder (a fresh network per image).

    Outputs keep the input's file name and format (JPEG at quality 95).

    \b
    Examples:
      rain2avoid derain rainy.jpg -o clean.jpg
      rain2avoid derain photos/ -o derained/ --save-intermediates
      rain2avoid derain rainy.png -o out.png --preset reference
    """
    from .pipeline import derain_detailed, to_uint8
    _check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    files, folder = _inputs(input)
    options = dict(backbone=backbone, steps=steps, target=target, refs=refs, sampler=sampler, seed=seed)

    def work(src: Path, dst: Path) -> None:
        image, meta = ctx.read(src, with_meta=True)
        r = derain_detailed(image, preset, device=device, progress=ctx.bars and len(files) == 1, **options)
        write_image(dst, r.image, meta=meta)
        if save_intermediates:
            write_image(dst.with_name(f"{dst.stem}_mask.png"), r.mask)
            write_image(dst.with_name(f"{dst.stem}_reference.png"), to_uint8(r.targets.mean(axis=0)))
        lean = rotation_for_angle(r.angle)
        ctx.say(f"{src.name} -> {dst} ({r.seconds:.1f} s, streaks {lean:+d} deg from vertical)")

    jobs = [(f, _output_for(f, output, folder)) for f in files]
    _run(ctx, jobs, work, "derain", force=force or not folder, overwrite=overwrite)


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True,
              help="Where to save the trained model (.pt).")
@click.option("--preset", type=click.Choice(list(FOLDER_PRESETS)), default="fast", show_default=True)
@_settings_options
@_common
def train(folder, model_path, preset, device, backbone, steps, target, refs, sampler, seed, quiet, debug,
          max_pixels):
    """Train one network on every image of FOLDER (no clean images needed) and save it.

    \b
    Example:
      rain2avoid train photos/ --model rain.pt
      rain2avoid apply new_photos/ --model rain.pt -o derained/
    """
    from .pipeline import training_data
    from .sdrl import resolve_settings, train_folder
    _check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    settings = resolve_settings(preset, FOLDER_PRESETS, backbone=backbone, steps=steps, target=target,
                                refs=refs, sampler=sampler, seed=seed)
    files, _ = _inputs(folder)
    if model_path.is_dir():
        raise click.UsageError(f"--model {model_path} is a folder; give a file name such as rain.pt")
    _make_folder(model_path.parent)
    inputs, targets, weights, failures = [], [], [], []
    for f in tqdm(files, desc="references", unit="image", disable=not ctx.bars):
        try:
            rgb = to_float_rgb(ctx.read(f))
            data = training_data(rgb, settings)
            inputs.append(rgb)
            targets.append(data.targets)
            weights.append(data.weights)
        except Exception as e:  # one bad file must not stop the others
            if debug:
                raise
            failures.append(_reason(f, e))
            tqdm.write(f"error: {failures[-1]}", file=sys.stderr)
    if not inputs:
        raise click.ClickException("no readable images to train on")
    start = time.perf_counter()
    model = train_folder(inputs, targets, settings, device=device, progress=ctx.bars, weights=weights)
    try:
        model.save(model_path)
    except OSError as e:
        if debug:
            raise
        raise click.ClickException(f"cannot write model {model_path}: {e.strerror or e}")
    ctx.say(f"trained on {len(inputs)} image(s) in {time.perf_counter() - start:.0f} s; saved {model_path}")
    _report(failures, len(files), "failed and were left out")
    if failures:
        sys.exit(1)


@main.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True,
              help="A model saved by `rain2avoid train`.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file (one image) or folder.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--overwrite", is_flag=True, help="Allow writing over the input file.")
@click.option("--force", is_flag=True, help="Redo images whose output already exists.")
@_common
def apply(input, model_path, output, device, overwrite, force, quiet, debug, max_pixels):
    """Derain images with a model trained by `rain2avoid train` (no references needed).

    \b
    Example:
      rain2avoid apply new_photos/ --model rain.pt -o derained/
    """
    from .sdrl import load_model
    _check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    try:
        with warnings.catch_warnings():  # torch's remarks on odd pickles would bury the one-line error
            if not debug:
                warnings.simplefilter("ignore")
            model = load_model(model_path, device=device)
    except ModelFileError as e:
        if debug:
            raise
        raise click.ClickException(str(e))
    files, folder = _inputs(input)

    def work(src: Path, dst: Path) -> None:
        image, meta = ctx.read(src, with_meta=True)
        write_image(dst, model.apply(image), meta=meta)

    jobs = [(f, _output_for(f, output, folder)) for f in files]
    _run(ctx, jobs, work, "apply", force=force or not folder, overwrite=overwrite)


@main.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output PNG (one image) or folder (one <stem>.png per image).")
@click.option("--patch-size", type=click.IntRange(min=32), default=80, show_default=True)
@click.option("--kernel-size", type=click.IntRange(min=1), default=10, show_default=True)
@_common
def mask(input, output, patch_size, kernel_size, quiet, debug, max_pixels):
    """Write the LDGP rain mask (255 = rain) of an image or of every image in a folder.

    \b
    Example:
      rain2avoid mask rainy/ -o masks/
    """
    from .ldgp import rain_mask
    from .pipeline import to_uint8
    ctx = Context(quiet, debug, max_pixels)
    files, folder = _inputs(input)

    def work(src: Path, dst: Path) -> None:
        r = rain_mask(to_uint8(to_float_rgb(ctx.read(src))), patch_size, kernel_size)
        write_image(dst, r.mask)

    _run(ctx, [(f, _output_for(f, output, folder, ".png")) for f in files], work, "mask")


@main.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder.")
@click.option("--n", "n", type=click.IntRange(min=1), default=50, show_default=True, help="References per image.")
@click.option("--sampler", type=click.Choice(["nss", "uniform"]), default="nss", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mean-only", is_flag=True, help="Only write the closed-form mean reference.")
@_common
def refs(input, output, n, sampler, seed, mean_only, quiet, debug, max_pixels):
    """Write stochastic derained references: OUTDIR/<stem>/<k>.png and the closed-form mean OUTDIR/<stem>.png.

    \b
    Example:
      rain2avoid refs rainy.png -o refs/ --n 50 --sampler nss
    """
    from .ldgp import rain_mask
    from .pipeline import to_uint8
    from .sdr import expected_reference, sample_references
    ctx = Context(quiet, debug, max_pixels)
    files, _ = _inputs(input)

    def work(src: Path, dst: Path) -> None:
        rgb8 = to_uint8(to_float_rgb(ctx.read(src)))
        m = rain_mask(rgb8).mask
        write_image(dst, np.clip(np.round(expected_reference(rgb8, m, sampler)), 0, 255).astype(np.uint8))
        if not mean_only:
            for k, ref in enumerate(sample_references(rgb8, m, n, sampler, seed=seed)):
                write_image(dst.parent / src.stem / f"{k}.png", ref)

    _run(ctx, [(f, output / f"{f.stem}.png") for f in files], work, "refs")


def _pairs(pred: Path, target: Path) -> list[tuple[str, Path, Path]]:
    preds = {p.stem: p for p in list_images(pred)}
    targets = {p.stem: p for p in list_images(target)}
    common = sorted(set(preds) & set(targets), key=lambda s: (len(s), s))
    return [(s, preds[s], targets[s]) for s in common]


@main.command(name="eval")
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


@main.command()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("rain2avoid-demo"),
              show_default=True, help="Folder for the demo's pictures.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def demo(output, seed, quiet):
    """Put synthetic rain on a built-in clean photo, derain it and score the result.

    Writes clean.png, rainy.png, mask.png, derained.png and comparison.png
    (rainy | mask | derained | clean) into the output folder.

    \b
    Example:
      rain2avoid demo -o demo/
    """
    from .pipeline import derain_detailed
    from .synth import add_rain, clean_example
    clean = clean_example("astronaut")
    rainy, _ = add_rain(clean, angle=10, intensity=0.5, seed=seed)
    r = derain_detailed(rainy, seed=seed, progress=not quiet)
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


if __name__ == "__main__":  # pragma: no cover
    main()
