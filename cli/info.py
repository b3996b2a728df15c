"""`nnp info [MODEL]`: a model file's metadata, or the list of shipped models."""

from __future__ import annotations

import json

import click


@click.command("info")
@click.argument("model", required=False)
def command(model):
    """Print MODEL's metadata (a path or shipped name); without MODEL, list shipped models."""
    from nnpcalc import modelfile, zoo
    from nnpcalc.errors import NNPError

    if model is None:
        for name in zoo.available():
            meta = modelfile.read_metadata(zoo.path_of(name))
            default = " (default)" if name == zoo.DEFAULT else ""
            click.echo(f"{name}{default}: {', '.join(meta['elements'])}; cutoff {meta['cutoff']} Å")
        return
    try:
        click.echo(json.dumps(modelfile.read_metadata(zoo.resolve(model)), indent=2))
    except NNPError as err:
        raise click.ClickException(str(err)) from err
