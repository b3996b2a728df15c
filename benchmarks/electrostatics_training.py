"""Does the Coulomb term help? Two small models trained on ion pairs, with and without it.

Run: OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/electrostatics_training.py --minutes 4

Data (GFN2-xTB via tblite, the total charge passed to it): ammonium–ammonium and
ammonium–methylammonium pairs (total charge +2), randomly oriented, centre distance 3.5–12 Å,
rattled; each frame is labelled with energy and forces (frames whose SCF fails are skipped).
Neutral charge-separated pairs (ammonium–formate) were tried first: GFN2-xTB's SCF does not
converge for them at large separation. Both models are TensorNet 32×2 with a
4 Å cutoff, trained on energy + forces only for the same wall time; the second has
``electrostatics: coulomb`` (its charges are learned from the energy alone). Reported: held-out
energy and force MAE, split by distance (pairs within the cutoff vs beyond it), and the
energy change when each pair is pulled from 6 to 12 Å (GFN2-xTB vs the two models).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase import Atoms

D_NH = 1.03


def ammonium() -> Atoms:
    d = D_NH / np.sqrt(3.0)
    tetra = d * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    return Atoms("NH4", positions=np.vstack([[0, 0, 0], tetra]))


def methylammonium() -> Atoms:
    from ase.build import molecule

    atoms = molecule("H3CNH2")
    n = int(np.flatnonzero(atoms.numbers == 7)[0])
    bonded = [i for i in range(len(atoms)) if i != n and atoms.get_distance(n, i) < 1.6]
    bonds = atoms.positions[bonded] - atoms.positions[n]
    lone_pair = -(bonds / np.linalg.norm(bonds, axis=1, keepdims=True)).sum(0)  # tetrahedral direction
    return atoms + Atoms("H", positions=[atoms.positions[n] + D_NH * lone_pair / np.linalg.norm(lone_pair)])


def pair(first: Atoms, second: Atoms, distance: float, rng) -> Atoms:
    from scipy.spatial.transform import Rotation

    a, b = first.copy(), second.copy()
    for mol in (a, b):
        mol.positions -= mol.positions.mean(axis=0)
        mol.positions = mol.positions @ Rotation.random(random_state=rng.integers(1 << 30)).as_matrix().T
    b.positions += [0.0, 0.0, distance]
    atoms = a + b
    atoms.rattle(0.04, seed=int(rng.integers(1 << 30)))
    return atoms


def dataset(n: int, seed: int) -> list[Atoms]:
    from ase.calculators.calculator import CalculationFailed

    from nnpcalc.training import reference

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        charge = 2
        atoms = pair(ammonium(), ammonium() if k % 2 else methylammonium(), rng.uniform(3.5, 12.0), rng)
        try:
            labelled = reference.label(atoms, reference.gfn2(charge), "GFN2-xTB", charge)
        except CalculationFailed:  # an SCF that does not converge: skip the frame
            continue
        labelled.info["distance"] = float(np.linalg.norm(atoms.positions[0] - atoms.positions[5:].mean(0)))
        frames.append(labelled)
    return frames


def config(data: Path, run: Path, method: str, minutes: float) -> dict:
    return {
        "name": f"ions-{method}", "seed": 0,
        "data": {"files": [str(data)], "labels": {"energy": "ref_energy", "forces": "ref_forces"},
                 "split": {"val": 0.1, "test": 0.2}},
        "architecture": {"elements": ["H", "C", "N", "O"], "head_hidden": 32, "electrostatics": method,
                         "backbone_kwargs": {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "cutoff_upper": 4.0}},
        "tasks": [{"output": "energy", "weight": 10}, {"output": "forces", "weight": 10}],
        "trainer": {"max_epochs": 100000, "max_minutes": minutes, "batch_size": 8, "lr": 2e-3,
                    "patience": 100000, "progress": False},
        "run_dir": str(run / method), "output": str(run / f"{method}.pt"),
    }


def evaluate(model_path: Path, frames: list[Atoms]) -> dict:
    from nnpcalc import NNPCalculator

    calc = NNPCalculator(model_path, dtype="float64")
    rows = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        rows.append((atoms.info["distance"], abs(atoms.get_potential_energy() - atoms.info["ref_energy"]),
                     np.abs(atoms.get_forces() - atoms.arrays["ref_forces"]).mean()))
    rows = np.array(rows)
    near = rows[:, 0] < 7.0
    return {"energy_mae": rows[:, 1].mean(), "forces_mae": rows[:, 2].mean(),
            "energy_mae_near": rows[near, 1].mean(), "energy_mae_far": rows[~near, 1].mean()}


def pull(model_path: Path | None) -> dict:
    """Energy change (eV) from 6 to 12 Å, same orientation, no rattle: GFN2-xTB or a model."""
    from nnpcalc import NNPCalculator
    from nnpcalc.training import reference

    out = {}
    for name, second, charge in (("NH4+ CH3NH3+", methylammonium(), 2), ("NH4+ NH4+", ammonium(), 2)):
        energies = []
        for distance in (6.0, 12.0):
            atoms = ammonium() + second.copy()
            atoms.positions[5:] += [0.0, 0.0, distance]
            atoms.info["charge"] = charge
            atoms.calc = reference.gfn2(charge) if model_path is None else NNPCalculator(model_path, dtype="float64")
            energies.append(atoms.get_potential_energy())
        out[name] = energies[1] - energies[0]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time per model")
    parser.add_argument("--out", default="runs/electrostatics-comparison")
    args = parser.parse_args()
    from ase.io import write

    from nnpcalc.training.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "ions.extxyz"
    if not data.exists():
        write(data, dataset(args.frames, seed=0), format="extxyz")
    held_out = dataset(60, seed=1)
    report = {"gfn2_pull_6_to_12": pull(None)}
    for method in ("none", "coulomb"):
        path = out / f"{method}.pt"
        if not path.exists():
            train(config(data, out, method, args.minutes))
        report[method] = evaluate(path, held_out) | {"pull_6_to_12": pull(path)}
        print(method, report[method], flush=True)
    print(json.dumps(report, indent=1))
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
