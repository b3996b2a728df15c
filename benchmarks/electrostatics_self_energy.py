"""Does the charge self-energy help on ions? Two small models, Ewald alone vs Ewald + self-energy.

Run: OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/electrostatics_self_energy.py --minutes 2.5

Data: the ions (charge ±1), neutral G2 organics and water clusters of ``data/hcno-v2.extxyz``
(GFN2-xTB, the total charge passed to tblite). Every 5th job is held out (whole jobs: no frame
of a held-out MD/rattle job is trained on). Both models are TensorNet 32×1 at 5 Å with
``electrostatics: ewald``, trained on energy + forces + reference charges for the same wall
time; the second adds ``electrostatics_kwargs: {self_energy: true}`` (Σ χ_Z q + ½ J_Z q²).
Reported: held-out energy MAE (meV/atom) and force MAE (eV/Å) per subset and charge.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SUBSETS = ("ions", "organics", "water-clusters")


def split(source: Path, out: Path) -> tuple[Path, Path]:
    from ase.io import read, write

    frames = [f for f in read(source, ":") if f.info["subset"] in SUBSETS]
    jobs = sorted({f.info["job"] for f in frames})
    held = {job for k, job in enumerate(jobs) if k % 5 == 0}
    train, test = out / "train.extxyz", out / "test.extxyz"
    write(train, [f for f in frames if f.info["job"] not in held], format="extxyz")
    write(test, [f for f in frames if f.info["job"] in held], format="extxyz")
    return train, test


def config(data: Path, run: Path, name: str, self_energy: bool, minutes: float) -> dict:
    return {
        "name": name, "seed": 0,
        "data": {"files": [str(data)], "group_by": "job",
                 "labels": {"energy": "ref_energy", "forces": "ref_forces", "charges": "ref_charges"},
                 "split": {"val": 0.1, "test": 0.0}},
        "architecture": {"elements": ["H", "C", "N", "O"], "head_hidden": 32, "electrostatics": "ewald",
                         "electrostatics_kwargs": {"self_energy": self_energy},
                         "backbone_kwargs": {"hidden_channels": 32, "num_layers": 1, "num_rbf": 16, "cutoff_upper": 5.0}},
        "tasks": [{"output": "energy", "weight": 20}, {"output": "forces", "weight": 40},
                  {"output": "charges", "weight": 10}],
        "trainer": {"max_epochs": 100000, "max_minutes": minutes, "batch_size": 8, "lr": 2e-3,
                    "patience": 100000, "progress": False},
        "run_dir": str(run / name), "output": str(run / f"{name}.pt"),
    }


def evaluate(model: Path, test: Path) -> dict:
    from ase.io import read

    from nnpcalc import NNPCalculator

    calc = NNPCalculator(model, dtype="float64")
    rows: dict[str, list] = {}
    for atoms in read(test, ":"):
        ref_e, ref_f = atoms.info["ref_energy"], atoms.arrays["ref_forces"]
        atoms.calc = calc
        key = f"{atoms.info['subset']} {int(atoms.info['charge']):+d}"
        rows.setdefault(key, []).append((1000 * abs(atoms.get_potential_energy() - ref_e) / len(atoms),
                                         float(np.abs(atoms.get_forces() - ref_f).mean())))
    return {k: {"frames": len(v), "energy_mae_mev_atom": float(np.mean([r[0] for r in v])),
                "forces_mae": float(np.mean([r[1] for r in v]))} for k, v in sorted(rows.items())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.5, help="training wall time per model")
    parser.add_argument("--data", default="data/hcno-v2.extxyz")
    parser.add_argument("--out", default="runs/electrostatics-self-energy")
    args = parser.parse_args()
    from nnpcalc.training.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_file, test_file = split(Path(args.data), out)
    report = {}
    for name, self_energy in (("ewald", False), ("ewald-self-energy", True)):
        path = out / f"{name}.pt"
        if not path.exists():
            summary = train(config(train_file, out, name, self_energy, args.minutes))
            report[f"{name} epochs"] = summary["epochs"]
        report[name] = evaluate(path, test_file)
        print(name, json.dumps(report[name]), flush=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
