"""Geometries off equilibrium, for reference data without holes (all seeded, all deterministic).

Systems by name (:func:`system`): a G2 molecule (``"CH3CH2OH"``), an ion made from one by
(de)protonation (``"CH3NH3+"``), a water cluster or periodic box (``"water-cluster-4"``,
``"water-box-2"``), a single atom (``"atom-O"``) and, for fcc metals, ``"Cu-bulk"``,
``"Cu-fcc111"``, ``"Cu-fcc100"``, ``"Cu-vacancy"``, ``"Cu-cluster-13"``. Samplers turn a
system into geometries: rigid fragment approaches (:func:`approach`), bond stretches
(:func:`bond_scan`) and compressed/stretched, rattled copies (:func:`distorted`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.collections import g2
from ase.data import covalent_radii

#: ions: name → (G2 parent, index of the atom that gains a proton, or loses its H with "-"), charge
IONS = {
    "NH4+": ("NH3", 0, +1), "CH3NH3+": ("H3CNH2", 1, +1), "H3O+": ("H2O", 0, +1),
    "CH3OH2+": ("CH3OH", 1, +1), "OH-": ("H2O", -1, -1), "CH3O-": ("CH3OH", -1, -1),
    "HCOO-": ("HCOOH", -1, -1), "CH3COO-": ("CH3COOH", -1, -1), "CH3CH2O-": ("CH3CH2OH", -1, -1),
}


def ion(name: str) -> tuple[Atoms, int]:
    """An ion and its charge: a proton added to (or an O–H proton taken from) a G2 molecule."""
    parent, site, charge = IONS[name]
    atoms = molecule(parent)
    return (protonate(atoms, site) if charge > 0 else deprotonate(atoms)), charge


def protonate(atoms: Atoms, site: int, bond: float = 1.02) -> Atoms:
    """Add H at ``bond`` Å from atom ``site``, opposite its bonded neighbours (a lone pair)."""
    atoms = atoms.copy()
    centre = atoms.positions[site]
    away = [centre - p for k, p in enumerate(atoms.positions) if k != site and np.linalg.norm(centre - p) < 1.6]
    direction = np.sum([v / np.linalg.norm(v) for v in away], axis=0)
    if np.linalg.norm(direction) < 1e-3:  # symmetric neighbours: any perpendicular direction
        direction = np.cross(away[0], [0.3, 0.5, 0.8])
    atoms += Atoms("H", [centre + bond * direction / np.linalg.norm(direction)])
    return atoms


def deprotonate(atoms: Atoms) -> Atoms:
    """Remove the hydrogen bonded to an oxygen (the acidic proton)."""
    atoms = atoms.copy()
    oxygens = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "O"]
    hydrogens = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "H"]
    acidic = [h for h in hydrogens if min(atoms.get_distance(h, o) for o in oxygens) < 1.1]
    del atoms[acidic[-1]]
    return atoms


def water_cluster(n: int, seed: int) -> Atoms:
    """``n`` randomly oriented waters with centres ≥ 2.7 Å apart."""
    rng = np.random.default_rng(seed)
    cluster, centres = Atoms(), []
    while len(centres) < n:
        centre = rng.uniform(0, 2.6 * n ** (1 / 3), 3)
        if all(np.linalg.norm(centre - c) > 2.7 for c in centres):
            water = molecule("H2O")
            water.rotate(rng.uniform(0, 360), rng.normal(size=3))
            water.translate(centre)
            cluster += water
            centres.append(centre)
    return cluster


def metal_system(element: str, kind: str, seed: int = 0) -> Atoms:
    """fcc ``element`` as bulk, a (111)/(100) slab, a vacancy cell or a cluster of n atoms."""
    from ase.build import bulk, fcc100, fcc111
    from ase.cluster import Icosahedron

    if kind == "bulk":
        return bulk(element, "fcc", cubic=True).repeat((2, 2, 2))
    if kind == "fcc111":
        return fcc111(element, (2, 2, 4), vacuum=6.0, periodic=True)
    if kind == "fcc100":
        return fcc100(element, (2, 2, 4), vacuum=6.0, periodic=True)
    if kind == "vacancy":
        cell = bulk(element, "fcc", cubic=True).repeat((2, 2, 2))
        del cell[np.random.default_rng(seed).integers(len(cell))]
        return cell
    if kind.startswith("cluster-"):
        shells = {"13": 2, "55": 3}[kind.removeprefix("cluster-")]
        return Icosahedron(element, shells)
    raise ValueError(f"unknown metal system kind {kind!r}")


def system(name: str, seed: int = 0) -> tuple[Atoms, int]:
    """A named system and its total charge (see the module docstring for the names)."""
    from ..systems import water_box

    if name in IONS:
        return ion(name)
    if name.startswith("water-cluster-"):
        return water_cluster(int(name.removeprefix("water-cluster-")), seed), 0
    if name.startswith("water-box-"):
        return water_box(int(name.removeprefix("water-box-")), 3.1, seed), 0
    if name.startswith("atom-"):
        return Atoms(name.removeprefix("atom-")), 0
    if "-" in name and name.split("-")[0] in ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"):
        element, kind = name.split("-", 1)
        return metal_system(element, kind, seed), 0
    if name in g2.names:
        return molecule(name), 0
    raise ValueError(f"unknown system {name!r}; see nnpcalc.training.sampling")


def approach(first: Atoms, second: Atoms, distances, seed: int, orient: bool = True) -> list[Atoms]:
    """``second`` moved rigidly towards ``first`` along a random axis: one geometry per centre
    distance; for two single atoms, the dimer scan."""
    rng = np.random.default_rng(seed)
    second = second.copy()
    if orient and len(second) > 1:
        second.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COP")
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    anchor_a, anchor_b = _anchor(first), _anchor(second)
    out = []
    for d in distances:
        moved = second.copy()
        moved.translate(anchor_a - anchor_b + d * axis)
        out.append(first + moved)
    return out


def _anchor(atoms: Atoms) -> np.ndarray:
    """The heaviest atom's position (the approach is measured between heavy atoms)."""
    return atoms.positions[int(np.argmax(atoms.numbers))]


