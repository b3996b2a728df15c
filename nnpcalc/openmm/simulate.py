"""Molecular dynamics of ASE atoms with OpenMM: the engine behind ``nnp md --engine openmm``.

Driven by the same :class:`~nnpcalc.workflows.md_settings.MDSettings` as the ASE engine (one
ensemble table, one set of defaults) and writing the same run directory: ``run.json``,
``md.log`` (``md_rundir.LOG_COLUMNS``), the trajectory (``.extxyz`` frames in ASE's frame and
units, or OpenMM's ``.dcd``/``.xtc``) and ``run.lock``. Ensembles: ``nve``
(``VerletIntegrator``), ``nvt-langevin`` (``LangevinMiddleIntegrator``), ``nvt-nose-hoover``
(``NoseHooverIntegrator``), ``npt`` (Langevin middle + ``MonteCarloBarostat``; periodic only).
No checkpoints: an OpenMM run is not resumed. The "MD stopped" checks (``md_watch``) run at
every log row; ``max_uncertainty`` (``nnp md --engine openmm --max-uncertainty``) is the ASE
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

from ..threads import torch_threads
from ..units import EV_TO_KJ_PER_MOL, FS_TO_ASE_TIME, NM_TO_ANGSTROM, PS_TO_FS
from ..workflows import md_rundir as rd
from ..workflows.common import as_model
from ..workflows.io import FrameWriter
from ..workflows.md_settings import MDSettings, make_settings
from ..workflows.md_watch import fused_atoms, why_stop
from ..workflows.uncertainty_watch import md_watcher
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
    watch = md_watcher(outdir, s, model)  # max_uncertainty: refused now for a model without uncertainty
    s.model, s.model_sha256 = str(Path(model.path).resolve()), rd.file_sha256(model.path)
    setup = create_system(atoms, model, total_charge=total_charge, kind=kind, dtype=s.dtype, threads=threads)
    if s.ensemble == "npt":
        _add_barostat(setup.system, s)
    integrator = _integrator(s)
    simulation = app.Simulation(setup.topology, setup.system, integrator, openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(setup.positions)
    _initial_velocities(simulation.context, setup.system, atoms, setup.rotation, s.temperature_K, s.seed)
    with rd.claim_new_rundir(outdir, overwrite):
        rd.write_settings(outdir, s)
        return _simulate(simulation, setup, atoms, s, outdir, progress, threads, _checker(watch, model))


def _checker(watch, model):
    """(the uncertainty watch, an NNPCalculator on ``model`` it asks), or None without a watch."""
    if watch is None:
        return None
    from ..calculator import NNPCalculator

    return watch, NNPCalculator(model)


def _simulate(simulation, setup, atoms: Atoms, s: MDSettings, outdir: Path, progress, threads,
              checker=None) -> dict:
    trajectory = rd.inside(outdir, s.trajectory)
    reporter = OPENMM_TRAJECTORIES.get(trajectory.suffix.lower())
    if reporter is not None:
        simulation.reporters.append(reporter(str(trajectory), s.trajectory_interval))
    recorder = Recorder(outdir, s, atoms, setup, progress, write_frames=reporter is None, checker=checker)
    simulation.reporters.append(recorder)
    start = time.perf_counter()
    with torch_threads(threads), recorder:
        recorder.report(simulation, simulation.context.getState(getEnergy=True, getPositions=True,
                                                                getVelocities=True, getForces=True))
        simulation.step(s.steps)
    wall_s = time.perf_counter() - start
    summary = _summary(s, setup, wall_s) | {"platform": simulation.context.getPlatform().getName()}
    summary |= recorder.statistics()
    if s.ensemble != "nve":
        del summary["max_total_energy_drift_eV"]  # a thermostat or barostat exchanges energy
    return summary | {"trajectory": str(trajectory), "log": str(outdir / rd.LOG)}


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
                 checker=None):
        self.outdir, self.s, self.setup, self.progress = outdir, s, setup, progress
        self.checker = checker  # (UncertaintyWatch, NNPCalculator) or None
        self.frame = Atoms(atoms.numbers, pbc=atoms.pbc, cell=atoms.cell, masses=atoms.get_masses())
        self.dof = _degrees_of_freedom(setup.system)
        self._log = open(rd.inside(outdir, rd.LOG), "w")
        self._log.write(rd.log_header())
        self._frames = FrameWriter(rd.inside(outdir, s.trajectory), "w") if write_frames else None
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
            self._write_row(self._row(step, state, simulation))
        if self._frames is not None and step % self.s.trajectory_interval == 0 and not reason:
            self._frames.write(atoms)
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

    def _row(self, step: int, state, simulation) -> list[float]:
        kj_per_mol = unit.kilojoule_per_mole
        potential = state.getPotentialEnergy().value_in_unit(kj_per_mol) / EV_TO_KJ_PER_MOL
        kinetic = state.getKineticEnergy().value_in_unit(kj_per_mol) / EV_TO_KJ_PER_MOL
        gas_constant = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(kj_per_mol / unit.kelvin)
        temperature = 2 * kinetic * EV_TO_KJ_PER_MOL / (self.dof * gas_constant)
        periodic = simulation.system.usesPeriodicBoundaryConditions()
        volume = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3) * NM_TO_ANGSTROM**3 if periodic else math.nan
        return [step, step * self.s.timestep_fs / PS_TO_FS, potential, kinetic, potential + kinetic,
                self._conserved(potential + kinetic, simulation.integrator), temperature, math.nan, volume]

    def _conserved(self, total: float, integrator) -> float:
        if self.s.ensemble == "nve":
            return total
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


def _summary(s: MDSettings, setup, wall_s: float) -> dict:
    simulated_ns = s.steps * s.timestep_fs * unit.femtosecond.conversion_factor_to(unit.nanosecond)
    return {
        "engine": "openmm", "ensemble": s.ensemble, "force": type(setup.force).__name__,
        "atoms": setup.system.getNumParticles(), "steps": s.steps, "wall_s": wall_s,
        "ns_per_day": simulated_ns / wall_s * 86400 if wall_s > 0 else math.inf,
        "rotation": setup.rotation.tolist(),
    }
