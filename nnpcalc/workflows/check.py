"""The physics self-check of a model file, as rows of a pass/fail table.

Reuses :mod:`nnpcalc.testing` on each structure: forces and stress against finite
differences, rotation, translation and lattice-image invariance, supercell extensivity,
charge neutrality (models with charges) and a short NVE run's energy conservation. Without
structures it uses ``testing.reference_structures()`` restricted to the model's elements, plus
a small skewed periodic cell of the model's own elements when none of those is periodic.
Finite differences cost 6 energy evaluations per atom: pass small structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from ase import Atoms

from .. import testing
from ..calculator import NNPCalculator
from ..properties import dtype_name
from ..runtime import Model
from ..units import FS_TO_ASE_TIME
from . import io
from . import scans as scan
from .common import as_model, progress_bar

#: finite-difference step and tolerance per dtype (Å / strain; eV/Å, eV/Å³)
FINITE_DIFFERENCES = {
    "float64": {"forces": (1e-4, 1e-5), "stress": (1e-5, 1e-6)},
    "float32": {"forces": (1e-2, 5e-2), "stress": (1e-3, 5e-3)},
}
#: largest |E_total(t) − E_total(0)| per atom tolerated in the NVE check, eV/atom
NVE_TOLERANCE = {"float64": 1e-3, "float32": 2e-3}


@dataclass
class CheckRow:
    structure: str
    check: testing.Check

    @property
    def passed(self) -> bool:
        return self.check.passed


def check(model: str | Path | Model | None = None, structures=None, *, dtype: str = "float64",
          device: str = "cpu", nve_steps: int = 100, scans: bool = True, md_steps: int = 200,
          md_temperature_K: float = 300.0, progress: bool = False) -> list[CheckRow]:
    """Run every check on every structure; ``structures``: atoms, a list, a dict name → atoms, or None.

    ``scans``: dimer walls of the model's elements from 0.5 Å and bond (cell) compressions;
    ``md_steps``: a Langevin MD of that many 0.5 fs steps per structure (and, by default, a
    periodic water box or a metal slab and vacancy cell) watching for fused atoms (0: skip).
    """
    model = as_model(model, dtype, device)
    calc = NNPCalculator(model)
    named = _named(structures) if structures is not None else default_structures(model)
    rows = []
    with progress_bar(len(named), "check", progress, unit="structure") as bar:
        for name, atoms in named.items():
            model.check(atoms)
            rows += [CheckRow(name, c) for c in checks_of(calc, atoms, model, nve_steps)]
            rows += [CheckRow(name, c) for c in hole_checks(calc, atoms, scans, md_steps, md_temperature_K)]
            bar.update(1)
    if scans:
        rows += [CheckRow("dimers", c) for c in scan.dimer_checks(calc, model.elements)]
    if md_steps > 0 and structures is None:
        for name, atoms in stability_structures(model.elements).items():
            rows.append(CheckRow(name, scan.fused_md_check(calc, atoms, md_steps, md_temperature_K)))
    return rows


def hole_checks(calc, atoms: Atoms, scans: bool, md_steps: int, temperature_K: float) -> list[testing.Check]:
    """Bond (or cell) compression walls and a short MD watching for fused atoms."""
    rows = scan.bond_checks(calc, atoms) if scans and len(atoms) > 1 else []
    if md_steps > 0:
        rows.append(scan.fused_md_check(calc, atoms, md_steps, temperature_K))
    return rows


def stability_structures(elements: list[str]) -> dict[str, Atoms]:
    """What users run first: a periodic water box (models with H and O), an fcc(111) slab and a
    vacancy cell of the first fcc metal of the model."""
    from ase.build import bulk, fcc111

    from ..systems import water_box

    out = {}
    if {"H", "O"} <= set(elements):
        out["water-box-8"] = water_box(2)
    metal = next((e for e in ("Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt") if e in elements), None)
    if metal:
        out[f"{metal}-fcc111-slab"] = fcc111(metal, (2, 2, 3), vacuum=5.0, periodic=True)
        vacancy = bulk(metal, "fcc", cubic=True).repeat((2, 2, 2))
        del vacancy[0]
        out[f"{metal}-vacancy"] = vacancy
    return out


def checks_of(calc: NNPCalculator, atoms: Atoms, model: Model, nve_steps: int) -> Iterator[testing.Check]:
    dtype = dtype_name(model.dtype)
    tol, fd = testing.TOLERANCES[dtype], FINITE_DIFFERENCES[dtype]
    yield testing.check_forces(calc, atoms, fd["forces"][1], delta=fd["forces"][0])
    if atoms.pbc.any():
        yield testing.check_stress(calc, atoms, fd["stress"][1], delta=fd["stress"][0])
    yield testing.check_rotation(calc, atoms, tol)
    yield testing.check_translation(calc, atoms, tol)
    if atoms.pbc.any():
        yield testing.check_lattice_image(calc, atoms, tol)
    if atoms.pbc.all():
        yield testing.check_supercell(calc, atoms, tol)
    if "charges" in model.outputs:
        yield testing.check_charge_sum(calc, atoms, tol["charge"], total=0.0)
    if nve_steps > 0:
        yield check_nve(calc, atoms, NVE_TOLERANCE[dtype], steps=nve_steps)


def check_nve(calc, atoms: Atoms, tolerance: float, steps: int = 100, timestep_fs: float = 0.25,
              temperature_K: float = 300.0, seed: int = 0) -> testing.Check:
    """Velocity Verlet from Maxwell-Boltzmann velocities: the total energy must stay put."""
    from ase.md.verlet import VelocityVerlet

    from .md import thermalize

    moving = atoms.copy()
    moving.calc = calc
    thermalize(moving, temperature_K, np.random.default_rng(seed))
    dyn = VelocityVerlet(moving, timestep=timestep_fs * FS_TO_ASE_TIME)
    start = moving.get_total_energy()
    worst = 0.0
    for _ in range(steps):
        dyn.step()
        worst = max(worst, abs(moving.get_total_energy() - start))
    return testing.Check(f"NVE energy conservation ({steps} × {timestep_fs:g} fs, eV/atom)",
                         float(worst / len(moving)), tolerance)


def default_structures(model: Model) -> dict[str, Atoms]:
    """The reference structures of the model's elements that it serves (a model with
    electrostatics serves no slab; one marked ``periodic: false`` no cell), plus a periodic probe."""
    known = set(model.elements)
    named = {name: a for name, a in testing.reference_structures().items()
             if set(a.get_chemical_symbols()) <= known and _serves(model, a)}
    if model.metadata.get("periodic", True) and not any(a.pbc.all() for a in named.values()):
        named["periodic-probe"] = periodic_probe(model.elements)
    return named


def _serves(model: Model, atoms: Atoms) -> bool:
    from ..errors import InvalidStructureError

    if atoms.pbc.any() and not model.metadata.get("periodic", True):
        return False
    try:
        model.check(atoms)
    except InvalidStructureError:
        return False
    return True


def periodic_probe(elements: list[str]) -> Atoms:
    """Four atoms of the given elements ~3 Å apart in a skewed cell smaller than a typical cutoff."""
    cell = [[4.2, 0.0, 0.0], [0.3, 4.1, 0.0], [0.2, 0.4, 4.3]]
    fractions = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    atoms = Atoms([elements[i % len(elements)] for i in range(4)], scaled_positions=fractions, cell=cell, pbc=True)
    atoms.rattle(0.05, seed=5)
    return atoms


def _named(structures) -> dict[str, Atoms]:
    if isinstance(structures, dict):
        return {name: io.to_atoms(a) for name, a in structures.items()}
    items = [structures] if isinstance(structures, Atoms) or io.is_pymatgen(structures) else list(structures)
    atoms = [io.to_atoms(s) for s in items]
    return {a.info.get("source", f"{i}: {a.get_chemical_formula()}"): a for i, a in enumerate(atoms)}
