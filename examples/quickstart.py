"""Main job: a short Langevin MD of ethanol on the shipped default model, with ASE.

Run with `make demo` (or `.venv/bin/python examples/quickstart.py`).
"""

import numpy as np
from ase import units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from nnpcalc import NNPCalculator


def main(steps: int = 200) -> None:
    atoms = molecule("CH3CH2OH")
    atoms.calc = NNPCalculator()  # the shipped default model
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                   rng=np.random.default_rng(1), fixcm=False)

    def report():
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        print(f"step {dyn.nsteps:4d}  Epot {epot:12.4f} eV  T {ekin / (1.5 * units.kB * len(atoms)):6.1f} K  "
              f"q(O) {atoms.get_charges()[2]:+.3f} e")

    dyn.attach(report, interval=20)
    dyn.run(steps)


if __name__ == "__main__":
    main()
