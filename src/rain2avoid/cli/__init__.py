"""Command line: a thin layer over the Python API, one module per group of commands.

Exit codes: 0 all done, 1 some files failed (each reported, the rest done),
2 usage errors (bad flags, output equal to input, ...), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM).
"""

from __future__ import annotations

import warnings

import click

from .. import __version__
from .demo import demo
from .evaluate import MAX_PSNR, evaluate
from .images import apply, derain, mask, refs, train
from .report import report
from .serve import serve

__all__ = ["main", "MAX_PSNR"]


class _Commands(click.Group):
    """The command group, where a Ctrl-C that no command handled (while it starts, before
    its work) ends the run with an "interrupted" line and exit code 130, as the commands'
    own do, instead of click's "Aborted!" and exit code 1; and where a library's warning
    (Pillow's "Corrupt EXIF data", say) is one "warning:" line, as the commands' own are,
    not two lines naming a file inside the library."""

    def invoke(self, ctx: click.Context):
        said: set[str] = set()

        def one_line(message, category, filename, lineno, file=None, line=None) -> None:
            text = " ".join(str(message).split())
            if text not in said:   # a file's damage is met each time it is read: said once
                said.add(text)
                click.echo(f"warning: {text}", err=True)

        try:
            with warnings.catch_warnings():
                warnings.showwarning = one_line
                return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rain2avoid")
def main():
    """Remove rain streaks from photos, learning from each rainy image itself (Rain2Avoid).

    \b
    Examples:
      rain2avoid demo                          # try it on a built-in example
      rain2avoid derain rainy.jpg -o clean.jpg
      rain2avoid derain photos/ -o derained/
      rain2avoid derain clip.mp4 -o derained.mp4   # videos: pip install "rain2avoid[video]"
      rain2avoid eval --pred derained/ --target clean/
      rain2avoid report rainy/ derained/ -o report.html
      rain2avoid serve                         # a web page at http://127.0.0.1:8000/
    """


for _command in (derain, train, apply, mask, refs, evaluate, report, demo, serve):
    main.add_command(_command)
