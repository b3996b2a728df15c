"""`nnp check MODEL [STRUCTURE]`: the model's physics self-check as a pass/fail table."""

from __future__ import annotations

import click

from ._options import dtype_option, quiet_option, show_progress, table


@click.command("check")
@click.argument("model")
@click.argument("structure", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--nve-steps", type=int, default=100, show_default=True, help="Steps of the NVE energy check (0: skip).")
@dtype_option
@quiet_option
def command(model, structure, nve_steps, dtype, quiet):
    """Self-check MODEL's physics as a pass/fail table.

    Finite-difference forces and stress, rotation/translation/lattice-image invariance,
    supercell extensivity, charge neutrality and NVE energy conservation.

    Uses the frames of STRUCTURE, or small built-in structures of the model's elements.
    Exits with status 1 when a check fails.
    """
    from nnpcalc.workflows import io
    from nnpcalc.workflows.check import check

    structures = io.read_structures([structure]) if structure else None
    rows = check(model, structures, dtype=dtype, nve_steps=nve_steps, progress=show_progress(quiet))
    click.echo(table(["structure", "check", "error", "tolerance", "result"],
                     [[r.structure, r.check.name, r.check.error, r.check.tolerance, "pass" if r.passed else "FAIL"]
                      for r in rows]))
    failed = sum(not r.passed for r in rows)
    if failed:
        raise click.ClickException(f"{failed} of {len(rows)} checks failed")
    click.echo(f"all {len(rows)} checks passed")
