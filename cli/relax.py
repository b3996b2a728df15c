"""`nnp relax INPUT... [-o OUT]`: relax positions (and the cell) of every structure, as one batch."""

from __future__ import annotations

from pathlib import Path

import click

from nnpcalc.workflows.choices import OPTIMIZERS

from ._options import (COUNT, FINITE, POSITIVE, device_option, dtype_option, model_option, quiet_option, show_progress,
                       table, writable_file)


@click.command("relax")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), callback=writable_file,
              help="Where to write the relaxed structures; the format comes from the extension "
                   "(.extxyz, .traj, .cif, POSCAR/.vasp, ...). Default: FIRST-INPUT-relaxed.extxyz.")
@model_option
@click.option("--optimizer", type=click.Choice(OPTIMIZERS, case_sensitive=False), default="FIRE", show_default=True)
@click.option("--fmax", type=POSITIVE, default=0.05, show_default=True,
              help="Converged when the largest force (and cell force with --cell) is below this, in eV/Å.")
@click.option("--steps", type=COUNT, default=500, show_default=True, help="Most optimizer steps per structure.")
@click.option("--cell", is_flag=True, help="Relax the cell too (ASE FrechetCellFilter).")
@click.option("--pressure-GPa", "pressure_GPa", type=FINITE, default=0.0, show_default=True,
              help="External pressure for --cell, in GPa.")
@click.option("--fix-symmetry", is_flag=True, help="Keep the space group while relaxing (needs spglib).")
@click.option("--trajectory", type=click.Path(dir_okay=False), callback=writable_file,
              help="Write every step (.extxyz or .traj); NAME-i.ext per structure when there are several.")
@dtype_option
@device_option
@quiet_option
def command(inputs, output, model, optimizer, fmax, steps, cell, pressure_GPa, fix_symmetry, trajectory, dtype, device,
            quiet):
    """Relax every structure (all frames of all INPUT files) in one batch.

    Prints energy, largest force, volume, steps and convergence per structure; exits with
    status 1, naming them, when some did not converge within --steps.
    """
    from nnpcalc.workflows import io
    from nnpcalc.workflows.relax import relax

    output = output or writable_file(None, None, f"{Path(inputs[0]).stem}-relaxed.extxyz")
    io.output_format(Path(output))  # an unknown format is refused before the work, not after
    structures = io.read_structures(inputs)
    results = relax(structures, model, fmax=fmax, steps=steps, optimizer=optimizer, cell=cell,
                    pressure_GPa=pressure_GPa, fix_symmetry=fix_symmetry, trajectory=trajectory, dtype=dtype,
                    device=device, progress=show_progress(quiet))
    written = io.write_structures(output, [r.atoms for r in results])
    click.echo(table(["structure", "energy (eV)", "max force (eV/Å)", "volume (Å³)", "pressure (GPa)", "steps", "converged"],
                     [[r.name, r.energy, r.max_force, r.volume, r.pressure_GPa, r.steps, r.converged] for r in results]))
    click.echo(f"wrote {', '.join(str(p) for p in written)}")
    failed = [r.name for r in results if not r.converged]
    if failed:
        raise click.ClickException(f"not converged within {steps} steps (fmax {fmax} eV/Å): {', '.join(failed)}")
