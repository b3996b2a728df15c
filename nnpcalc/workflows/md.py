"""Molecular dynamics that writes as it goes, checkpoints, resumes exactly and stops when it explodes.

:func:`run_md` starts a run in a directory, :func:`resume_md` continues one (after a stop, a
crash or ``kill -9``) from its last checkpoint; with the same seed the resumed trajectory is
the uninterrupted one (to the last bit in our float64 tests, or to within 1e-10 where the
resumed process's first TorchScript calls round differently). Files and the checkpoint
format are described in :mod:`nnpcalc.workflows.md_state`, the ensembles in
:mod:`nnpcalc.workflows.md_ensembles`. ``engine="openmm"`` hands the run to
``nnpcalc.openmm.simulate``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from ..calculator import NNPCalculator
from ..errors import InvalidStructureError, SimulationError
from ..runtime import Model
from ..units import EV_PER_A3_TO_GPA, FS_TO_NS, PS_TO_FS, SECONDS_PER_DAY
from . import io
from . import md_ensembles as ens
from . import md_state as state
from .choices import ENGINES
from .common import as_model, progress_bar

@dataclass
class MDResult:
    outdir: Path
    steps: int  #: steps done in total, over every resume
    atoms: Atoms | None  #: the final state, with momenta
    ns_per_day: float | None = None
    files: dict[str, Path] = field(default_factory=dict)


def run_md(structure, model: str | Path | Model | None = None, *, outdir: str | Path = "md-run",
           steps: int | None = None, time_ps: float | None = None, engine: str = "ase",
           overwrite: bool = False, progress: bool = False, **options) -> MDResult:
    """Run MD of ``structure`` (ASE atoms or pymatgen) in ``outdir``.

    Options are the fields of :class:`~nnpcalc.workflows.md_state.MDSettings`: ``ensemble``
    (nve, nvt-langevin, nvt-nose-hoover, nvt-bussi, npt), ``temperature_K``, ``pressure_GPa``,
    ``timestep_fs``, ``seed``, ``trajectory`` (file name: .extxyz or .traj), the intervals,
    thermostat/barostat times, ``dtype``, ``device``. Give ``steps`` or ``time_ps``.
    Starting velocities: the structure's own momenta if it has any, else Maxwell-Boltzmann
    at ``temperature_K`` from ``seed``.
    """
    atoms = io.to_atoms(structure)
    settings = state.MDSettings(**options)
    settings.steps = step_count(steps, time_ps, settings.timestep_fs)
    settings.validate()
    if engine == "openmm":
        return _run_openmm(atoms, model, settings, Path(outdir), progress)
    if engine != "ase":
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    model = as_model(model, settings.dtype, settings.device)
    model.check(atoms)
    settings.model = str(Path(model.path).resolve())
    rng = np.random.default_rng(settings.seed)
    atoms.calc = NNPCalculator(model)
    _initial_velocities(atoms, settings.temperature_K, rng)
    dyn = ens.make_integrator(atoms, settings, rng)
    rundir = _new_rundir(Path(outdir), overwrite)
    state.write_settings(rundir, settings)
    return _Run(rundir, settings, atoms, dyn, rng).simulate(start=0, progress=progress)


def resume_md(outdir: str | Path, *, steps: int | None = None, model: str | Path | Model | None = None,
              progress: bool = False) -> MDResult:
    """Continue the run in ``outdir`` from its last checkpoint up to its total ``steps`` (or a new total).

    ``model``: the run's model file if it has moved (or a loaded Model of it); default: the
    file recorded in ``run.json``.
    """
    rundir = Path(outdir)
    settings = state.read_settings(rundir)
    ckpt = state.load_checkpoint(rundir)
    if steps is not None:
        if steps < ckpt.step:
            raise ValueError(f"{rundir} is already at step {ckpt.step}; give a total of at least that many steps")
        settings = replace(settings, steps=steps).validate()
        state.write_settings(rundir, settings)
    model = as_model(model or settings.model, settings.dtype, settings.device)
    atoms = ckpt.atoms
    atoms.calc = NNPCalculator(model)
    rng = state.rng_from_state(ckpt.rng_state)
    dyn = ens.make_integrator(atoms, settings, rng)
    ens.set_state(dyn, settings.ensemble, ckpt.integrator)
    state.cut_outputs(rundir, settings, ckpt.outputs)
    return _Run(rundir, settings, atoms, dyn, rng).simulate(start=ckpt.step, progress=progress,
                                                            outputs=ckpt.outputs)


def step_count(steps: int | None, time_ps: float | None, timestep_fs: float) -> int:
    if steps is not None and time_ps is not None:
        raise ValueError(f"give steps ({steps}) or time_ps ({time_ps}), not both")
    if time_ps is not None:
        return int(round(time_ps * PS_TO_FS / timestep_fs))
    return 1000 if steps is None else int(steps)


def _new_rundir(path: Path, overwrite: bool) -> Path:
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{path} already holds files; continue that run with `nnp md --resume {path}` "
                                  "(resume_md), choose another output directory, or overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    def __init__(self, rundir: Path, settings: state.MDSettings, atoms: Atoms, dyn, rng):
        self.rundir, self.settings, self.atoms, self.dyn, self.rng = rundir, settings, atoms, dyn, rng

    def simulate(self, start: int, progress: bool, outputs: dict | None = None) -> MDResult:
        s = self.settings
        with state.Outputs(self.rundir, s, outputs) as out, \
                progress_bar(s.steps, f"md {s.ensemble}", progress, initial=start) as bar:
            if start == 0:
                self._record(0, out, checkpoint=True)
            speed = _Speed(s.timestep_fs)
            for step in range(start + 1, s.steps + 1):
                self.dyn.step()
                self._check_sane(step, out)
                self._record(step, out, checkpoint=step % s.checkpoint_interval == 0 or step == s.steps)
                bar.update(1)
                if step % s.log_interval == 0:
                    bar.set_postfix_str(f"{speed.ns_per_day(step - start):.3g} ns/day")
        files = {"log": self.rundir / state.LOG, "trajectory": self.rundir / s.trajectory,
                 "checkpoint": self.rundir / state.CHECKPOINT}
        return MDResult(self.rundir, max(start, s.steps), io.snapshot(self.atoms),
                        speed.ns_per_day(max(s.steps - start, 0)), files)

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
        reason = _explosion(self.atoms, self.settings)
        if reason is None:
            return
        with io.FrameWriter(self.rundir / state.EXPLODED, "w") as writer:
            writer.write(self.atoms)
        out.log(self._log_row(step))
        raise SimulationError(
            f"MD stopped at step {step} ({step * self.settings.timestep_fs / PS_TO_FS:g} ps): {reason}. "
            f"Everything written so far is kept in {self.rundir} (the last frame in {state.EXPLODED}). "
            "Try a smaller timestep, check the starting structure for overlapping atoms, and check that "
            "the model covers this chemistry."
        )


def _explosion(atoms: Atoms, s: state.MDSettings) -> str | None:
    """Why the current state is beyond sane, or None."""
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    if not (np.isfinite(forces).all() and np.isfinite(atoms.positions).all() and np.isfinite(energy)):
        return "positions, energy or forces are NaN or infinite"
    largest = float(np.linalg.norm(forces, axis=1).max(initial=0.0))
    if largest > s.max_force:
        return f"the largest force is {largest:.3g} eV/Å (limit {s.max_force:g} eV/Å)"
    limit = s.max_temperature_factor * max(s.temperature_K, 100.0)
    if atoms.get_temperature() > limit:
        return f"the temperature is {atoms.get_temperature():.4g} K (limit {limit:.4g} K)"
    return None


class _Speed:
    def __init__(self, timestep_fs: float):
        self.timestep_fs, self.start = timestep_fs, time.perf_counter()

    def ns_per_day(self, steps: int) -> float:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return steps * self.timestep_fs * FS_TO_NS / elapsed * SECONDS_PER_DAY


def _run_openmm(atoms: Atoms, model, s: state.MDSettings, outdir: Path, progress: bool) -> MDResult:
    """Hand the run to nnpcalc.openmm.simulate (its ensembles: nve, nvt-langevin, npt; DCD trajectory)."""
    try:
        from ..openmm.simulate import run_openmm_md
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("openmm"):
            raise ImportError("openmm is not installed; install it with `pip install 'nnpcalc[openmm]'`") from err
        raise ValueError("engine 'openmm' is not available in this nnpcalc build; use engine 'ase'") from err
    with progress_bar(s.steps, f"md {s.ensemble} (openmm)", progress) as bar:
        result = run_openmm_md(
            atoms, model, ensemble=s.ensemble, temperature_K=s.temperature_K,
            pressure_GPa=s.pressure_GPa if s.ensemble == "npt" else None, timestep_fs=s.timestep_fs,
            steps=s.steps, seed=s.seed, outdir=outdir, trajectory_interval=s.trajectory_interval,
            log_interval=s.log_interval, total_charge=float(atoms.info.get("charge", 0.0)),
            friction_per_ps=s.friction_per_fs * PS_TO_FS, dtype=s.dtype,
            progress=lambda step, total: bar.update(step - bar.n))
    files = {p.name: p for p in sorted(Path(outdir).iterdir()) if p.is_file()}
    return MDResult(Path(outdir), int(result.get("steps", s.steps)), None, result.get("ns_per_day"), files)
