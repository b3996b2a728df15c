"""Molecular dynamics of ASE atoms with OpenMM: the engine behind ``nnp md --engine openmm``.

Ensembles: ``nve`` (``VerletIntegrator``), ``nvt-langevin`` (``LangevinMiddleIntegrator``),
``npt`` (Langevin middle + ``MonteCarloBarostat``; periodic systems only). Writes
``trajectory.dcd`` (or ``.xtc``) and ``log.csv`` (eV, K, Å³) in ``outdir`` as it runs.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
from ase import Atoms

from ..units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from ..threads import torch_threads
from .system import create_system

ENSEMBLES = ("nve", "nvt-langevin", "npt")
TRAJECTORY_FORMATS = {"dcd": app.DCDReporter, "xtc": app.XTCReporter}
LOG_COLUMNS = ("step", "time_ps", "potential_energy_eV", "kinetic_energy_eV", "total_energy_eV",
               "temperature_K", "volume_A3")


def run_openmm_md(
    atoms: Atoms,
    model=None,
    *,
    ensemble: str = "nvt-langevin",
    temperature_K: float = 300.0,
    pressure_GPa: float | None = None,
    timestep_fs: float = 1.0,
    steps: int = 1000,
    seed: int = 0,
    outdir: str | Path = ".",
    trajectory_interval: int = 10,
    log_interval: int = 10,
    platform: str = "CPU",
    total_charge: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    friction_per_ps: float = 1.0,
    barostat_interval: int = 25,
    trajectory_format: str = "dcd",
    kind: str = "auto",
    dtype: str = "float32",
    threads: int | None = 1,
) -> dict:
    """Run MD and return a summary; see docs/openmm.md for every argument and the log columns."""
    _check_options(atoms, ensemble, pressure_GPa, trajectory_format)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    setup = create_system(atoms, model, total_charge=total_charge, kind=kind, dtype=dtype, threads=threads)
    if ensemble == "npt":
        _add_barostat(setup.system, pressure_GPa, temperature_K, barostat_interval, seed)
    integrator = _integrator(ensemble, temperature_K, timestep_fs, friction_per_ps, seed)
    simulation = app.Simulation(setup.topology, setup.system, integrator,
                                openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(setup.positions)
    _initial_velocities(simulation.context, setup.system, temperature_K, seed)
    trajectory = outdir / f"trajectory.{trajectory_format}"
    simulation.reporters.append(TRAJECTORY_FORMATS[trajectory_format](str(trajectory), trajectory_interval))
    log = EnergyLog(outdir / "log.csv", log_interval, _degrees_of_freedom(setup.system), steps, progress)
    simulation.reporters.append(log)
    start = time.perf_counter()
    with torch_threads(threads), log:
        log.report(simulation, simulation.context.getState(getEnergy=True))
        simulation.step(steps)
    wall_s = time.perf_counter() - start
    summary = _summary(ensemble, platform, setup, steps, timestep_fs, wall_s) | log.statistics()
    if ensemble != "nve":
        del summary["max_total_energy_drift_eV"]  # a thermostat or barostat exchanges energy
    return summary | {"trajectory": str(trajectory), "log": str(log.path)}


def _check_options(atoms: Atoms, ensemble: str, pressure_GPa, trajectory_format: str) -> None:
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose from {', '.join(ENSEMBLES)}")
    if trajectory_format not in TRAJECTORY_FORMATS:
        valid = ", ".join(TRAJECTORY_FORMATS)
        raise ValueError(f"unknown trajectory format {trajectory_format!r}; choose from {valid}")
    if ensemble == "npt" and pressure_GPa is None:
        raise ValueError("ensemble 'npt' needs pressure_GPa (1 bar = 0.0001 GPa)")
    if ensemble == "npt" and not atoms.pbc.all():
        raise ValueError("ensemble 'npt' needs a periodic cell (atoms.pbc all True); use 'nvt-langevin' or 'nve'")


def _add_barostat(system, pressure_GPa: float, temperature_K: float, interval: int, seed: int) -> None:
    barostat = openmm.MonteCarloBarostat(pressure_GPa * unit.gigapascal, temperature_K * unit.kelvin, interval)
    barostat.setRandomNumberSeed(seed)
    system.addForce(barostat)


def _integrator(ensemble: str, temperature_K: float, timestep_fs: float, friction_per_ps: float, seed: int):
    step = timestep_fs * unit.femtosecond
    if ensemble == "nve":
        return openmm.VerletIntegrator(step)
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond, step)
    integrator.setRandomNumberSeed(seed)
    return integrator


def _initial_velocities(context, system, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann velocities; the centre-of-mass part removed when the System removes it
    (OpenMM keeps it, and its ``CMMotionRemover`` would drop it at the first step, a jump in E)."""
    if temperature_K <= 0:
        return
    context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    if not any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        return
    nm_per_ps = unit.nanometer / unit.picosecond
    velocities = context.getState(getVelocities=True).getVelocities(asNumpy=True).value_in_unit(nm_per_ps)
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())])
    drift = (masses[:, None] * velocities).sum(0) / masses.sum()
    context.setVelocities((velocities - drift) * nm_per_ps)


