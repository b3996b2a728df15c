"""Options and output helpers the commands share (no torch here: `nnp --help` stays fast)."""

from __future__ import annotations

import math
import sys

import click

from nnpcalc.workflows.choices import DTYPES


class Number(click.FloatRange):
    """A finite float (no NaN, no inf) within click's FloatRange bounds."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


#: the numeric option types the commands share
FINITE = Number()
POSITIVE = Number(min=0, min_open=True)
NOT_NEGATIVE = Number(min=0)
COUNT = click.IntRange(min=0)
AT_LEAST_ONE = click.IntRange(min=1)


def writable_file(ctx, param, value):
    """Option callback: refuse, before any work, an output file that cannot be written."""
    return _writable(value, folder=False)


def writable_folder(ctx, param, value):
    """Option callback: refuse, before any work, an output folder that cannot be created or written."""
    return _writable(value, folder=True)


def _writable(value, folder: bool):
    from nnpcalc.errors import OutputPathError
    from nnpcalc.workflows.io import check_writable

    if not value:
        return value
    try:
        check_writable(value, folder=folder)
    except OutputPathError as err:
        raise click.BadParameter(str(err)) from err
    return value


model_option = click.option(
    "-m", "--model", default=None, metavar="MODEL",
    help="Model file or shipped model name (`nnp info` lists them). Default: the shipped default model.")
dtype_option = click.option(
    "--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
    help="Precision the model runs in.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def checked_device(ctx, param, value):
    """Option callback: refuse, before any work, a device this machine does not have (cuda without CUDA)."""
    if value == "cpu":
        return value  # no torch import at parse time for the default
    from nnpcalc.errors import DeviceError
    from nnpcalc.validation import check_device

    try:
        check_device(value)
    except DeviceError as err:
        raise click.BadParameter(str(err)) from err
    return value


device_option = click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE", callback=checked_device,
    help="Torch device the model runs on: cpu, cuda or cuda:N (checked before any work).")


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
