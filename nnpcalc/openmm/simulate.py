"""Molecular dynamics of ASE atoms with OpenMM: the engine behind ``nnp md --engine openmm``.

Driven by the same :class:`~nnpcalc.workflows.md_settings.MDSettings` as the ASE engine (one
ensemble table, one set of defaults) and writing the same run directory: ``run.json``,
``md.log`` (``md_rundir.LOG_COLUMNS``), the trajectory (``.extxyz`` frames in ASE's frame and
units, or OpenMM's ``.dcd``/``.xtc``) and ``run.lock``. Ensembles: ``nve``
(``VerletIntegrator``), ``nvt-langevin`` (``LangevinMiddleIntegrator``), ``nvt-nose-hoover``
(``NoseHooverIntegrator``), ``npt`` (Langevin middle + ``MonteCarloBarostat``; periodic only).
``checkpoint.npz`` at step 0, every ``checkpoint_interval`` steps and at the end
(:mod:`.checkpoint`), and :func:`resume_openmm_md` continues from it as the uninterrupted run
would have. The log's pressure is the ASE engine's (the model's stress with the ideal-gas term,
from an ``NNPCalculator`` on the same model at each log row of a periodic run; NaN without a box).
The "MD stopped" checks (``md_watch``) run at every log row; ``max_uncertainty`` (``nnp md --engine openmm --max-uncertainty``) is the ASE
engine's :class:`~nnpcalc.workflows.uncertainty_watch.UncertaintyWatch`, asking an
``NNPCalculator`` on the same model for ``forces_uncertainty`` at every trajectory frame (any
force kind: ``TorchForce`` cannot return it, so the checked steps pay one more model call, as
they do in the ASE engine).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import CheckpointError
from ..threads import torch_threads
from ..units import EV_PER_A3_TO_GPA, EV_TO_KJ_PER_MOL, FS_TO_ASE_TIME, NM_TO_ANGSTROM, PS_TO_FS
from ..workflows import md_rundir as rd
from ..workflows.common import as_model
from ..workflows.io import FrameWriter
from ..workflows.md_resume import prepare_resume
from ..workflows.md_settings import MDSettings, make_settings
from ..workflows.md_watch import fused_atoms, why_stop
from ..workflows.uncertainty_watch import md_watcher, require_uncertainty
from . import checkpoint as ck
from .system import create_system

#: OpenMM's own trajectory reporters; ``.extxyz`` frames are written by :class:`Recorder`
OPENMM_TRAJECTORIES = {".dcd": app.DCDReporter, ".xtc": app.XTCReporter}


def run_openmm_md(atoms: Atoms, model=None, settings: MDSettings | None = None, *, outdir: str | Path = "md-run",
                  overwrite: bool = False, platform: str = "CPU", kind: str = "auto", threads: int | None = 1,
                  total_charge: float | None = None, progress: Callable[[int, int], None] | None = None,
                  **options) -> dict:
    """Run MD in ``outdir`` from ``settings`` (or its fields as ``options``); return a summary.

    ``platform`` (an OpenMM platform name), ``kind`` and ``threads`` (as in ``create_force``)
    choose hardware, not physics, so they are arguments here rather than settings.
    ``progress(step_done, steps_total)`` is called at every log row. See docs/openmm.md.
    """
    s = make_settings(**{**(settings or MDSettings()).as_dict(), "engine": "openmm", **options}).validate()
    outdir = Path(outdir)
    rd.check_new_rundir(outdir, overwrite)
    _check_options(atoms, s)
    model = as_model(model, s.dtype, s.device)
    model.check(atoms)
    if s.max_uncertainty:  # refused before anything in the run directory is touched
        require_uncertainty(model)
    s.model, s.model_sha256 = str(Path(model.path).resolve()), rd.file_sha256(model.path)
    simulation, setup = _build(atoms, model, s, platform, kind, threads, total_charge)
    simulation.context.setPositions(setup.positions)
    _initial_velocities(simulation.context, setup.system, atoms, setup.rotation, s.temperature_K, s.seed)
    charge = _charge(atoms, total_charge)
    system = ck.system_arrays(atoms, setup.rotation)
    with rd.claim_new_rundir(outdir, overwrite):
        rd.write_settings(outdir, s, **{ck.RECORD: ck.system_record(system, charge)})
        checkpoints = ck.Checkpoints(outdir, s.seed, system, charge)
        watch = md_watcher(outdir, s, model)  # in the claimed directory (a planted frames link is gone), as ASE's
        return _simulate(simulation, setup, atoms, s, outdir, progress, threads, _checker(watch, model),
                         checkpoints=checkpoints, model=model)


def resume_openmm_md(rundir: str | Path, *, steps: int | None = None, model=None, platform: str = "CPU",
                     kind: str = "auto", threads: int | None = 1,
                     progress: Callable[[int, int], None] | None = None, **changes) -> dict:
    """Continue the OpenMM run in ``rundir`` from its checkpoint, up to its ``steps`` (or a new total).

    As :func:`nnpcalc.workflows.md.resume_md` (which calls this for an OpenMM run): ``changes``
    other than the run's values are refused, ``model`` must be the run's file, the log and
    trajectory are cut back to the checkpoint. ``platform``, ``kind``, ``threads`` as in
    :func:`run_openmm_md`. A checkpoint of the ASE engine or of another system is refused.
    """
    rundir = rd.open_rundir(rundir)
    with rd.RunLock(rundir):
        run = prepare_resume(
            rundir, "openmm", lambda _: f"{rundir} is a run of the ASE engine; continue it with resume_md "
                                        "(`nnp md --resume`)",
            lambda _: ck.load(rundir, rd.read_record(rundir, ck.RECORD)), steps, model, changes)
        s, saved, model, watch = run.settings, run.checkpoint, run.model, run.watch
        simulation, setup, atoms = _rebuild(saved, model, s, platform, kind, threads)
        ck.trim_outputs(rundir, s, saved.outputs)
        rd.write_settings(rundir, s, **{ck.RECORD: rd.read_record(rundir, ck.RECORD)})  # as read, under the lock
        checkpoints = ck.Checkpoints(rundir, s.seed, saved.system, saved.total_charge)
        return _simulate(simulation, setup, atoms, s, rundir, progress, threads, _checker(watch, model),
                         checkpoints=checkpoints, model=model, resume=saved)


def _build(atoms: Atoms, model, s: MDSettings, platform: str, kind: str, threads, total_charge):
    """(Simulation, OpenMMSetup) of ``atoms`` with the integrator (and barostat) of ``s``."""
    setup = create_system(atoms, model, total_charge=total_charge, kind=kind, dtype=s.dtype, threads=threads)
    if s.ensemble == "npt":
        _add_barostat(setup.system, s)
    integrator = _integrator(s)
    simulation = app.Simulation(setup.topology, setup.system, integrator, openmm.Platform.getPlatformByName(platform))
    return simulation, setup


def _rebuild(saved: ck.OpenMMCheckpoint, model, s: MDSettings, platform: str, kind: str, threads):
    """(Simulation, OpenMMSetup, atoms) of the run again, in the checkpoint's state (as the run restarted there)."""
    rotation = saved.system["rotation"]
    state = ck.state_from_xml(saved.state_xml)
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) @ rotation * NM_TO_ANGSTROM
    atoms = saved.atoms(positions)
    simulation, setup = _build(atoms, model, s, platform, kind, threads, saved.total_charge)
    if not np.allclose(setup.rotation, rotation, rtol=0, atol=1e-12):
        raise CheckpointError(f"the checkpoint's frame rotation {rotation.tolist()} is not the one its cell gives "
                              f"({setup.rotation.tolist()}): the file was edited; restore the run's own checkpoint")
    ck.restart(simulation, saved.state_xml, ck.segment_seed(s.seed, saved.step))
    return simulation, setup, atoms


