"""Options and output helpers the commands share (no torch here: `nnp --help` stays fast)."""

from __future__ import annotations

import sys

import click

from nnpcalc.workflows.choices import DTYPES

model_option = click.option(
    "-m", "--model", default=None, metavar="MODEL",
    help="Model file or shipped model name (`nnp info` lists them). Default: the shipped default model.")
dtype_option = click.option(
    "--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
    help="Precision the model runs in.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with --quiet, not into a pipe or file."""
    return not quiet and sys.stderr.isatty()


def table(headers: list[str], rows: list[list]) -> str:
    """A plain-text table: numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
