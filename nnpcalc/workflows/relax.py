"""Relax positions (and the cell) of one or many structures.

Every structure gets its own ASE optimizer (FIRE, BFGS or LBFGS), optionally on a
``FrechetCellFilter`` and with ``FixSymmetry``. The optimizers are stepped in lockstep: each
round evaluates all unfinished structures in **one** batched ``Model.compute`` call, hands
each structure's calculator its results, then lets every optimizer take one step. A single
structure follows exactly the path ``optimizer.run(fmax, steps)`` would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..calculator import NNPCalculator, calculate_batch
from ..errors import OptionError
from ..runtime import Model
from ..units import EV_PER_A3_TO_GPA, GPA_TO_EV_PER_A3
from . import io
from .choices import OPTIMIZERS
from .common import as_model, optional, progress_bar


@dataclass
class RelaxResult:
    """One relaxed structure. ``atoms`` carries the final energy, forces (and stress)."""

    name: str
    atoms: Atoms
    energy: float  #: eV
    max_force: float  #: eV/Å, largest atomic force
    volume: float | None  #: Å³, periodic structures only
    pressure_GPa: float | None  #: -trace(stress)/3, periodic structures only
    steps: int
    converged: bool

    @property
    def structure(self):
        """The relaxed structure as a pymatgen Structure (periodic) or Molecule."""
        return io.to_pymatgen(self.atoms)


@dataclass
class RelaxSettings:
    fmax: float = 0.05  #: eV/Å (and eV/Å for the cell's generalised forces)
    steps: int = 500
    optimizer: str = "FIRE"
    cell: bool = False
    pressure_GPa: float = 0.0
    fix_symmetry: bool = False

    def validate(self) -> RelaxSettings:
        """Raise ValueError naming a setting out of range (before any structure is touched)."""
        if isinstance(self.fmax, bool) or not isinstance(self.fmax, (int, float)) or not 0 < self.fmax < math.inf:
            raise OptionError(f"fmax must be a finite force above 0 eV/Å, got {self.fmax!r} (e.g. 0.05)")
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 0:
            raise OptionError(f"steps must be a whole number >= 0, got {self.steps!r}")
        if isinstance(self.pressure_GPa, bool) or not np.isfinite(self.pressure_GPa):
            raise OptionError(f"pressure_GPa must be a finite number, got {self.pressure_GPa!r}")
        return self


def relax(structures, model: str | Path | Model | None = None, *, fmax: float = 0.05, steps: int = 500,
          optimizer: str = "FIRE", cell: bool = False, pressure_GPa: float = 0.0, fix_symmetry: bool = False,
          trajectory: str | Path | None = None, dtype: str = "float64", device: str = "cpu",
          progress: bool = False):
    """Relax one structure (returns a :class:`RelaxResult`) or several as one batch (returns a list).

    Args:
        structures: ASE atoms or a pymatgen Structure/Molecule, or a list of them.
        model: model file, shipped model name, loaded Model or NNPCalculator; None: the default.
        fmax: convergence threshold on the largest force, eV/Å.
        steps: most optimizer steps per structure.
        optimizer: "FIRE", "BFGS" or "LBFGS".
        cell: relax the cell too (FrechetCellFilter) at ``pressure_GPa``.
        fix_symmetry: keep the space group (ase FixSymmetry; needs spglib).
        trajectory: file for every step's frame (``NAME-i.ext`` per structure when several).
    """
    single = isinstance(structures, Atoms) or io.is_pymatgen(structures)
    atoms_list = [io.to_atoms(s) for s in ([structures] if single else structures)]
    settings = RelaxSettings(fmax, steps, _optimizer_name(optimizer), cell, pressure_GPa, fix_symmetry).validate()
    trajectories = [_trajectory_path(trajectory, i, len(atoms_list)) for i in range(len(atoms_list))]
    for path in filter(None, trajectories):  # a place that cannot be written is refused before the work
        io.check_writable(path)
    model = as_model(model, dtype, device)
    for atoms in atoms_list:  # refuse bad input before any file is opened
        _validate(atoms, model, settings)
    runs = [_Relaxation(a, model, settings, path) for a, path in zip(atoms_list, trajectories)]
    try:
        with progress_bar(steps, f"relax ({len(runs)})", progress) as bar:
            _lockstep(runs, steps, bar)
    finally:
        for run in runs:
            run.close()
    results = [run.result() for run in runs]
    return results[0] if single else results


def _optimizer_name(name: str) -> str:
    if name.upper() not in OPTIMIZERS:
        raise OptionError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return name.upper()


def _trajectory_path(trajectory, index: int, count: int) -> Path | None:
    if trajectory is None:
        return None
    path = Path(trajectory)
    return path if count == 1 else path.with_name(f"{path.stem}-{index}{path.suffix}")


def _lockstep(runs: list[_Relaxation], steps: int, bar) -> None:
    """One batched evaluation, then one optimizer step each, until every structure is done."""
    while active := [run for run in runs if not run.done]:
        calculate_batch([run.atoms for run in active])  # one model call; each calculator keeps its results
        for run in active:
            run.advance(steps)
        bar.update(1)
        bar.set_postfix_str(f"{sum(not r.done for r in runs)} running")


class _Relaxation:
    """One structure and its ASE optimizer, stepped from outside."""

    def __init__(self, atoms: Atoms, model: Model, settings: RelaxSettings, trajectory: Path | None):
        from ase import optimize
        from ase.filters import FrechetCellFilter

        self.name = atoms.info.get("source", atoms.get_chemical_formula())
        self.atoms = atoms
        atoms.calc = NNPCalculator(model)
        if settings.fix_symmetry:
            _fix_symmetry(atoms)
        target = atoms
        if settings.cell:
            target = FrechetCellFilter(atoms, scalar_pressure=settings.pressure_GPa * GPA_TO_EV_PER_A3)
        self.opt = getattr(optimize, settings.optimizer)(target, logfile=None)
        self.opt.fmax = settings.fmax
        self.writer = io.FrameWriter(trajectory, "w") if trajectory else None
        self.done = self.converged = False

    def advance(self, max_steps: int) -> None:
        """Record this step, stop if converged or out of steps, else take one optimizer step."""
        if self.writer:
            self.writer.write(self.atoms)
        self.converged = bool(self.opt.converged())
        if self.converged or self.opt.nsteps >= max_steps:
            self.done = True
            return
        self.opt.step()
        self.opt.nsteps += 1

    def result(self) -> RelaxResult:
        atoms = self.atoms
        periodic = bool(atoms.pbc.all())
        pressure = -np.trace(atoms.get_stress(voigt=False)) / 3 * EV_PER_A3_TO_GPA if periodic else None
        return RelaxResult(
            name=self.name, atoms=io.snapshot(atoms), energy=float(atoms.get_potential_energy()),
            max_force=float(np.linalg.norm(atoms.get_forces(), axis=1).max(initial=0.0)),
            volume=float(atoms.get_volume()) if periodic else None,
            pressure_GPa=None if pressure is None else float(pressure),
            steps=self.opt.nsteps, converged=self.converged,
        )

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _validate(atoms: Atoms, model: Model, settings: RelaxSettings) -> None:
    model.check(atoms)
    if settings.cell:
        io.require_3d_cell(atoms, "relaxing the cell (--cell / cell=True)")


def _fix_symmetry(atoms: Atoms) -> None:
    optional("spglib")  # FixSymmetry needs it: say which extra installs it
    from ase.constraints import FixSymmetry

    atoms.set_constraint(FixSymmetry(atoms))