def _charge(atoms: Atoms, total_charge: float | None) -> float:
    from ..charge import total_charge as read_total_charge

    return float(read_total_charge(atoms) if total_charge is None else total_charge)


def _checker(watch, model):
    """(the uncertainty watch, an NNPCalculator on ``model`` it asks), or None without a watch."""
    return None if watch is None else (watch, _calculator(model))


def _simulate(simulation, setup, atoms: Atoms, s: MDSettings, outdir: Path, progress, threads,
              checker=None, checkpoints: ck.Checkpoints | None = None, model=None,
              resume: ck.OpenMMCheckpoint | None = None) -> dict:
    trajectory = rd.inside(outdir, s.trajectory)
    reporter = OPENMM_TRAJECTORIES.get(trajectory.suffix.lower())
    if reporter is not None:
        append = resume is not None and resume.outputs["trajectory_bytes"] > 0
        simulation.reporters.append(reporter(str(trajectory), s.trajectory_interval, append=append))
    recorder = Recorder(outdir, s, atoms, setup, progress, write_frames=reporter is None, checker=checker,
                        model=model, resume=resume)
    simulation.reporters.append(recorder)
    start = time.perf_counter()
    with torch_threads(threads), recorder:
        state = simulation.context.getState(getEnergy=True, getPositions=True, getVelocities=True, getForces=True)
        if resume is None:
            recorder.report(simulation, state)
            if checkpoints is not None:
                checkpoints.save_and_restart(simulation, recorder.position(0))
        else:
            recorder.resumed_at(simulation, state)
        _advance(simulation, s, recorder, checkpoints)
    wall_s = time.perf_counter() - start
    done = max(s.steps - (resume.step if resume is not None else 0), 0)
    summary = _summary(s, setup, wall_s, done) | {"platform": simulation.context.getPlatform().getName()}
    summary |= recorder.statistics()
    if s.ensemble != "nve":
        del summary["max_total_energy_drift_eV"]  # a thermostat or barostat exchanges energy
    return summary | {"trajectory": str(trajectory), "log": str(outdir / rd.LOG)}


