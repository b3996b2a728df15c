"""`nnp check MODEL [STRUCTURE]`: the model's physics self-check as a pass/fail table."""

from __future__ import annotations

import click

from ._options import COUNT, POSITIVE, device_option, dtype_option, quiet_option, show_progress, table


@click.command("check")
@click.argument("model")
@click.argument("structure", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--nve-steps", type=COUNT, default=100, show_default=True, help="Steps of the NVE energy check (0: skip).")
@click.option("--scans/--no-scans", default=True, show_default=True,
              help="Dimer walls from 0.5 Å for every element pair, bond and cell compressions.")
@click.option("--md-steps", type=COUNT, default=200, show_default=True,
              help="Steps (0.5 fs) of the Langevin MD per structure that watches for fused atoms (0: skip).")
@click.option("--md-temperature-K", "md_temperature_K", type=POSITIVE, default=300.0, show_default=True,
              help="Temperature of that MD.")
@dtype_option
@device_option
@quiet_option
def command(model, structure, nve_steps, scans, md_steps, md_temperature_K, dtype, device, quiet):
    """Self-check MODEL's physics as a pass/fail table.

    Finite-difference forces and stress, rotation/translation/lattice-image invariance,
    supercell extensivity, charge neutrality and NVE energy conservation; and the holes a
    model can have off equilibrium: dimer and bond walls, and a short MD (also of a periodic
    water box or a metal slab and vacancy cell) that fails when two atoms fuse.

    Uses the frames of STRUCTURE, or small built-in structures of the model's elements.
    Exits with status 1 when a check fails.
    """
    from nnpcalc.workflows import io
    from nnpcalc.workflows.check import check

    structures = io.read_structures([structure]) if structure else None
    rows = check(model, structures, dtype=dtype, device=device, nve_steps=nve_steps, scans=scans,
                 md_steps=md_steps, md_temperature_K=md_temperature_K, progress=show_progress(quiet))
    click.echo(table(["structure", "check", "error", "tolerance", "result"],
                     [[r.structure, r.check.name, r.check.error, r.check.tolerance, "pass" if r.passed else "FAIL"]
                      for r in rows]))
    failed = sum(not r.passed for r in rows)
    if failed:
        raise click.ClickException(f"{failed} of {len(rows)} checks failed")
    click.echo(f"all {len(rows)} checks passed")
