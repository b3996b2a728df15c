"""`nnp md INPUT` / `nnp md --resume RUNDIR`: molecular dynamics that checkpoints and resumes exactly."""

from __future__ import annotations

import click

from nnpcalc.workflows.choices import DTYPES, ENGINES, ENSEMBLES

from ._options import model_option, quiet_option, show_progress


@click.command("md")
@click.argument("input", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--resume", "rundir", type=click.Path(exists=True, file_okay=False),
              help="Continue the run in RUNDIR from its last checkpoint (after a stop, crash or kill -9).")
@click.option("-o", "--output-dir", default="md-run", show_default=True,
              help="Run directory: run.json, md.log, the trajectory and checkpoint.npz.")
@click.option("--overwrite", is_flag=True, help="Replace what --output-dir holds.")
@model_option
@click.option("--ensemble", type=click.Choice(ENSEMBLES), default="nve", show_default=True)
@click.option("--temperature-K", "temperature_K", type=float, default=300.0, show_default=True,
              help="Thermostat target, and the temperature of the starting velocities, in K.")
@click.option("--pressure-GPa", "pressure_GPa", type=float, default=0.0, show_default=True,
              help="npt pressure in GPa.")
@click.option("--timestep-fs", "timestep_fs", type=float, default=0.5, show_default=True, help="Time step in fs.")
@click.option("--steps", type=int, help="Number of steps (default 1000). With --resume: the new total.")
@click.option("--time-ps", "time_ps", type=float, help="Simulated time in ps (instead of --steps).")
@click.option("--engine", type=click.Choice(ENGINES), default="ase", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of velocities and thermostat noise.")
@click.option("--trajectory", default="trajectory.extxyz", show_default=True,
              help="Trajectory file name in the run directory (.extxyz or .traj; OpenMM writes DCD).")
@click.option("--trajectory-interval", type=int, default=10, show_default=True, help="Steps between frames.")
@click.option("--log-interval", type=int, default=10, show_default=True, help="Steps between log lines.")
@click.option("--checkpoint-interval", type=int, default=100, show_default=True, help="Steps between checkpoints.")
@click.option("--friction-per-fs", "friction_per_fs", type=float, default=0.01, show_default=True,
              help="Langevin friction in 1/fs.")
@click.option("--tau-t-fs", "tau_t_fs", type=float, default=100.0, show_default=True,
              help="Nose-Hoover/Bussi/MTK thermostat time in fs.")
@click.option("--tau-p-fs", "tau_p_fs", type=float, default=1000.0, show_default=True, help="MTK barostat time in fs.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True)
@quiet_option
def command(input, rundir, output_dir, overwrite, model, engine, steps, time_ps, quiet, **options):
    """Run MD of the structure in INPUT (its last frame), or continue a run with --resume RUNDIR.

    Writes md.log (time, potential, kinetic, total and conserved energy, temperature, pressure,
    volume) and the trajectory as it runs. A run whose forces or temperature explode stops
    with a message, keeping everything written so far.
    """
    from nnpcalc.workflows import io
    from nnpcalc.workflows.md import resume_md, run_md, step_count
    from nnpcalc.workflows.md_state import read_settings

    progress = show_progress(quiet)
    if rundir is not None:
        if input is not None:
            raise click.UsageError("give INPUT or --resume RUNDIR, not both")
        total = None
        if steps is not None or time_ps is not None:
            total = step_count(steps, time_ps, read_settings(rundir).timestep_fs)
        result = resume_md(rundir, steps=total, progress=progress)
    elif input is None:
        raise click.UsageError("give the structure file INPUT, or --resume RUNDIR")
    else:
        atoms = io.read_structures([input])[-1]  # a trajectory continues from its last frame
        result = run_md(atoms, model, outdir=output_dir, steps=steps, time_ps=time_ps, engine=engine,
                        overwrite=overwrite, progress=progress, **options)
    speed = f" at {result.ns_per_day:.3g} ns/day" if result.ns_per_day else ""
    click.echo(f"{result.steps} steps{speed} in {result.outdir}: "
               + ", ".join(p.name for p in result.files.values() if p.exists()))

