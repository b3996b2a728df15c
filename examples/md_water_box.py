"""MD of a periodic box of water (NVT, Bussi thermostat), stopped halfway and resumed.

    .venv/bin/python examples/md_water_box.py [--model MODEL] [--steps N]

The run directory holds md.log, trajectory.extxyz, run.json and checkpoint.npz; the second
call continues from the checkpoint exactly as if the run had never stopped. From the
command line: `nnp md box.extxyz --ensemble nvt-bussi --temperature-K 300 --steps 200`
and `nnp md --resume md-run --steps 400`.
"""

import argparse
import tempfile
from itertools import product
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule

from nnpcalc import load_model, run_md
from nnpcalc.workflows.md import resume_md


def water_box(per_side: int = 2, spacing: float = 3.1, seed: int = 0) -> Atoms:
    """per_side³ randomly oriented water molecules on a cubic grid, about 1 g/cm³."""
    rng = np.random.default_rng(seed)
    box = Atoms(cell=[per_side * spacing] * 3, pbc=True)
    for ijk in product(range(per_side), repeat=3):
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        water.translate((np.array(ijk) + 0.5) * spacing - water.get_center_of_mass())
        box += water
    return box


def main(model=None, steps: int = 100, outdir=None):
    outdir = Path(outdir or tempfile.mkdtemp(prefix="nnp-water-")) / "md-run"
    model = load_model(model, dtype="float64")  # load once, use for both calls
    box = water_box()
    half = run_md(box, model, outdir=outdir, steps=steps // 2, ensemble="nvt-bussi", temperature_K=300,
                  timestep_fs=0.5, log_interval=10, trajectory_interval=10, checkpoint_interval=10, seed=1)
    print(f"{len(box)} atoms, {half.steps} steps in {outdir}")
    result = resume_md(outdir, steps=steps, model=model)
    last = np.loadtxt(outdir / "md.log")[-1]
    print(f"resumed to {result.steps} steps: t = {last[1]:.3f} ps, T = {last[6]:.0f} K, "
          f"Epot = {last[2]:.3f} eV, P = {last[7]:.3g} GPa ({result.ns_per_day:.3g} ns/day)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    main(args.model, args.steps)
