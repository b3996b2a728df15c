"""Relax a molecular crystal, positions and cell, with ASE's FrechetCellFilter through nnpcalc.relax.

Dry ice (solid CO2, Pa-3, 12 atoms) on the shipped default model (H, C, N, O):

    .venv/bin/python examples/relax_crystal.py [--model MODEL]

The same from the command line: `nnp relax co2.cif --cell -o co2-relaxed.cif`.
"""

import argparse

from ase import Atoms
from ase.spacegroup import crystal

import nnpcalc


def dry_ice(a: float = 5.624) -> Atoms:
    """CO2 in Pa-3 (space group 205): C on the fcc sites, O at (x, x, x) with x = 0.1185."""
    return crystal(["C", "O"], basis=[(0, 0, 0), (0.1185, 0.1185, 0.1185)], spacegroup=205,
                   cellpar=[a, a, a, 90, 90, 90])


def main(model=None, steps: int = 200, fmax: float = 0.05):
    atoms = dry_ice()
    result = nnpcalc.relax(atoms, model, cell=True, fmax=fmax, steps=steps)
    a, b, c = result.atoms.cell.lengths()
    print(f"dry ice: {len(atoms)} atoms, {result.steps} steps, converged: {result.converged}")
    print(f"  energy {result.energy:.4f} eV, largest force {result.max_force:.3g} eV/Å, "
          f"pressure {result.pressure_GPa:.3g} GPa")
    print(f"  cell {atoms.cell.lengths()[0]:.3f} Å -> {a:.3f} x {b:.3f} x {c:.3f} Å "
          f"(volume {atoms.get_volume():.1f} -> {result.volume:.1f} Å³)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    main(parser.parse_args().model)
