"""torch-sim on a model file: relax four fcc metals in one batch, then run them in NVT together.

    .venv/bin/python examples/torchsim_metals.py [--model metals-emt] [--steps 50]

Needs the `torchsim` extra (`pip install 'nnpcalc[torchsim]'`, torch-sim-atomistic 0.3).
`nnpcalc.torchsim.NNPModel` is a torch-sim `ModelInterface`: every step evaluates all systems
in one model call.
"""

import argparse

import torch
import torch_sim as ts
from ase.build import bulk

from nnpcalc.torchsim import NNPModel

START = {"Cu": 3.70, "Ag": 4.00, "Au": 4.00, "Ni": 3.60}  # Å, a few % off equilibrium


def main(model="metals-emt", steps=50):
    """Relax, then NVT; returns (relaxed lattice constants {symbol: Å}, final state)."""
    model = NNPModel(model, dtype=torch.float64)
    crystals = [bulk(symbol, "fcc", a=a) for symbol, a in START.items()]
    relaxed = ts.optimize(crystals, model, optimizer=ts.frechet_cell_fire, max_steps=300,
                          convergence_fn=ts.generate_force_convergence_fn(force_tol=1e-3))
    volumes = torch.linalg.det(relaxed.cell).abs().tolist()
    lattice = {symbol: (4 * volume) ** (1 / 3) for symbol, volume in zip(START, volumes)}  # V = a³/4
    for symbol, a in lattice.items():
        print(f"{symbol}: a = {a:.4f} Å")

    supercells = [atoms.repeat((2, 2, 2)) for atoms in ts.io.state_to_atoms(relaxed)]
    final = ts.integrate(supercells, model, integrator=ts.nvt_langevin, n_steps=steps,
                         temperature=300, timestep=0.002)
    kinetic = ts.calc_kinetic_energy(masses=final.masses, momenta=final.momenta, system_idx=final.system_idx)
    print("after", steps, "NVT steps, kinetic energy per system (eV):", [round(k, 3) for k in kinetic.tolist()])
    return lattice, final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals-emt", help="model file or shipped model knowing these metals")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    main(args.model, args.steps)