def _advance(simulation, s: MDSettings, recorder, checkpoints: ck.Checkpoints | None) -> None:
    """Step to ``s.steps``, saving a checkpoint and restarting from it every ``checkpoint_interval`` steps."""
    step = simulation.currentStep
    if checkpoints is None:
        simulation.step(max(s.steps - step, 0))
        return
    while step < s.steps:
        target = min((step // s.checkpoint_interval + 1) * s.checkpoint_interval, s.steps)
        simulation.step(target - step)
        step = target
        if step < s.steps:
            checkpoints.save_and_restart(simulation, recorder.position(step))
        else:
            checkpoints.save(simulation, recorder.position(step))


def _check_options(atoms: Atoms, s: MDSettings) -> None:
    if s.ensemble == "npt" and not atoms.pbc.all():
        raise ValueError("ensemble 'npt' needs a periodic cell (atoms.pbc all True); use 'nvt-langevin' or 'nve'")


def _add_barostat(system, s: MDSettings) -> None:
    barostat = openmm.MonteCarloBarostat(s.pressure_GPa * unit.gigapascal, s.temperature_K * unit.kelvin,
                                         s.barostat_interval)
    barostat.setRandomNumberSeed(s.seed)
    system.addForce(barostat)


def _integrator(s: MDSettings):
    step = s.timestep_fs * unit.femtosecond
    if s.ensemble == "nve":
        return openmm.VerletIntegrator(step)
    if s.ensemble == "nvt-nose-hoover":
        return openmm.NoseHooverIntegrator(s.temperature_K * unit.kelvin, PS_TO_FS / s.tau_t_fs / unit.picosecond,
                                           step)
    friction = s.friction_per_fs * PS_TO_FS / unit.picosecond
    integrator = openmm.LangevinMiddleIntegrator(s.temperature_K * unit.kelvin, friction, step)
    integrator.setRandomNumberSeed(s.seed)
    return integrator


def _initial_velocities(context, system, atoms: Atoms, rotation: np.ndarray, temperature_K: float, seed: int):
    """The structure's own momenta when it has any (as the ASE engine), else Maxwell-Boltzmann at
    ``temperature_K`` with the centre-of-mass part removed when the System removes it (OpenMM keeps
    it, and its ``CMMotionRemover`` would drop it at the first step, a jump in E)."""
    nm_per_ps = unit.nanometer / unit.picosecond
    if np.any(atoms.get_momenta()):
        velocities = atoms.get_velocities() @ rotation.T * FS_TO_ASE_TIME * PS_TO_FS / NM_TO_ANGSTROM
        context.setVelocities(velocities * nm_per_ps)
        return
    if temperature_K <= 0:
        return
    context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    if not any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        return
    velocities = context.getState(getVelocities=True).getVelocities(asNumpy=True).value_in_unit(nm_per_ps)
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())])
    drift = (masses[:, None] * velocities).sum(0) / masses.sum()
    context.setVelocities((velocities - drift) * nm_per_ps)


