"""The image commands: derain, train, apply, mask and refs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from ..batch.plan import Job, same_file
from ..batch.train import DEFAULT_BUDGET_MB
from ..batch.work import ApplyTask, Claims, DerainTask, cached_model
from ..files import ImageWriteError, replaceable_mode, stale_temporaries
from ..io import IMAGE_EXTENSIONS, to_float_rgb, write_image
from ..settings import FOLDER_PRESETS, PRESETS
from ..veil import VEIL_THRESHOLD
from ..video.io import VIDEO_EXTENSIONS
from .batch import Earlier, batch_options, check_batch_flags, plan, run_batch
from .common import (
    SEED,
    VEIL_HELP,
    VEIL_THRESHOLD_HELP,
    WIDE_RAIN_HELP,
    Context,
    check_device,
    check_folder_output,
    check_outputs,
    common_options,
    interrupted_exit_code,
    interrupted_line,
    list_inputs,
    make_folder,
    output_for,
    reason,
    report_failures,
    run_jobs,
    settings_options,
    sigterm_as_interrupt,
    video_jobs,
)


@click.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file (one image) or folder.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True,
              help="fast: seconds per image; high: 3 networks averaged (a little better; up to 3x slower: "
                   "only the training is repeated, so a 12 MP photo takes about 1.4x as long); "
                   "reference: the original "
                   "method's settings (5,000 U-Net steps: slow).")
@click.option("--init", "init_path", type=click.Path(path_type=Path), default=None,
              help="A model saved by `rain2avoid train` on other rainy images: each image's network "
                   "starts from it and trains 150 steps instead of 700 from scratch (about 3x faster, "
                   "nearly as good); with --preset high it is averaged with a fresh network of 500 "
                   "steps (better than the default, and as good as high without --init, in less "
                   "time). Videos start their clip's network from it too.")
@settings_options
@click.option("--wide-rain", is_flag=True, help=WIDE_RAIN_HELP)
@click.option("--save-intermediates", is_flag=True,
              help="Also write <stem>_mask.png and <stem>_reference.png (images only).")
@click.option("--overwrite", is_flag=True, help="Allow writing over the input file.")
@click.option("--force", is_flag=True, help="Redo images whose output already exists.")
@batch_options
@common_options
def derain(input, output, preset, init_path, device, backbone, steps, target, refs, sampler, seed, veil,
           veil_threshold, layer, wide_rain, save_intermediates, overwrite, force, workers, recursive, shard, dask, dask_write,
           quiet, debug, max_pixels):
    """Derain an image or a video, or every image and video in a folder.

    Images get a fresh network each (or one started from --init's model); a
    video gets one network for the whole clip and uses its neighbouring frames
    (needs `pip install "rain2avoid[video]"`).
    Outputs keep the input's file name and format (JPEG at quality 95; an image
    left untouched, with no rain found, is its input's file, byte for byte;
    videos: .mkv lossless FFV1, .mp4/.mov H.264, .webm VP9, .avi MPEG-4; audio
    copied).

    \b
    Examples:
      rain2avoid derain rainy.jpg -o clean.jpg
      rain2avoid derain photos/ -o derained/ --save-intermediates
      rain2avoid derain rainy.png -o out.png --preset reference
      rain2avoid derain clip.mp4 -o derained.mp4
      rain2avoid derain archive/ -o derained/ --recursive --workers 2
      rain2avoid derain archive/ -o derained/ -r --shard $SLURM_ARRAY_TASK_ID/100
      rain2avoid derain archive/ -o derained/ -r --dask tcp://scheduler:8786
      rain2avoid train some_photos/ --model rain.pt
      rain2avoid derain photos/ -o derained/ --init rain.pt

    --workers, --shard and --dask spread the images; the videos of a folder
    (with --recursive, those of its tree named as videos too) are derained
    here, one after another, before them.
    """
    from ..pipeline import derain_settings
    from ..sdrl import ModelFileError
    from ..wide import WIDE_SIDE
    check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    options = dict(backbone=backbone, steps=steps, target=target, refs=refs, sampler=sampler, seed=seed,
                   veil=veil, veil_threshold=veil_threshold, layer=layer, wide=WIDE_SIDE if wide_rain else None)
    check_batch_flags(workers, dask, dask_write)
    init = None
    if init_path is not None:
        try:
            init = cached_model(init_path, device)  # a bad model file is one clear error before any work
        except ModelFileError as e:
            if debug:
                raise
            raise click.ClickException(f"--init: {e}")
    jobs, folder = plan(input, output, recursive, shard, videos=True, note=ctx.say)
    try:
        settings = derain_settings(preset, init, **options)
    except ValueError as e:
        raise click.UsageError(f"--init: {e}" if init is not None else str(e))

    def video(src: Path, dst: Path) -> None:
        from ..video import video_job
        ctx.say(video_job(src, dst, preset=preset, device=device, max_pixels=ctx.max_pixels,
                          progress=ctx.bars, init=init, overwrite=overwrite, **options))

    # Folders: one thread per image on every backend, so the outputs do not depend on --workers.
    task = DerainTask(preset, tuple(options.items()), device, save_intermediates, max_pixels,
                      progress=ctx.bars and not folder, threads=1 if folder else None,
                      model=init_path.resolve() if init is not None else None)
    check_outputs(jobs, overwrite, task.output_paths)  # before the videos: no name may be written twice
    jobs, earlier = _videos_first(ctx, jobs, video, "derain", force, overwrite, folder)
    seconds = 0.3 + 0.0045 * settings.steps * settings.ensemble * (100 if settings.backbone == "unet" else 1)
    run_batch(ctx, task, jobs, "derain", force or not folder, overwrite, workers, dask, dask_write, seconds,
              earlier, folder)


def _videos_first(ctx, jobs, work, what, force, overwrite, folder) -> tuple[list, Earlier]:
    """Run the video jobs here, one after another (each trains one network for its clip);
    the image jobs left and what the videos came to (:class:`~.batch.Earlier`). A single file
    (not ``folder``) is always done again."""
    start = time.perf_counter()
    videos = video_jobs(jobs)
    if not videos:
        return jobs, Earlier(start=start)
    check_outputs(jobs, overwrite)
    video_list = [j for j in jobs if j.src in videos]
    for leftover in stale_temporaries(*(j.dst for j in video_list)):   # of a run that was killed
        leftover.unlink(missing_ok=True)
    claims, written = Claims(), []

    def claimed(src: Path, dst: Path) -> None:   # another run making it (a shard, a second run): skip it
        skipped = claims.take(Job(src, dst))
        if skipped is not None:
            ctx.say(f"skip {src.name}: {skipped.skipped}")
            return
        try:
            work(src, dst)
            written.append(src)
        finally:
            claims.release(Job(src, dst))

    try:
        with sigterm_as_interrupt():
            failures = run_jobs(ctx, video_list, claimed, what, force=force or not folder, overwrite=overwrite,
                                finish=False)
    except KeyboardInterrupt as e:
        click.echo(interrupted_line(folder, jobs), err=True)
        sys.exit(interrupted_exit_code(e))
    return [j for j in jobs if j.src not in videos], Earlier(tuple(failures), len(video_list), len(written), start)


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True,
              help="Where to save the trained model (.pt).")
@click.option("--preset", type=click.Choice(list(FOLDER_PRESETS)), default="fast", show_default=True,
              help="fast: 2,000 steps on batches of 16 crops of 96 px; high: 6,000 such steps; reference: "
                   "the original method's folder settings (U-Net, 4,000 steps of 64 crops of 64 px).")
@settings_options
@click.option("--recursive", "-r", is_flag=True, help="Train on every image of the folder tree.")
@click.option("--memory-mb", type=click.IntRange(min=1), default=DEFAULT_BUDGET_MB, show_default=True,
              help="Training data (images, references, loss weights) held in memory at once. Folders "
                   "that need more stream through it: images are loaded during training and the "
                   "oldest dropped.")
@common_options
def train(folder, model_path, preset, device, backbone, steps, target, refs, sampler, seed, veil, veil_threshold,
          layer, recursive, memory_mb, quiet, debug, max_pixels):
    """Train one network on every image of FOLDER (no clean images needed) and save it.

    Memory stays bounded for any number of images (see --memory-mb).

    \b
    Examples:
      rain2avoid train photos/ --model rain.pt
      rain2avoid apply new_photos/ --model rain.pt -o derained/
    """
    from ..batch.train import train_files
    from ..sdrl import resolve_settings
    check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    settings = resolve_settings(preset, FOLDER_PRESETS, backbone=backbone, steps=steps, target=target,
                                refs=refs, sampler=sampler, seed=seed, veil=veil, veil_threshold=veil_threshold,
                                layer=layer)
    files, _ = list_inputs(folder, recursive, note=ctx.say)
    _check_model_output(model_path, files)
    make_folder(model_path.parent)
    failures = []
    bar = tqdm(total=len(files), desc="references", unit="image", disable=not ctx.bars)

    def failed(path: Path, error: Exception) -> None:
        failures.append(reason(path, error))
        tqdm.write(f"error: {failures[-1]}", file=sys.stderr)

    def loaded(path: Path) -> None:
        bar.update(1)
        if bar.n == len(files):  # every image read: close it now, or its time and rate would count the training
            bar.close()

    start = time.perf_counter()
    try:
        model, used = train_files(files, settings, memory_mb, device, ctx.bars, max_pixels,
                                  on_error=None if debug else failed, on_load=loaded)
    except ValueError:
        if debug or len(failures) < len(files):
            raise
        raise click.ClickException("no readable images to train on")
    except KeyboardInterrupt:
        bar.close()
        click.echo("interrupted: no model was saved; run the same command again to train", err=True)
        sys.exit(130)
    finally:
        bar.close()
    try:
        model.save(model_path)
    except OSError as e:  # ImageWriteError: "cannot write <path>: <reason>"
        if debug:
            raise
        raise click.ClickException(f"model not saved: {e}")
    ctx.say(f"trained on {used} image(s) in {time.perf_counter() - start:.0f} s; saved {model_path}")
    report_failures(failures, len(files), "failed and were left out")
    if failures:
        sys.exit(1)


def _check_model_output(model_path: Path, files: list[Path]) -> None:
    """Usage errors before training: --model must not replace a training image, a folder or a
    file that is not a model (an earlier model is replaced), nor be named like an image or video."""
    from ..sdrl import ModelFileError, load_model
    if model_path.is_dir():
        raise click.UsageError(f"--model {model_path} is a folder; give a file name such as rain.pt")
    if any(same_file(f, model_path) for f in files):
        raise click.UsageError(f"--model {model_path} is one of the training images; give another file "
                               f"name such as rain.pt")
    if model_path.exists():
        try:
            load_model(model_path)
        except ModelFileError:
            raise click.UsageError(f"--model {model_path} exists and is not a model this rain2avoid reads, so "
                                   f"it would be replaced; give another file name such as rain.pt, or remove "
                                   f"it first") from None
        try:
            replaceable_mode(model_path)   # a read-only model fails now, not after the training
        except ImageWriteError as e:
            raise click.ClickException(f"model not saved: {e}") from None
    if model_path.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
        raise click.UsageError(f"--model {model_path} is named like an image or a video (folder runs would "
                               f"read it as one); give a file name such as {model_path.with_suffix('.pt')}")


@click.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True,
              help="A model saved by `rain2avoid train`.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output file (one image) or folder.")
@click.option("--veil", type=click.Choice(["auto", "on", "off"]), default=None,
              help=VEIL_HELP.replace("[default: auto; off for --preset reference]", "[default: the model's]"))
@click.option("--veil-threshold", type=click.FloatRange(min=0, max=1), default=None, metavar="STRENGTH",
              help=VEIL_THRESHOLD_HELP.replace(f"[default: {VEIL_THRESHOLD}]", "[default: the model's]"))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--overwrite", is_flag=True, help="Allow writing over the input file.")
@click.option("--force", is_flag=True, help="Redo images whose output already exists.")
@batch_options
@common_options
def apply(input, model_path, output, veil, veil_threshold, device, overwrite, force, workers, recursive, shard, dask, dask_write,
          quiet, debug, max_pixels):
    """Derain images and videos with a model trained by `rain2avoid train` (no references needed).

    Videos also use their neighbouring frames (`pip install "rain2avoid[video]"`).

    \b
    Examples:
      rain2avoid apply new_photos/ --model rain.pt -o derained/
      rain2avoid apply clip.mp4 --model rain.pt -o derained.mp4
      rain2avoid apply archive/ --model rain.pt -o derained/ --recursive --workers 2
    """
    from ..sdrl import ModelFileError
    check_device(device)
    ctx = Context(quiet, debug, max_pixels)
    try:
        model = cached_model(model_path, device)  # a bad model file is one clear error before any work
    except ModelFileError as e:
        if debug:
            raise
        raise click.ClickException(str(e))
    check_batch_flags(workers, dask, dask_write)
    jobs, folder = plan(input, output, recursive, shard, videos=True, note=ctx.say)

    def video(src: Path, dst: Path) -> None:
        from ..video import video_job
        ctx.say(video_job(src, dst, model=model, max_pixels=ctx.max_pixels, progress=ctx.bars,
                          overwrite=overwrite))

    jobs, earlier = _videos_first(ctx, jobs, video, "apply", force, overwrite, folder)
    task = ApplyTask(model_path.resolve(), device, max_pixels, veil=veil, veil_threshold=veil_threshold)
    run_batch(ctx, task, jobs, "apply", force or not folder, overwrite, workers, dask, dask_write, 0.05, earlier,
              folder)


@click.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Output PNG (one image) or folder (one <stem>.png per image).")
@click.option("--patch-size", type=click.IntRange(min=32), default=80, show_default=True,
              help="Side of the tiles that vote for the streaks' direction (px).")
@click.option("--kernel-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Length of the opening: bright runs along the streaks shorter than this are not rain (px).")
@click.option("--force", is_flag=True, help="Redo images whose output already exists (a folder's are skipped).")
@common_options
def mask(input, output, patch_size, kernel_size, force, quiet, debug, max_pixels):
    """Write the LDGP rain mask (graded 0-255; rain where > 10) of an image or of every image in a folder.

    A folder's images whose mask file exists are skipped (--force redoes them).

    \b
    Example:
      rain2avoid mask rainy/ -o masks/
    """
    from ..ldgp import rain_mask
    from ..pipeline import to_uint8
    ctx = Context(quiet, debug, max_pixels)
    files, folder = list_inputs(input)
    if folder:
        check_folder_output(input, output)

    def work(src: Path, dst: Path) -> None:
        r = rain_mask(to_uint8(to_float_rgb(ctx.read(src))), patch_size, kernel_size)
        write_image(dst, r.mask)
        ctx.say(f"{src.name} -> {dst} (rain on {np.mean(r.mask > 10):.1%} of the pixels)")

    run_jobs(ctx, [Job(f, output_for(f, output, folder, ".png")) for f in files], work, "mask",
             force=force or not folder)


@click.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder.")
@click.option("--n", "n", type=click.IntRange(min=1), default=50, show_default=True, help="References per image.")
@click.option("--sampler", type=click.Choice(["nss", "uniform"]), default="nss", show_default=True,
              help="How a rain pixel's replacement is drawn from its window: nss (by the likeness of "
                   "their neighbourhoods) or uniform.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the references' draws.")
@click.option("--mean-only", is_flag=True, help="Only write the closed-form mean reference.")
@click.option("--force", is_flag=True, help="Redo images whose output already exists (a folder's are skipped).")
@common_options
def refs(input, output, n, sampler, seed, mean_only, force, quiet, debug, max_pixels):
    """Write stochastic derained references: OUTDIR/<stem>/<k>.png and the closed-form mean OUTDIR/<stem>.png.

    A folder's images whose references are all written are skipped (--force redoes them):
    the mean is written first and the references after it, so an image is done when its
    last reference (OUTDIR/<stem>/<n-1>.png; with --mean-only, the mean) exists.

    \b
    Example:
      rain2avoid refs rainy.png -o refs/ --n 50 --sampler nss
    """
    from ..ldgp import rain_mask
    from ..pipeline import to_uint8
    from ..sdr import expected_reference, sample_references
    ctx = Context(quiet, debug, max_pixels)
    files, folder = list_inputs(input)

    def work(src: Path, last: Path) -> None:
        rgb8 = to_uint8(to_float_rgb(ctx.read(src)))
        m = rain_mask(rgb8).mask
        mean = output / f"{src.stem}.png"
        write_image(mean, np.clip(np.round(expected_reference(rgb8, m, sampler)), 0, 255).astype(np.uint8))
        if not mean_only:
            for k, ref in enumerate(sample_references(rgb8, m, n, sampler, seed=seed)):
                write_image(output / src.stem / f"{k}.png", ref)   # the last one marks the image done
        ctx.say(f"{src.name} -> {mean}" + ("" if mean_only else f" and {n} references in {output / src.stem}"))

    def last(src: Path) -> Path:
        return output / f"{src.stem}.png" if mean_only else output / src.stem / f"{n - 1}.png"

    check_outputs([Job(f, output / f"{f.stem}.png") for f in files], None)   # the means: none may be an input
    run_jobs(ctx, [Job(f, last(f)) for f in files], work, "refs", force=force or not folder)