def bonds(atoms: Atoms, factor: float = 1.2) -> list[tuple[int, int]]:
    """Pairs closer than ``factor`` × the sum of their covalent radii."""
    pairs = []
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            if atoms.get_distance(i, j) < factor * (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]):
                pairs.append((i, j))
    return pairs


def bond_scan(atoms: Atoms, i: int, j: int, scales) -> list[Atoms]:
    """Bond i–j set to ``scale`` × its length by moving atom j (and nothing else)."""
    out = []
    vector = atoms.positions[j] - atoms.positions[i]
    for scale in scales:
        moved = atoms.copy()
        moved.positions[j] = atoms.positions[i] + scale * vector
        out.append(moved)
    return out


def distorted(atoms: Atoms, count: int, seed: int, scale_range=(0.85, 1.25), rattle: float = 0.05) -> list[Atoms]:
    """Copies uniformly scaled (positions, and the cell when periodic) and rattled."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        copy = atoms.copy()
        factor = rng.uniform(*scale_range)
        if copy.pbc.any():
            copy.set_cell(copy.cell.array * factor, scale_atoms=True)
        else:
            centre = copy.positions.mean(axis=0)
            copy.positions = centre + factor * (copy.positions - centre)
        copy.positions += rng.normal(scale=rattle, size=copy.positions.shape)
        out.append(copy)
    return out


def strained(atoms: Atoms, count: int, seed: int, max_strain: float, rattle: float) -> list[Atoms]:
    """Copies under random symmetric strains up to ``max_strain``, rattled."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        copy = atoms.copy()
        strain = np.eye(3) + rng.uniform(-max_strain, max_strain, (3, 3))
        copy.set_cell(copy.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
        copy.positions += rng.normal(scale=rattle, size=copy.positions.shape)
        out.append(copy)
    return out
