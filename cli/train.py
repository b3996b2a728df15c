"""`nnp train CONFIG`: train (or resume) a model from a YAML config."""

from __future__ import annotations

import click

from ._options import AT_LEAST_ONE, COUNT


@click.command("train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--devices", type=AT_LEAST_ONE, help="Processes/devices for data-parallel training (DDP).")
@click.option("--num-nodes", type=AT_LEAST_ONE, help="Nodes for multi-node DDP.")
@click.option("--max-epochs", type=COUNT, help="Override trainer.max_epochs.")
def command(config, devices, num_nodes, max_epochs):
    """Train the model described by CONFIG; resumes from RUN_DIR/checkpoints/last.ckpt if present.

    Writes checkpoints, CSV and TensorBoard logs to the config's run_dir, evaluates the best
    checkpoint on the test split, and exports the model file to `output` when set.
    """
    import json

    from nnpcalc.training.train import train

    summary = train(config, devices=devices, num_nodes=num_nodes, max_epochs=max_epochs)
    click.echo(json.dumps(summary, indent=1))