def _degrees_of_freedom(system: openmm.System) -> int:
    moving = sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i) > 0 * unit.dalton)
    removed = 3 if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()) else 0
    return max(3 * moving - system.getNumConstraints() - removed, 1)


class Recorder:
    """An OpenMM reporter writing ``md.log`` (and ``.extxyz`` frames) as the ASE engine does, flushed
    per row, and stopping the run with "MD stopped" as the ASE engine would."""

    def __init__(self, outdir: Path, s: MDSettings, atoms: Atoms, setup, progress=None, write_frames=True,
                 checker=None, model=None, resume=None):
        self.outdir, self.s, self.setup, self.progress = outdir, s, setup, progress
        self.checker = checker  # (UncertaintyWatch, NNPCalculator) or None
        self.frame = Atoms(atoms.numbers, pbc=atoms.pbc, cell=atoms.cell, masses=atoms.get_masses())
        self.dof = _degrees_of_freedom(setup.system)
        self.stress = None  # the model's calculator for the log's pressure (3D boxes only)
        if model is not None and atoms.pbc.all():
            # the watch's own when there is one: a log row at a checked step reuses that call's stress
            self.stress = checker[1] if checker is not None else _calculator(model)
        mode = "w" if resume is None else "a"  # a resume appends to files cut back to the checkpoint
        self._log = open(rd.inside(outdir, rd.LOG), mode)
        if resume is None:
            self._log.write(rd.log_header())
        self._trajectory = rd.inside(outdir, s.trajectory)
        self._frames = FrameWriter(self._trajectory, mode) if write_frames else None
        self.frames = 0 if resume is None else resume.outputs["trajectory_frames"]  #: .extxyz frames written
        self.unstepped = 0 if resume is None else resume.step  #: the step before the integrator's first
        self.rows: list[list[float]] = []

    def describeNextReport(self, simulation):
        interval = math.gcd(self.s.log_interval, self.s.trajectory_interval)
        steps = interval - simulation.currentStep % interval
        return {"steps": steps, "periodic": False, "include": ["positions", "velocities", "forces", "energy"]}

    def report(self, simulation, state):
        step = simulation.currentStep
        atoms = self._atoms(state)
        reason = why_stop(atoms, self.s) if step > 0 else fused_atoms(atoms, self.s.fused_distance_factor)
        if reason is None and step > 0 and self.checker is not None:
            reason = self._uncertainty(atoms, step)
        if step % self.s.log_interval == 0 or reason:
            self._write_row(self._row(step, state, simulation, atoms))
        if self._frames is not None and step % self.s.trajectory_interval == 0 and not reason:
            self._frames.write(atoms)
            self.frames += 1
        if reason:
            from ..workflows.md import stopped

            with FrameWriter(rd.inside(self.outdir, rd.EXPLODED), "w") as writer:
                writer.write(atoms)
            raise stopped(step, self.s.timestep_fs, reason, self.outdir)
        if self.progress is not None and step % self.s.log_interval == 0:
            self.progress(step, self.s.steps)

    def _uncertainty(self, atoms: Atoms, step: int) -> str | None:
        """The uncertainty watch at ``step`` (flag, save or stop), on a copy with the model's calculator."""
        watch, calculator = self.checker
        probe = atoms.copy()
        probe.calc = calculator
        return watch.check(probe, step)

    def _atoms(self, state) -> Atoms:
        """The state in ASE's frame and units, with energy and forces (OpenMM's frame is ASE's @ R.T)."""
        r = self.setup.rotation
        atoms = self.frame.copy()
        atoms.positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) @ r * NM_TO_ANGSTROM
        if atoms.pbc.all():
            atoms.cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) @ r * NM_TO_ANGSTROM
        nm_per_ps = state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
        atoms.set_velocities(nm_per_ps @ r * NM_TO_ANGSTROM / PS_TO_FS / FS_TO_ASE_TIME)
        kj_per_mol_nm = unit.kilojoule_per_mole / unit.nanometer
        forces = state.getForces(asNumpy=True).value_in_unit(kj_per_mol_nm) @ r / EV_TO_KJ_PER_MOL / NM_TO_ANGSTROM
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        return atoms

    def resumed_at(self, simulation, state) -> None:
        """A resume's first state is in the log already (at its checkpoint): its row only starts the statistics."""
        self.rows.append(self._row(simulation.currentStep, state, simulation, self._atoms(state)))

    def position(self, step: int) -> dict[str, int]:
        """How far the log and trajectory are written at ``step`` (a checkpoint's ``outputs``)."""
        frames = self.frames if self._frames is not None else step // self.s.trajectory_interval
        size = self._trajectory.stat().st_size if self._trajectory.exists() else 0
        return {"log_bytes": self._log.tell(), "trajectory_bytes": size, "trajectory_frames": frames}

    def _pressure(self, atoms: Atoms) -> float:
        """GPa, as the ASE engine's log: −trace(model stress + ideal-gas term)/3; NaN without a 3D box."""
        if self.stress is None:
            return math.nan
        probe = atoms.copy()
        probe.calc = self.stress
        return -np.trace(probe.get_stress(voigt=False, include_ideal_gas=True)) / 3 * EV_PER_A3_TO_GPA

    def _row(self, step: int, state, simulation, atoms: Atoms) -> list[float]:
        kj_per_mol = unit.kilojoule_per_mole
        potential = state.getPotentialEnergy().value_in_unit(kj_per_mol) / EV_TO_KJ_PER_MOL
        kinetic = state.getKineticEnergy().value_in_unit(kj_per_mol) / EV_TO_KJ_PER_MOL
        gas_constant = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(kj_per_mol / unit.kelvin)
        temperature = 2 * kinetic * EV_TO_KJ_PER_MOL / (self.dof * gas_constant)
        periodic = simulation.system.usesPeriodicBoundaryConditions()
        volume = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3) * NM_TO_ANGSTROM**3 if periodic else math.nan
        return [step, step * self.s.timestep_fs / PS_TO_FS, potential, kinetic, potential + kinetic,
                self._conserved(potential + kinetic, simulation.integrator, step), temperature, self._pressure(atoms),
                volume]

    def _conserved(self, total: float, integrator, step: int) -> float:
        if self.s.ensemble == "nve":
            return total
        if self.s.ensemble == "nvt-nose-hoover" and step == self.unstepped:
            # OpenMM 8.6 segfaults in computeHeatBathEnergy before the integrator's first step; a fresh
            # chain is at rest (bath energy 0), a resumed one is only known after a step (NaN, not logged)
            return total if step == 0 else math.nan
        if self.s.ensemble == "nvt-nose-hoover":
            return total + integrator.computeHeatBathEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL
        return math.nan  # Langevin and the Monte Carlo barostat conserve nothing

    def _write_row(self, row: list[float]) -> None:
        self.rows.append(row)
        self._log.write(rd.log_line(row))
        self._log.flush()

    def statistics(self) -> dict:
        step, time_ps, epot, _, etot, _, temperature, _, _ = (np.array(c) for c in zip(*self.rows))
        return {
            "steps": int(step[-1]), "time_ps": float(time_ps[-1]), "final_potential_energy_eV": float(epot[-1]),
            "final_temperature_K": float(temperature[-1]),
            "mean_temperature_K": float(temperature[1:].mean()) if len(temperature) > 1 else float(temperature[0]),
            "max_total_energy_drift_eV": float(np.abs(etot - etot[0]).max()),
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._log.close()
        if self._frames is not None:
            self._frames.close()


def _calculator(model):
    """An NNPCalculator on the run's model: the pressure column's stress and the uncertainty watch."""
    from ..calculator import NNPCalculator

    return NNPCalculator(model)


def _summary(s: MDSettings, setup, wall_s: float, steps_done: int) -> dict:
    simulated_ns = steps_done * s.timestep_fs * unit.femtosecond.conversion_factor_to(unit.nanosecond)
    return {
        "engine": "openmm", "ensemble": s.ensemble, "force": type(setup.force).__name__,
        "atoms": setup.system.getNumParticles(), "steps": s.steps, "wall_s": wall_s,
        "ns_per_day": simulated_ns / wall_s * 86400 if wall_s > 0 else math.inf,
        "rotation": setup.rotation.tolist(),
    }
