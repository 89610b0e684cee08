"""`rain2avoid report`: one self-contained HTML page of inputs, results, masks and scores."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (
    Context,
    common_options,
    interrupted_exit_code,
    make_folder,
    sigterm_as_interrupt,
)

FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command()
@click.argument("inputs", type=FOLDER)
@click.argument("outputs", type=FOLDER)
@click.option("--target", type=FOLDER, help="Folder of clean images: adds PSNR/SSIM (Y) of input and result.")
@click.option("--masks", type=FOLDER,
              help="Folder of rain masks, <stem>_mask.png (derain --save-intermediates), or <stem>.png "
                   "(rain2avoid mask) in a folder other than INPUTS, OUTPUTS and --target. An image "
                   "without a mask file there is reported and shown with the computed mask. "
                   "Default: compute the guarded LDGP mask of each input.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML file to write (.html).")
@click.option("--max-width", type=click.IntRange(min=16), default=1200, show_default=True,
              help="Pictures wider than this are shrunk to it in the page.")
@click.option("--title", default="rain2avoid report", show_default=True, help="Title of the page.")
@common_options
def report(inputs, outputs, target, masks, output, max_width, title, quiet, debug, max_pixels):
    """Make one self-contained HTML page showing what deraining did to a folder.

    For each image of INPUTS and its result in OUTPUTS (paired by file stem):
    input | result | rain mask, a before/after slider, NIQE and BRISQUE of both,
    and PSNR/SSIM with --target; a result that is its input, unchanged (no rain
    found), says so. A score undefined for an image (NIQE needs 192x96 pixels)
    shows as n/a, with a note saying why. A summary on top gives the means and how many images
    improved. Pictures are embedded: the page can be mailed or archived
    alone. Missing or unreadable files, and names held by two files of a folder
    (a.png and a.jpg), are reported and left out (exit code 1). The page is
    written at the end, whole: Ctrl-C leaves no file (exit code 130).

    \b
    Examples:
      rain2avoid derain rainy/ -o derained/ --save-intermediates
      rain2avoid report rainy/ derained/ --masks derained/ -o report.html
      rain2avoid report rainy/ derained/ --target clean/ -o report.html
    """
    from ..report import NoImages, build_report
    if output.suffix.lower() not in (".html", ".htm"):
        raise click.UsageError(f"output {output} should end in .html (the report is one HTML page)")
    ctx = Context(quiet, debug, max_pixels)
    make_folder(output.parent)  # a folder that cannot be written fails now, not after the work
    problems = []

    def on_problem(line: str) -> None:
        problems.append(line)
        if not quiet:
            click.echo(f"warning: {line}", err=True)

    def on_note(line: str) -> None:   # a score shown as n/a, results without an input: not failures
        if not quiet:
            click.echo(f"note: {line}", err=True)

    try:
        with sigterm_as_interrupt():
            result = build_report(inputs, outputs, output, target=target, masks=masks, max_width=max_width,
                                  title=title, max_pixels=max_pixels, progress=ctx.bars, on_problem=on_problem,
                                  on_note=on_note)
    except KeyboardInterrupt as e:  # the page is written at the end, atomically: nothing half-written is left
        click.echo(f"interrupted: {output} not written", err=True)
        sys.exit(interrupted_exit_code(e))
    except NoImages as e:   # nothing to do: a usage error, as derain says it
        raise click.UsageError(str(e))
    except (ValueError, OSError) as e:
        if debug:
            raise
        raise click.ClickException(" ".join(str(e).split()))
    ctx.say(f"{output}: {len(result.images)} image(s)"
            + (f", {len(problems)} problem(s) reported above" if problems else ""))
    if problems:
        sys.exit(1)
