"""Molecular dynamics that writes as it goes, checkpoints, resumes exactly and stops when it explodes.

:func:`run_md` starts a run in a directory, :func:`resume_md` continues one (after a stop, a
crash or ``kill -9``) from its last checkpoint; with the same seed the resumed trajectory is
the uninterrupted one (to the last bit in our float64 tests, or to within 1e-10 where the
resumed process's first TorchScript calls round differently). One settings object,
:class:`~.md_settings.MDSettings`, drives both engines; ``engine="openmm"`` hands the run to
``nnpcalc.openmm.simulate``. The run directory and its rules: :mod:`.md_rundir`; checkpoints:
:mod:`.md_state`; ensembles: :mod:`.md_ensembles`; what stops a run: :mod:`.md_watch`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from ..calculator import NNPCalculator
from ..errors import InvalidStructureError, OptionError, SimulationError
from ..runtime import Model
from ..units import EV_PER_A3_TO_GPA, FS_TO_NS, PS_TO_FS, SECONDS_PER_DAY
from . import io
from . import md_ensembles as ens
from . import md_rundir as rd
from . import md_state as state
from .common import as_model, progress_bar
from .md_resume import prepare_resume
from .md_settings import MDSettings, make_settings
from .md_watch import fused_atoms, why_stop
from .uncertainty_watch import md_watcher, require_uncertainty


@dataclass
class MDResult:
    outdir: Path
    steps: int  #: steps done in total, over every resume
    atoms: Atoms | None  #: the final state, with momenta
    ns_per_day: float | None = None
    files: dict[str, Path] = field(default_factory=dict)


def run_md(structure, model: str | Path | Model | None = None, *, outdir: str | Path = "md-run",
           steps: int | None = None, time_ps: float | None = None, overwrite: bool = False,
           progress: bool = False, settings: MDSettings | None = None, **options) -> MDResult:
    """Run MD of ``structure`` (ASE atoms or pymatgen) in ``outdir``.

    ``settings`` (an :class:`MDSettings`) or ``options`` (its fields, overriding ``settings``):
    ``engine`` ("ase" or "openmm"), ``ensemble`` (nve, nvt-langevin, nvt-nose-hoover, nvt-bussi,
    npt), ``temperature_K``, ``pressure_GPa``, ``timestep_fs``, ``seed``, ``trajectory`` (file
    name), the intervals, thermostat/barostat times, ``dtype``, ``device``. Give ``steps`` or
    ``time_ps`` (default: the ``settings``' steps, else 1000). Starting velocities: the structure's own momenta if it has any, else
    Maxwell-Boltzmann at ``temperature_K`` from ``seed``. An existing run in ``outdir`` is
    refused unless ``overwrite``.
    """
    atoms = io.to_atoms(structure)
    given = settings is not None
    settings = make_settings(**{**(settings or MDSettings()).as_dict(), **options})
    if steps is not None or time_ps is not None or not given:  # else: the steps of the settings given
        settings.steps = step_count(steps, time_ps, settings.timestep_fs)
    settings.validate()
    outdir = Path(outdir)
    rd.check_new_rundir(outdir, overwrite)  # before the model loads
    if settings.engine == "openmm":
        return _run_openmm(atoms, model, settings, outdir, overwrite, progress)
    model = as_model(model, settings.dtype, settings.device)
    model.check(atoms)
    if settings.max_uncertainty:  # refused before an overwrite empties the directory
        require_uncertainty(model)
    settings.model = str(Path(model.path).resolve())
    settings.model_sha256 = rd.file_sha256(settings.model)
    rng = np.random.default_rng(settings.seed)
    atoms.calc = NNPCalculator(model)
    _initial_velocities(atoms, settings.temperature_K, rng)
    dyn = ens.make_integrator(atoms, settings, rng)
    with rd.claim_new_rundir(outdir, overwrite):
        rd.write_settings(outdir, settings)
        return _Run(outdir, settings, atoms, dyn, rng).simulate(start=0, progress=progress)


def resume_md(outdir: str | Path, *, steps: int | None = None, model: str | Path | Model | None = None,
              progress: bool = False, **changes) -> MDResult:
    """Continue the run in ``outdir`` from its last checkpoint up to its total ``steps`` (or a new total).

    ``model``: the run's model file if it has moved (or a loaded Model of it); default: the file
    recorded in ``run.json``; another model is refused. ``changes``: settings given again (the
    CLI passes what was typed); a value other than the run's is refused, since a resume
    continues the run exactly: start a new run to change the physics.
    """
    rundir = rd.open_rundir(outdir)
    if rd.read_settings(rundir).engine == "openmm":  # read again under the run's lock there
        return _resume_openmm(rundir, steps, model, progress, changes)
    with rd.RunLock(rundir):
        run = prepare_resume(
            rundir, "ase",
            lambda engine: f"{rundir} was an ASE-engine run when the resume began and is now a {engine} run: "
                           "another process changed its run.json; try again",
            lambda settings: state.load_checkpoint(rundir, settings), steps, model, changes)
        settings, ckpt = run.settings, run.checkpoint
        state.cut_outputs(rundir, settings, ckpt.outputs)
        rd.write_settings(rundir, settings)
        atoms = ckpt.atoms
        atoms.calc = NNPCalculator(run.model)
        rng = state.rng_from_state(ckpt.rng_state)
        dyn = ens.make_integrator(atoms, settings, rng)
        ens.set_state(dyn, settings.ensemble, ckpt.integrator)
        return _Run(rundir, settings, atoms, dyn, rng).simulate(start=ckpt.step, progress=progress,
                                                                outputs=ckpt.outputs)


def step_count(steps: int | None, time_ps: float | None, timestep_fs: float) -> int:
    if steps is not None and time_ps is not None:
        raise OptionError(f"give steps ({steps}) or time_ps ({time_ps}), not both")
    if time_ps is not None:
        if not (isinstance(time_ps, (int, float)) and np.isfinite(time_ps) and time_ps >= 0):
            raise OptionError(f"time_ps must be a finite number >= 0, got {time_ps!r}")
        return int(round(time_ps * PS_TO_FS / timestep_fs))
    if steps is None:
        return MDSettings.steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise OptionError(f"steps must be a whole number >= 0, got {steps!r}")
    return int(steps)


def _initial_velocities(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    if np.any(atoms.get_momenta()) or temperature_K <= 0:
        return
    thermalize(atoms, temperature_K, rng)


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K`` without centre-of-mass drift."""
    from ase.md import velocitydistribution as vd

    draw = getattr(vd, "thermalize_momenta", vd.MaxwellBoltzmannDistribution)  # the former from ASE 3.29
    draw(atoms, temperature_K=temperature_K, rng=rng)
    if len(atoms) > 1:  # one atom: removing its momentum leaves no temperature to restore
        vd.Stationary(atoms)


class _Run:
    """One run in progress: the integrator, the open output files and the step loop."""

    def __init__(self, rundir: Path, settings: MDSettings, atoms: Atoms, dyn, rng):
        self.rundir, self.settings, self.atoms, self.dyn, self.rng = rundir, settings, atoms, dyn, rng
        self.watch = md_watcher(rundir, settings, atoms.calc.model)  # --max-uncertainty, or None

    def simulate(self, start: int, progress: bool, outputs: dict | None = None) -> MDResult:
        s = self.settings
        with state.Outputs(self.rundir, s, outputs) as out, \
                progress_bar(s.steps, f"md {s.ensemble}", progress, initial=start) as bar:
            if outputs is None:  # a fresh run; a resume (even from step 0) has step 0 already
                self._stop_if(0, out, fused_atoms(self.atoms, s.fused_distance_factor))  # a fused start
                self._record(0, out, checkpoint=True)
            speed = _Speed(s.timestep_fs)
            for step in range(start + 1, s.steps + 1):
                self._step(step)
                self._check_sane(step, out)
                self._stop_if(step, out, self.watch.check(self.atoms, step) if self.watch else None)
                self._record(step, out, checkpoint=step % s.checkpoint_interval == 0 or step == s.steps)
                bar.update(1)
                if step % s.log_interval == 0:
                    bar.set_postfix_str(f"{speed.ns_per_day(step - start):.3g} ns/day")
        files = {"settings": self.rundir / rd.SETTINGS, "log": self.rundir / rd.LOG,
                 "trajectory": self.rundir / s.trajectory, "checkpoint": self.rundir / rd.CHECKPOINT}
        return MDResult(self.rundir, max(start, s.steps), io.snapshot(self.atoms),
                        speed.ns_per_day(max(s.steps - start, 0)), files)

    def _step(self, step: int) -> None:
        try:
            self.dyn.step()
        except InvalidStructureError as err:  # the runtime refuses the new geometry (overlapping nuclei)
            self._write_exploded()
            raise stopped(step, self.settings.timestep_fs, str(err), self.rundir) from err

    def _write_exploded(self) -> None:
        with io.FrameWriter(rd.inside(self.rundir, rd.EXPLODED), "w") as writer:
            writer.write(self.atoms)

    def _record(self, step: int, out: state.Outputs, checkpoint: bool) -> None:
        s = self.settings
        if step % s.log_interval == 0:
            out.log(self._log_row(step))
        if step % s.trajectory_interval == 0:
            out.frame(self.atoms)
        if checkpoint:
            ckpt = state.Checkpoint(step, self.atoms, ens.get_state(self.dyn, s.ensemble),
                                    self.rng.bit_generator.state, out.position())
            state.save_checkpoint(self.rundir, ckpt)

    def _log_row(self, step: int) -> list[float]:
        a = self.atoms
        epot, ekin = a.get_potential_energy(), a.get_kinetic_energy()
        pressure = volume = np.nan
        if a.pbc.all():
            volume = a.get_volume()
            pressure = -np.trace(a.get_stress(voigt=False, include_ideal_gas=True)) / 3 * EV_PER_A3_TO_GPA
        return [step, step * self.settings.timestep_fs / PS_TO_FS, epot, ekin, epot + ekin,
                ens.conserved_energy(self.dyn, self.settings.ensemble, a), a.get_temperature(), pressure, volume]

    def _check_sane(self, step: int, out: state.Outputs) -> None:
        self._stop_if(step, out, why_stop(self.atoms, self.settings))

    def _stop_if(self, step: int, out: state.Outputs, reason: str | None) -> None:
        if reason is None:
            return
        self._write_exploded()
        out.log(self._log_row(step))
        raise stopped(step, self.settings.timestep_fs, reason, self.rundir)


def stopped(step: int, timestep_fs: float, reason: str, rundir: Path) -> SimulationError:
    """The "MD stopped" error both engines raise, keeping what was written."""
    return SimulationError(
        f"MD stopped at step {step} ({step * timestep_fs / PS_TO_FS:g} ps): {reason}. "
        f"Everything written so far is kept in {rundir} (the last frame in {rd.EXPLODED}). "
        "Try a smaller timestep, check the starting structure for overlapping atoms, and check that "
        "the model covers this chemistry."
    )


class _Speed:
    def __init__(self, timestep_fs: float):
        self.timestep_fs, self.start = timestep_fs, time.perf_counter()

    def ns_per_day(self, steps: int) -> float:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return steps * self.timestep_fs * FS_TO_NS / elapsed * SECONDS_PER_DAY


def _run_openmm(atoms: Atoms, model, s: MDSettings, outdir: Path, overwrite: bool, progress: bool) -> MDResult:
    """Hand the run to nnpcalc.openmm.simulate (same settings, log and run directory)."""
    try:
        from ..openmm.simulate import run_openmm_md
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("openmm"):
            raise ImportError("openmm is not installed; install it with `pip install 'nnpcalc[openmm]'`") from err
        raise
    with progress_bar(s.steps, f"md {s.ensemble} (openmm)", progress) as bar:
        result = run_openmm_md(atoms, model, s, outdir=outdir, overwrite=overwrite,
                               progress=lambda step, total: bar.update(step - bar.n))
    files = {"settings": outdir / rd.SETTINGS, "log": outdir / rd.LOG, "trajectory": outdir / s.trajectory,
             "checkpoint": outdir / rd.CHECKPOINT}
    return MDResult(outdir, int(result["steps"]), None, result.get("ns_per_day"), files)


def _resume_openmm(rundir: Path, steps: int | None, model, progress: bool, changes: dict) -> MDResult:
    """Hand the resume of an OpenMM run to nnpcalc.openmm.simulate.resume_openmm_md."""
    from ..openmm.simulate import resume_openmm_md

    s = rd.read_settings(rundir)
    total = steps if steps is not None else s.steps
    with progress_bar(total, f"md {s.ensemble} (openmm)", progress) as bar:
        result = resume_openmm_md(rundir, steps=steps, model=model, progress=lambda step, _: bar.update(step - bar.n),
                                  **changes)
    files = {"settings": rundir / rd.SETTINGS, "log": rundir / rd.LOG, "trajectory": rundir / s.trajectory,
             "checkpoint": rundir / rd.CHECKPOINT}
    return MDResult(rundir, int(result["steps"]), None, result.get("ns_per_day"), files)
