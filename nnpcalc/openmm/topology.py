"""OpenMM topologies from ASE atoms, and what a model needs to read from a topology.

OpenMM wants a periodic box in reduced form (a along x, b in the xy plane, each vector
short against the previous ones). :func:`from_atoms` rotates a periodic structure into
that frame (the rotation is returned; molecules are not rotated) and reduces the box.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import openmm.app as app
import openmm.unit as unit
from ase import Atoms
from ase.data import chemical_symbols

from ..errors import InvalidStructureError, OptionError
from ..units import NM_TO_ANGSTROM


def from_atoms(atoms: Atoms) -> tuple[app.Topology, unit.Quantity, np.ndarray]:
    """(topology, positions in nm, rotation R): OpenMM's frame is ``positions @ R.T``."""
    periodic = _periodic(atoms)
    rotation = np.eye(3)
    cell = atoms.cell.array
    if periodic:
        standard, rotation = atoms.cell.standard_form()
        cell = _reduced_box(standard.array)
    topology = app.Topology()
    chain = topology.addChain()
    for z in atoms.numbers:  # one residue per atom (as ions are in a PDB): names stay unique
        symbol = chemical_symbols[z]
        topology.addAtom(symbol, app.Element.getByAtomicNumber(int(z)), topology.addResidue(symbol.upper(), chain))
    if periodic:
        topology.setPeriodicBoxVectors(cell / NM_TO_ANGSTROM * unit.nanometer)
    positions = atoms.positions @ rotation.T / NM_TO_ANGSTROM
    return topology, positions * unit.nanometer, rotation


def water_topology(atoms: Atoms, periodic: bool | None = None) -> app.Topology:
    """A topology of waters (atoms in O, H, H order, one HOH residue each, with O–H bonds), as water
    force fields expect for ML/MM; ``periodic`` (default: every axis of ``atoms`` periodic) sets the
    box from ``atoms.cell``, which must already be in OpenMM's reduced form (a cubic
    :func:`nnpcalc.systems.water_box` is)."""
    if len(atoms) % 3 or any(atoms.get_chemical_symbols()[k:k + 3] != ["O", "H", "H"] for k in range(0, len(atoms), 3)):
        raise InvalidStructureError("water_topology needs waters in O, H, H order; use from_atoms for other structures")
    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(len(atoms) // 3):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(o, topology.addAtom(name, hydrogen, residue))
    if bool(atoms.pbc.all()) if periodic is None else periodic:
        topology.setPeriodicBoxVectors(atoms.cell.array / NM_TO_ANGSTROM * unit.nanometer)
    return topology


def _periodic(atoms: Atoms) -> bool:
    if atoms.pbc.all():
        return True
    if atoms.pbc.any():
        raise InvalidStructureError(
            f"pbc={atoms.pbc.tolist()}: an OpenMM box is periodic in all three directions. "
            "Set atoms.pbc = True with a cell (add vacuum along open directions) or atoms.pbc = False."
        )
    return False


def _reduced_box(cell: np.ndarray) -> np.ndarray:
    """A lower-triangular cell (Å) reduced the way OpenMM requires; same lattice."""
    if np.any(np.diag(cell) <= 0):
        raise InvalidStructureError(
            f"cell {cell.round(4).tolist()} is left-handed or has no volume; OpenMM needs a "
            "right-handed box. Swap two cell vectors (atoms.set_cell(atoms.cell[[1, 0, 2]]))."
        )
    a, b, c = cell.copy()
    c = c - b * np.round(c[1] / b[1])
    c = c - a * np.round(c[0] / a[0])
    b = b - a * np.round(b[0] / a[0])
    return np.array([a, b, c])


def atomic_numbers(topology: app.Topology, atoms: list[int] | None = None) -> np.ndarray:
    """Atomic numbers of the selected particles; a clear error where an element is missing."""
    everything = list(topology.atoms())
    selected = everything if atoms is None else [everything[i] for i in atoms]
    missing = [a for a in selected if a.element is None]
    if missing:
        named = ", ".join(f"{a.index} ({a.name} in {a.residue.name}{a.residue.id})" for a in missing[:5])
        raise InvalidStructureError(
            f"{len(missing)} particle(s) have no element in the topology: {named}. The model "
            "needs every element: load a PDB with element columns (77-78), or build the "
            "topology with elements, or leave these particles out with atoms=[...]."
        )
    return np.array([a.element.atomic_number for a in selected], dtype=np.int64)


def check_selection(atoms, count: int) -> list[int] | None:
    """Validated particle indices for ML/MM (None = every particle)."""
    if atoms is None:
        return None
    wrong = [i for i in atoms if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))]
    if wrong:
        raise OptionError(f"atoms= must list whole particle indices; got {wrong[:5]!r} (a float or a bool would "
                          "silently pick another particle). Give integers, e.g. list(range(9)), or "
                          "numpy.flatnonzero(mask) for a boolean mask")
    indices = [int(i) for i in atoms]
    bad = [i for i in indices if not 0 <= i < count]
    if not indices or bad:
        raise ValueError(f"atoms= must list particle indices in 0..{count - 1}; got {indices[:10]}")
    repeated = sorted(i for i, n in Counter(indices).items() if n > 1)
    if repeated:
        raise ValueError(f"atoms= lists some particles more than once: {repeated[:10]}")
    return indices
