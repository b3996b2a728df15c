"""`nnp md INPUT` / `nnp md --resume RUNDIR`: molecular dynamics that checkpoints and resumes exactly.

Every setting's default comes from :class:`nnpcalc.workflows.md_settings.MDSettings` (stated
once there, with its reason); this module only names the options and their types.
"""

from __future__ import annotations

import click
from click.core import ParameterSource

from nnpcalc.workflows.choices import DTYPES, ENGINES, ENSEMBLES, UNCERTAINTY_ACTIONS
from nnpcalc.workflows.md_settings import DEFAULTS

from ._options import (AT_LEAST_ONE, COUNT, FINITE, NOT_NEGATIVE, POSITIVE, device_option, model_option, quiet_option,
                       show_progress)


def setting(name: str, flag: str, kind, help: str):
    """An option for the MDSettings field ``name``, with the dataclass's default."""
    return click.option(flag, name, type=kind, default=getattr(DEFAULTS, name), show_default=True, help=help)


#: MDSettings fields the command line sets, in --help order
SETTINGS = [
    setting("ensemble", "--ensemble", click.Choice(ENSEMBLES), "Ensemble (docs/cli.md: the integrator of each engine)."),
    setting("engine", "--engine", click.Choice(ENGINES), "ASE integrators, or OpenMM."),
    setting("temperature_K", "--temperature-K", NOT_NEGATIVE,
            "Thermostat target, and the temperature of the starting velocities, in K."),
    setting("pressure_GPa", "--pressure-GPa", FINITE, "npt pressure in GPa."),
    setting("timestep_fs", "--timestep-fs", POSITIVE, "Time step in fs."),
    setting("seed", "--seed", COUNT, "Seed of velocities and thermostat noise."),
    setting("trajectory", "--trajectory", str,
            "Trajectory file name in the run directory (.extxyz or .traj; OpenMM also .dcd, .xtc)."),
    setting("trajectory_interval", "--trajectory-interval", AT_LEAST_ONE, "Steps between frames."),
    setting("log_interval", "--log-interval", AT_LEAST_ONE, "Steps between log lines."),
    setting("checkpoint_interval", "--checkpoint-interval", AT_LEAST_ONE, "Steps between checkpoints (both engines)."),
    setting("friction_per_fs", "--friction-per-fs", POSITIVE, "Langevin friction in 1/fs."),
    setting("tau_t_fs", "--tau-t-fs", POSITIVE, "Nose-Hoover/Bussi/MTK thermostat time in fs."),
    setting("tau_p_fs", "--tau-p-fs", POSITIVE, "MTK barostat time in fs (ASE engine)."),
    setting("barostat_interval", "--barostat-interval", AT_LEAST_ONE,
            "Steps between Monte Carlo volume moves (OpenMM engine, npt)."),
    setting("fused_distance_factor", "--fused-distance-factor", click.FloatRange(min=0, max=1, max_open=True),
            "Stop when two atoms come closer than this × the sum of their covalent radii (0: never)."),
    setting("max_uncertainty", "--max-uncertainty", NOT_NEGATIVE,
            "eV/Å: act when an atom's predicted force error (forces_uncertainty) exceeds this, checked every "
            "trajectory frame; models with an uncertainty head (docs/uncertainty.md); 0: not watched."),
    setting("uncertainty_action", "--uncertainty-action", click.Choice(UNCERTAINTY_ACTIONS),
            "Above --max-uncertainty: warn (flag), also append the frame to uncertain.extxyz for labelling "
            "(save), or save it and stop the run (stop)."),
    setting("dtype", "--dtype", click.Choice(DTYPES), "Precision the model runs in."),
    device_option,  # MDSettings.device; a resume may change it
]


def settings_options(command):
    for option in reversed(SETTINGS):
        command = option(command)
    return command


@click.command("md")
@click.argument("input", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--resume", "rundir", type=click.Path(exists=True, file_okay=False),
              help="Continue the run in RUNDIR from its last checkpoint (after a stop, crash or kill -9).")
@click.option("-o", "--output-dir", default="md-run", show_default=True,
              help="Run directory: run.json, md.log, the trajectory and checkpoint.npz.")
@click.option("--overwrite", is_flag=True, help="Replace the earlier run that --output-dir holds.")
@model_option
@click.option("--steps", type=COUNT, help=f"Number of steps (default {DEFAULTS.steps}). With --resume: the new total.")
@click.option("--time-ps", "time_ps", type=NOT_NEGATIVE, help="Simulated time in ps (instead of --steps).")
@settings_options
@quiet_option
@click.pass_context
def command(ctx, input, rundir, output_dir, overwrite, model, steps, time_ps, quiet, **options):
    """Run MD of the structure in INPUT (its last frame), or continue a run with --resume RUNDIR.

    Writes md.log (time, potential, kinetic, total and conserved energy, temperature, pressure,
    volume) and the trajectory as it runs. A run whose forces or temperature explode, or whose
    atoms fuse, stops with a message, keeping everything written so far. A resume continues the
    run exactly as it was set up: options that would change it are refused.
    """
    progress = show_progress(quiet)
    if rundir is not None:
        result = _resume(ctx, input, rundir, model, steps, time_ps, progress, options)
    elif input is None:
        raise click.UsageError("give the structure file INPUT, or --resume RUNDIR")
    else:
        from nnpcalc.workflows import io
        from nnpcalc.workflows.md import run_md

        atoms = io.read_structures([input])[-1]  # a trajectory continues from its last frame
        result = run_md(atoms, model, outdir=output_dir, steps=steps, time_ps=time_ps, overwrite=overwrite,
                        progress=progress, **options)
    speed = f" at {result.ns_per_day:.3g} ns/day" if result.ns_per_day else ""
    click.echo(f"{result.steps} steps{speed} in {result.outdir}: "
               + ", ".join(p.name for p in result.files.values() if p.exists()))


def _resume(ctx, input, rundir, model, steps, time_ps, progress, options):
    """Resume: only what the user typed is compared with the run's settings (a change is refused)."""
    from nnpcalc.workflows.md import resume_md, step_count
    from nnpcalc.workflows.md_rundir import open_rundir, read_settings

    if input is not None:
        raise click.UsageError("give INPUT or --resume RUNDIR, not both")
    typed = {name for name in ("output_dir", "overwrite") if _typed(ctx, name)}
    if typed:
        raise click.UsageError("--resume RUNDIR continues in RUNDIR; -o/--output-dir and --overwrite are for a new run")
    total = None
    if steps is not None or time_ps is not None:
        total = step_count(steps, time_ps, read_settings(open_rundir(rundir)).timestep_fs)
    changes = {name: value for name, value in options.items() if _typed(ctx, name)}
    return resume_md(rundir, steps=total, model=model, progress=progress, **changes)


def _typed(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
