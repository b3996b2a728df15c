"""`nnp phonons INPUT --supercell 2 2 2`: phonopy band structure, DOS and thermal properties."""

from __future__ import annotations

import click

from ._options import (AT_LEAST_ONE, NOT_NEGATIVE, POSITIVE, device_option, dtype_option, model_option, quiet_option,
                       show_progress, table, writable_folder)


@click.command("phonons")
@click.argument("input", type=click.Path(exists=True, dir_okay=False))
@click.option("--supercell", nargs=3, type=AT_LEAST_ONE, default=(2, 2, 2), show_default=True,
              help="Repetitions of the cell along a, b, c for the force constants.")
@click.option("-o", "--output-dir", default="phonons", show_default=True, callback=writable_folder,
              help="Where band.png, band.csv, dos.csv, thermal.csv and phonopy_params.yaml go.")
@model_option
@click.option("--displacement-A", "displacement_A", type=POSITIVE, default=0.01, show_default=True,
              help="Atomic displacement in Å.")
@click.option("--mesh", nargs=3, type=AT_LEAST_ONE, default=None, help="q-point mesh for DOS and thermal properties "
              "(default: from a 30 Å sampling length).")
@click.option("--t-max-K", "t_max_K", type=NOT_NEGATIVE, default=1000.0, show_default=True, help="Highest temperature, K.")
@click.option("--t-step-K", "t_step_K", type=POSITIVE, default=10.0, show_default=True, help="Temperature step, K.")
@dtype_option
@device_option
@quiet_option
def command(input, supercell, output_dir, model, displacement_A, mesh, t_max_K, t_step_K, dtype, device, quiet):
    """Phonon bands, DOS and thermal properties of the crystal in INPUT.

    Force constants from finite displacements with phonopy; relax the crystal first (with
    --cell). Warns when there are imaginary modes.
    """
    import warnings

    from nnpcalc.workflows import io
    from nnpcalc.workflows.phonons import imaginary_warning, phonons

    atoms = io.read_structures([input])[-1]
    with warnings.catch_warnings():  # said once below, as a line of its own
        warnings.filterwarnings("ignore", message="imaginary modes")
        result = phonons(atoms, model, supercell=supercell, displacement=displacement_A, mesh=mesh or 30.0,
                         t_max=t_max_K, t_step=t_step_K, dtype=dtype, device=device,
                         progress=show_progress(quiet))
    files = result.write(output_dir)
    t = result.thermal
    rows = [[float(t["temperature_K"][i]), float(t["free_energy_kJ_per_mol"][i]), float(t["entropy_J_per_K_mol"][i]),
             float(t["heat_capacity_J_per_K_mol"][i])] for i in _near(t["temperature_K"], (100, 300, 1000))]
    click.echo(table(["T (K)", "F (kJ/mol)", "S (J/K/mol)", "Cv (J/K/mol)"], rows))
    click.echo(f"lowest frequency {result.min_frequency_THz:.4g} THz; wrote "
               + ", ".join(str(p) for p in files.values()))
    if result.has_imaginary_modes:
        click.echo(f"Warning: {imaginary_warning(result)}", err=True)


def _near(temperatures, wanted) -> list[int]:
    import numpy as np

    return sorted({int(np.abs(np.asarray(temperatures) - w).argmin()) for w in wanted})
