"""`nnp export CHECKPOINT -o model.pt`: a training checkpoint as a model file."""

from __future__ import annotations

import click

from ._options import writable_file


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=writable_file,
              help="Model file to write (.pt).")
def command(checkpoint, output):
    """Export CHECKPOINT (from `nnp train`, or torchmd-net's `torchmd-train`) to a model file."""
    from nnpcalc.training.export import export_any

    click.echo(f"wrote {export_any(checkpoint, output)}")
