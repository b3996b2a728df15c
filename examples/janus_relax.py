"""janus-core on a model file: a single point, a geometry optimisation (cell too) and NVT MD of
copper, with an NNPCalculator attached to the structure as janus-core takes any ASE calculator.

    .venv/bin/python examples/janus_relax.py [--model metals-emt] [--steps 40] [--outdir DIR]

Needs the `janus` extra (`pip install 'nnpcalc[janus]'`, janus-core 0.9). janus-core's `arch=`
builds the calculators of the MLIPs it knows; for any other calculator, set `atoms.calc` and
leave `arch` out: every janus-core calculation then runs on the calculator attached.
Everything janus-core writes goes under --outdir (each calculation's `file_prefix`; default: a new
temporary folder).
"""

import argparse
import tempfile
from pathlib import Path

from ase.build import bulk
from janus_core.calculations.geom_opt import GeomOpt
from janus_core.calculations.md import NVT
from janus_core.calculations.single_point import SinglePoint

from nnpcalc import NNPCalculator


def main(model="metals-emt", steps=40, outdir=None):
    """Returns (single-point results, relaxed lattice constant in Å, the MD's final atoms)."""
    outdir = Path(outdir or tempfile.mkdtemp(prefix="janus-cu-"))
    outdir.mkdir(parents=True, exist_ok=True)
    calc = NNPCalculator(model, dtype="float64")

    atoms = bulk("Cu", "fcc", a=3.70, cubic=True)  # 3 % above metals-emt's lattice constant
    atoms.rattle(0.03, seed=0)
    atoms.calc = calc
    point = SinglePoint(struct=atoms, file_prefix=outdir / "cu", properties=("energy", "forces", "stress")).run()
    print(f"single point: E = {point['energy']:.6f} eV, stress xx = {point['stress'][0]:.5f} eV/Å³")

    GeomOpt(struct=atoms, fmax=1e-3, filter_class="FrechetCellFilter", file_prefix=outdir / "cu",
            write_results=True).run()  # atoms relaxed in place; cu-opt.extxyz
    lattice = atoms.get_volume() ** (1 / 3)  # 4-atom cubic cell
    print(f"relaxed: a = {lattice:.4f} Å")

    crystal = atoms.repeat((2, 2, 2))
    crystal.calc = calc
    NVT(struct=crystal, temp=300.0, steps=steps, timestep=2.0, friction=0.01, seed=1,
        stats_every=10, traj_every=10, file_prefix=outdir / "cu-md").run()
    print(f"{steps} NVT steps at 300 K: T = {crystal.get_temperature():.0f} K; files in {outdir}")
    return point, lattice, crystal


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="metals-emt", help="model file or shipped model knowing Cu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--outdir", default=None, help="output folder (default: a new temporary one)")
    args = parser.parse_args()
    main(args.model, args.steps, args.outdir)
