"""Phonons of copper with phonopy: relax the cell, then bands, DOS and thermal properties.

    .venv/bin/python examples/phonons_cu.py [--model MODEL_WITH_CU] [--outdir DIR]

Needs the `materials` extra (phonopy) and matplotlib for band.png. Uses the shipped
`metals-emt` model (EMT-level copper); if a checkout lacks it, a small random-weight model
stands in so that the workflow still runs (its numbers are then meaningless). From the
command line: `nnp relax cu.cif --cell -m metals-emt -o cu-relaxed.cif` then
`nnp phonons cu-relaxed.cif -m metals-emt --supercell 3 3 3`.
"""

import argparse
import tempfile
from pathlib import Path

from ase.build import bulk

import nnpcalc
import nnpcalc.zoo


def demo_model(path: Path) -> Path:
    """A random-weight model file knowing Cu: shows the workflow, predicts nothing real."""
    from nnpcalc.nn.build import Architecture, build_potential, export

    arch = Architecture(elements=["Cu"], backbone="tensornet", heads=["energy"], fidelities=["demo"],
                        backbone_kwargs={"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.5},
                        head_hidden=16)
    export(build_potential(arch), arch, path)
    return path


def main(model=None, outdir=None, supercell=(3, 3, 3)):
    outdir = Path(outdir or tempfile.mkdtemp(prefix="nnp-phonons-"))
    if model is None and "metals-emt" in nnpcalc.zoo.available():
        model = "metals-emt"
    if model is None:
        print("no model with Cu: using a random-weight demo model (numbers are meaningless)")
        model = demo_model(outdir / "demo-cu.pt")
    crystal = nnpcalc.relax(bulk("Cu", "fcc", a=3.61), model, cell=True, fmax=1e-3).atoms
    result = nnpcalc.phonons(crystal, model, supercell=supercell)
    files = result.write(outdir)
    cv = result.thermal["heat_capacity_J_per_K_mol"]
    print(f"a = {crystal.cell.lengths()[0] * 2 ** 0.5:.3f} Å (conventional); lowest frequency "
          f"{result.min_frequency_THz:.3g} THz; Cv at {result.thermal['temperature_K'][-1]:.0f} K = {cv[-1]:.2f} J/K/mol")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model file that knows Cu")
    parser.add_argument("--outdir", help="where band.png and the tables go (default: a temporary directory)")
    args = parser.parse_args()
    main(args.model, args.outdir)