def _degrees_of_freedom(system: openmm.System) -> int:
    moving = sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i) > 0 * unit.dalton)
    removed = 3 if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()) else 0
    return max(3 * moving - system.getNumConstraints() - removed, 1)


class EnergyLog:
    """An OpenMM reporter writing ``log.csv`` in nnpcalc's units (eV, K, Å³), flushed per row."""

    def __init__(self, path: Path, interval: int, dof: int, total_steps: int, progress=None):
        self.path, self.interval, self.dof, self.total_steps, self.progress = path, interval, dof, total_steps, progress
        self._file = open(path, "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(LOG_COLUMNS)
        self.rows: list[dict] = []

    def describeNextReport(self, simulation):
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": None, "include": ["energy"]}

    def report(self, simulation, state):
        row = self._row(simulation.currentStep, state, simulation.system.usesPeriodicBoundaryConditions())
        self.rows.append(row)
        self._csv.writerow([row[c] for c in LOG_COLUMNS])
        self._file.flush()
        if self.progress is not None:
            self.progress(simulation.currentStep, self.total_steps)

    def _row(self, step: int, state, periodic: bool) -> dict:
        kj_per_mol = unit.kilojoule_per_mole
        potential = state.getPotentialEnergy().value_in_unit(kj_per_mol) / EV_TO_KJ_PER_MOL
        kinetic_kj = state.getKineticEnergy().value_in_unit(kj_per_mol)
        gas_constant = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(kj_per_mol / unit.kelvin)
        volume_nm3 = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3) if periodic else math.nan
        return {
            "step": step, "time_ps": state.getTime().value_in_unit(unit.picosecond),
            "potential_energy_eV": potential, "kinetic_energy_eV": kinetic_kj / EV_TO_KJ_PER_MOL,
            "total_energy_eV": potential + kinetic_kj / EV_TO_KJ_PER_MOL,
            "temperature_K": 2 * kinetic_kj / (self.dof * gas_constant),
            "volume_A3": volume_nm3 * NM_TO_ANGSTROM**3,
        }

    def statistics(self) -> dict:
        rows = self.rows
        return {
            "time_ps": rows[-1]["time_ps"],
            "final_potential_energy_eV": rows[-1]["potential_energy_eV"],
            "final_temperature_K": rows[-1]["temperature_K"],
            "mean_temperature_K": sum(r["temperature_K"] for r in rows[1:]) / max(len(rows) - 1, 1),
            "max_total_energy_drift_eV": max(abs(r["total_energy_eV"] - rows[0]["total_energy_eV"]) for r in rows),
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def _summary(ensemble, platform, setup, steps, timestep_fs, wall_s) -> dict:
    simulated_ns = steps * timestep_fs * unit.femtosecond.conversion_factor_to(unit.nanosecond)
    return {
        "engine": "openmm", "ensemble": ensemble, "platform": platform,
        "force": type(setup.force).__name__, "atoms": setup.system.getNumParticles(), "steps": steps,
        "wall_s": wall_s, "ns_per_day": simulated_ns / wall_s * 86400 if wall_s > 0 else math.inf,
        "rotation": setup.rotation.tolist(),
    }
