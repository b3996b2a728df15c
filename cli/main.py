"""Entry point of `nnp`. Imports no torch: each command's module loads on first use.

The program's process-wide choices are made here, once, before a command runs: glibc keeps
freed memory for reuse (``nnpcalc.allocator``; ``NNPCALC_MALLOC=system`` opts out) and models
use the "auto" thread policy (``nnpcalc.threads``: small graphs on one torch thread).

Errors a command raises become one line (``Error: ...``) and exit status 1; ``nnp --debug
COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import importlib

import click

from nnpcalc import __version__

#: command name → module under nnpcalc.cli that defines `command`
COMMANDS = {
    "check": "nnpcalc.cli.check",
    "compile": "nnpcalc.cli.compile",
    "eval": "nnpcalc.cli.eval",
    "export": "nnpcalc.cli.export",
    "info": "nnpcalc.cli.info",
    "learn": "nnpcalc.cli.learn",
    "md": "nnpcalc.cli.md",
    "phonons": "nnpcalc.cli.phonons",
    "relax": "nnpcalc.cli.relax",
    "train": "nnpcalc.cli.train",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except Exception as err:  # noqa: BLE001 - every other error becomes one line
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(one_line(err)) from err


def one_line(err: Exception) -> str:
    """The error's message on one line; errors nnpcalc did not anticipate also say their type."""
    from nnpcalc.errors import NNPError

    message = " ".join(str(err).split()) or type(err).__name__
    expected = isinstance(err, (NNPError, ValueError, OSError, ImportError))
    return message if expected else f"{type(err).__name__}: {message} (rerun with `nnp --debug ...` for the traceback)"


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="nnp")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error instead of one line.")
def main(debug):
    """nnpcalc: run neural-network interatomic potentials."""
    from nnpcalc import allocator, threads

    allocator.keep_freed_memory()
    threads.set_program_policy("auto")
