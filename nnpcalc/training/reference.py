"""Reference data from real methods that install from PyPI, generated deterministically.

GFN2-xTB (tblite) for H/C/N/O molecules: energy, forces, Mulliken charges, dipole (GFN1-xTB
too, as a second fidelity). ASE's EMT for fcc metals: energy, forces, stress of strained,
rattled and skewed cells from 1 to 32 atoms and MD frames.
Labels are stored in extended XYZ under ``ref_*`` keys (``ref_energy`` eV, ``ref_forces``
eV/Å, ``ref_charges`` e, ``ref_dipole`` e·Å) with ``info["method"]`` naming the method.
Run ``OMP_NUM_THREADS=1``: tblite gains nothing from a second thread on small molecules.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.collections import g2
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from .sampling import water_cluster  # the one cluster builder (same atoms as before, same seeds)

HCNO = {"H", "C", "N", "O"}


def gfn2(charge: int = 0):
    """GFN2-xTB for a structure of total charge ``charge`` (tblite reads it from here only)."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", charge=charge, verbosity=0)


def gfn1(charge: int = 0):
    from tblite.ase import TBLite

    return TBLite(method="GFN1-xTB", charge=charge, verbosity=0)


def emt(charge: int = 0):
    from ase.calculators.emt import EMT

    if charge:
        raise ValueError(f"EMT describes neutral metals only, got charge {charge}")
    return EMT()


#: method name → calculator factory taking the total charge
METHODS = {"GFN2-xTB": gfn2, "GFN1-xTB": gfn1, "EMT": emt}


def calculator(method: str, charge: int = 0):
    """The reference calculator of ``method`` for total charge ``charge`` (e)."""
    if method not in METHODS:
        raise ValueError(f"unknown reference method {method!r}; choose from {', '.join(METHODS)}")
    return METHODS[method](charge)


def label(atoms: Atoms, calc, method: str, charge: int = 0) -> Atoms:
    """A copy of ``atoms`` carrying the reference labels ``calc`` provides (``ref_*`` keys).

    ``charge``: the total charge ``calc`` was made for; stored as ``info["charge"]``. Atoms
    that already carry ``calc`` (an MD on the reference) reuse its results: no second call.
    """
    if atoms.calc is not calc:
        atoms = atoms.copy()
        atoms.calc = calc
    labelled = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    labelled.info.update(method=method, ref_energy=atoms.get_potential_energy(), charge=float(charge))
    labelled.arrays["ref_forces"] = atoms.get_forces().copy()
    if atoms.pbc.all():
        labelled.info["ref_stress"] = atoms.get_stress(voigt=False)
    if "charges" in calc.implemented_properties:
        labelled.arrays["ref_charges"] = atoms.get_charges().copy()
        labelled.info["ref_dipole"] = np.asarray(atoms.get_dipole_moment())
    return labelled


def md_frames(atoms: Atoms, calc, frames: int, every: int, temperature_K: float, seed: int) -> list[Atoms]:
    """Geometries sampled from Langevin MD on the reference method itself."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature_K, friction=0.02 / units.fs, rng=rng, fixcm=False)
    out = []
    for _ in range(frames):
        dyn.run(every)
        out.append(atoms.copy())
    return out


def water_box_dataset(seed: int = 0, frames: int = 40, n: int = 2) -> list[Atoms]:
    """GFN2-xTB under PBC: energy, forces, stress and charges of MD frames of an n³-water box."""
    from ..systems import water_box

    calc = gfn2()
    geometries = md_frames(water_box(n, 3.1, seed), calc, frames, 5, 350.0, seed)
    return [label(g, calc, "GFN2-xTB") for g in geometries]


def hcno_dataset(seed: int = 0, md_frames_per_system: int = 150) -> list[Atoms]:
    """Ethanol and water-cluster MD frames plus rattled G2 H/C/N/O molecules, labelled by GFN2-xTB."""
    calc = gfn2()
    rng = np.random.default_rng(seed)
    systems = [molecule("CH3CH2OH"), water_cluster(2, seed), water_cluster(4, seed + 1), water_cluster(6, seed + 2)]
    geometries = []
    for k, system in enumerate(systems):
        for temperature in (300.0, 600.0):
            geometries += md_frames(system, calc, md_frames_per_system, 10, temperature, seed + 10 * k)
    for name in g2.names:
        mol = g2[name]
        if set(mol.get_chemical_symbols()) <= HCNO and len(mol) > 1:
            for _ in range(4):
                rattled = mol.copy()
                rattled.positions += rng.normal(scale=0.08, size=rattled.positions.shape)
                geometries.append(rattled)
    return [label(g, calc, "GFN2-xTB") for g in geometries]


METALS = ("Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt")


def _strained(atoms: Atoms, rng, max_strain: float, rattle: float) -> Atoms:
    atoms = atoms.copy()
    strain = np.eye(3) + rng.uniform(-max_strain, max_strain, (3, 3))
    atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def metal_cells(element: str, rng) -> list[Atoms]:
    """Primitive (1 atom), skewed, conventional (4) and supercell (8-32 atoms) fcc cells."""
    from ase.build import bulk

    primitive = bulk(element, "fcc")
    skewed = primitive.copy()
    skewed.set_cell(skewed.cell.array + rng.uniform(-0.4, 0.4, (3, 3)), scale_atoms=True)
    cubic = bulk(element, "fcc", cubic=True)
    return [primitive, skewed, cubic, primitive.repeat((2, 2, 2)), cubic.repeat((2, 2, 1)), cubic.repeat((2, 2, 2))]


def emt_dataset(seed: int = 0, per_cell: int = 8, md_frames_per_metal: int = 40) -> list[Atoms]:
    """Strained, rattled and skewed fcc cells and 600 K MD frames of every EMT metal."""
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    calc = EMT()
    geometries = []
    for element in METALS:
        for cell in metal_cells(element, rng):
            geometries += [_strained(cell, rng, 0.04, 0.05) for _ in range(per_cell)]
        geometries += md_frames(metal_cells(element, rng)[3], calc, md_frames_per_metal, 10, 600.0, seed)
    return [label(g, calc, "EMT") for g in geometries]
