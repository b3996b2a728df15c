"""Relax a crystal, positions and cell, with ASE's FrechetCellFilter through nnpcalc.relax, and check it.

Copper with a vacancy (2×2×2 fcc cells, 31 atoms), started strained by 3 %, sheared and rattled,
on the shipped `metals-emt` model (fcc metals fitted to ASE's EMT). The same start is relaxed
with EMT itself, the model's reference method, and the example asserts that the two agree:
volume per atom within 2 %, the cell cubic again, the atoms on the same sites.

    .venv/bin/python examples/relax_crystal.py [--model MODEL_WITH_CU]

The same from the command line: `nnp relax cu-vacancy.cif --cell -m metals-emt -o relaxed.cif`.
"""

import argparse

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

import nnpcalc

#: how far the model's relaxed cell may be from EMT's (metals-emt: a₀ within 0.3 % of EMT's for Cu)
VOLUME_TOLERANCE = 0.02
SHAPE_TOLERANCE = 0.01  #: relative spread of the cell lengths and of the angles from 90°
SITE_TOLERANCE = 0.05  #: Å, each atom's relaxed position against EMT's (in fractional coordinates × a)


def copper_vacancy(strain: float = 0.03) -> Atoms:
    """A 32-site Cu cell less one atom, strained, sheared and rattled away from its minimum."""
    atoms = bulk("Cu", "fcc", a=3.61 * (1 + strain), cubic=True).repeat(2)
    del atoms[0]
    cell = atoms.cell.array.copy()
    cell[1, 0] += 0.15  # a shear the relaxation has to undo
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.05, seed=0)
    return atoms


def emt_reference(atoms: Atoms, fmax: float, steps: int) -> Atoms:
    """The same relaxation with EMT, the method metals-emt was fitted to."""
    reference = atoms.copy()
    reference.calc = EMT()
    FIRE(FrechetCellFilter(reference), logfile=None).run(fmax=fmax, steps=steps)
    return reference


def check(relaxed: Atoms, reference: Atoms) -> dict:
    """Differences from EMT's relaxed cell; AssertionError naming the first one out of tolerance."""
    n = len(relaxed)
    volume = relaxed.get_volume() / n / (reference.get_volume() / n) - 1
    lengths, angles = relaxed.cell.cellpar()[:3], relaxed.cell.cellpar()[3:]
    shape = max(np.ptp(lengths) / lengths.mean(), np.abs(angles - 90).max() / 90)
    delta = relaxed.get_scaled_positions() - reference.get_scaled_positions()
    sites = np.abs((delta - np.round(delta)) @ reference.cell.array).max()
    assert abs(volume) < VOLUME_TOLERANCE, f"volume per atom {volume:+.2%} from EMT's"
    assert shape < SHAPE_TOLERANCE, f"cell not cubic: lengths {lengths}, angles {angles}"
    assert sites < SITE_TOLERANCE, f"an atom sits {sites:.3f} Å from its EMT site"
    return {"volume": volume, "shape": shape, "sites_A": sites}


def main(model="metals-emt", steps: int = 300, fmax: float = 0.01, assert_physics: bool = True):
    atoms = copper_vacancy()
    result = nnpcalc.relax(atoms, model, cell=True, fmax=fmax, steps=steps)
    print(f"Cu vacancy cell: {len(atoms)} atoms, {result.steps} steps, converged: {result.converged}")
    print(f"  energy {result.energy:.4f} eV, largest force {result.max_force:.3g} eV/Å, "
          f"pressure {result.pressure_GPa:.3g} GPa")
    print(f"  volume {atoms.get_volume() / len(atoms):.3f} -> {result.volume / len(atoms):.3f} Å³/atom, "
          f"cell {np.round(result.atoms.cell.cellpar(), 3).tolist()}")
    if assert_physics:
        reference = emt_reference(atoms, fmax, steps)
        diff = check(result.atoms, reference)
        print(f"  against EMT ({reference.get_volume() / len(atoms):.3f} Å³/atom): volume {diff['volume']:+.2%}, "
              f"cell shape {diff['shape']:.1e}, largest site difference {diff['sites_A']:.3f} Å")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals-emt", help="a model file that knows Cu (default: metals-emt)")
    main(parser.parse_args().model)
