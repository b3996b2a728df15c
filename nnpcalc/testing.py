"""Physics checks of a calculator, as library code: used by the test suite and `nnp check`.

Each check takes an ASE calculator and a structure and returns a :class:`Check` with the
worst deviation found and the tolerance it was held to. Nothing here asserts; callers do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

#: default tolerances per calculator dtype (absolute; eV, eV/Å, eV/Å³, e)
TOLERANCES = {
    "float64": {"energy": 1e-8, "forces": 1e-6, "stress": 1e-7, "charge": 1e-10},
    "float32": {"energy": 2e-4, "forces": 5e-3, "stress": 5e-4, "charge": 1e-5},
}


@dataclass
class Check:
    name: str
    error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def __str__(self) -> str:
        return f"{self.name}: error {self.error:.3g} (tolerance {self.tolerance:.3g}) {'ok' if self.passed else 'FAIL'}"


def program_inputs(atoms: Atoms, cutoff: float, dtype=None) -> tuple:
    """One structure as ``Potential.evaluate`` and the exported programs take it (float64 unless
    ``dtype``): positions, numbers, cell, pbc, total charge (``atoms.info["charge"]``), batch, the
    default fidelity, and the full neighbour list within ``cutoff`` (edge_index, shifts)."""
    import torch

    from .neighbors import neighbor_graph
    from .runtime import stack_structures

    dtype = dtype or torch.float64
    positions, numbers, cell, pbc, batch = stack_structures([atoms], dtype)
    graph = neighbor_graph(positions, cell, pbc, batch, cutoff)
    charge = torch.tensor([atoms.info.get("charge", 0.0)], dtype=dtype)
    return (positions, numbers, cell, pbc, charge, batch, torch.zeros(1, dtype=torch.long), *graph)


def _with(calc: Calculator, atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms


def _energy(calc: Calculator, atoms: Atoms) -> float:
    return _with(calc, atoms).get_potential_energy()


def finite_difference_forces(calc: Calculator, atoms: Atoms, delta: float = 1e-4) -> np.ndarray:
    """Central differences −ΔE/Δr for every atom and direction."""
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, k] += sign * delta
                energies.append(_energy(calc, moved))
            forces[i, k] = -(energies[0] - energies[1]) / (2 * delta)
    return forces


def finite_difference_stress(calc: Calculator, atoms: Atoms, delta: float = 1e-5) -> np.ndarray:
    """Central differences 1/V ΔE/Δε of a symmetric strain applied to cell and positions."""
    stress = np.zeros((3, 3))
    volume = atoms.get_volume()
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += 0.5 * sign * delta
                strain[b, a] += 0.5 * sign * delta
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                energies.append(_energy(calc, deformed))
            stress[a, b] = (energies[0] - energies[1]) / (2 * delta) / volume
    return stress


def check_forces(calc, atoms, tolerance: float, delta: float = 1e-4) -> Check:
    analytic = _with(calc, atoms).get_forces()
    error = np.abs(analytic - finite_difference_forces(calc, atoms, delta)).max()
    return Check("forces = -dE/dr (finite differences)", float(error), tolerance)


def check_stress(calc, atoms, tolerance: float, delta: float = 1e-5) -> Check:
    analytic = voigt_6_to_full_3x3_stress(_with(calc, atoms).get_stress())
    error = np.abs(analytic - finite_difference_stress(calc, atoms, delta)).max()
    return Check("stress = 1/V dE/de (finite differences)", float(error), tolerance)


def random_rotation(seed: int = 0) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def check_rotation(calc, atoms, tolerance: dict, seed: int = 0) -> Check:
    """Energy invariant and forces equivariant under a rotation of positions and cell."""
    rot = random_rotation(seed)
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rot.T
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    a, b = _with(calc, atoms), _with(calc, rotated)
    e_err = abs(a.get_potential_energy() - b.get_potential_energy()) / tolerance["energy"]
    f_err = np.abs(a.get_forces() @ rot.T - b.get_forces()).max() / tolerance["forces"]
    return Check("rotation invariance (error / tolerance)", float(max(e_err, f_err)), 1.0)


def check_translation(calc, atoms, tolerance: dict, shift=(0.37, -1.21, 2.05)) -> Check:
    """A rigid translation changes no energy or force."""
    moved = atoms.copy()
    moved.positions += np.asarray(shift)
    a, b = _with(calc, atoms), _with(calc, moved)
    e_err = abs(a.get_potential_energy() - b.get_potential_energy()) / tolerance["energy"]
    f_err = np.abs(a.get_forces() - b.get_forces()).max() / tolerance["forces"]
    return Check("translation invariance (error / tolerance)", float(max(e_err, f_err)), 1.0)


def check_lattice_image(calc, atoms, tolerance: dict, atom: int = 0) -> Check:
    """Moving one atom by a lattice vector (along periodic axes) changes nothing."""
    moved = atoms.copy()
    moved.positions[atom] += atoms.cell.array.T @ np.where(atoms.pbc, [1, -2, 1], 0)
    a, b = _with(calc, atoms), _with(calc, moved)
    e_err = abs(a.get_potential_energy() - b.get_potential_energy()) / tolerance["energy"]
    f_err = np.abs(a.get_forces() - b.get_forces()).max() / tolerance["forces"]
    return Check("lattice-image invariance (error / tolerance)", float(max(e_err, f_err)), 1.0)


def check_supercell(calc, atoms, tolerance: dict, repeat=(2, 2, 2)) -> Check:
    """A periodic cell and its supercell: energy × n, equal stress, equal (tiled) forces."""
    big = atoms.repeat(repeat)
    n = int(np.prod(repeat))
    a, b = _with(calc, atoms), _with(calc, big)
    e_err = abs(n * a.get_potential_energy() - b.get_potential_energy()) / (n * tolerance["energy"])
    f_err = np.abs(np.tile(a.get_forces(), (n, 1)) - b.get_forces()).max() / tolerance["forces"]
    s_err = np.abs(a.get_stress() - b.get_stress()).max() / tolerance["stress"]
    return Check("supercell extensivity (error / tolerance)", float(max(e_err, f_err, s_err)), 1.0)


def check_charge_sum(calc, atoms, tolerance: float, total: float = 0.0) -> Check:
    """Predicted partial charges sum to ``atoms.info['charge']``."""
    charged = _with(calc, atoms)
    charged.info["charge"] = total
    error = abs(charged.get_charges().sum() - total)
    return Check(f"charges sum to total charge {total:g}", float(error), tolerance)


def reference_structures() -> dict[str, Atoms]:
    """Small systems covering every graph case: molecule, tiny and skewed cells, a slab."""
    from ase.build import bulk, fcc111, molecule

    rng = np.random.default_rng(1)
    tiny = bulk("Cu", "fcc", a=3.6)  # 1 atom, far smaller than the cutoff
    skewed = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    skewed.set_cell(skewed.cell.array + [[0.0, 0.3, 0.1], [0.2, 0.0, -0.3], [0.4, 0.1, 0.0]], scale_atoms=True)
    skewed.rattle(0.05, seed=2)
    slab = fcc111("Al", size=(2, 2, 2), vacuum=4.0)
    slab.pbc = [True, True, False]
    slab.rattle(0.05, seed=3)
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.02, seed=4)
    mixed = Atoms("CuAlOH", positions=rng.uniform(0, 3.2, (4, 3)), cell=[[3.2, 0, 0], [0.4, 3.0, 0], [0.3, 0.2, 3.1]], pbc=True)
    return {"cu-1atom": tiny, "al-skewed": skewed, "al-slab": slab, "ethanol": ethanol, "mixed-cell": mixed}
