"""Train a small model on fresh GFN2-xTB data, export it, and use the file with ASE.

Run: .venv/bin/python examples/train_and_export.py [--epochs 3] [--outdir runs/example-train]
(needs the `train` extra: pip install -e ".[train]").
"""

import argparse
from pathlib import Path

from ase.build import molecule
from ase.io import write

from nnpcalc import NNPCalculator
from nnpcalc.training import reference
from nnpcalc.training.train import train


def make_data(path: Path, frames: int = 24) -> None:
    """Ethanol MD frames labelled by GFN2-xTB (energy, forces, charges), ~1 s."""
    calc = reference.gfn2()
    geometries = reference.md_frames(molecule("CH3CH2OH"), calc, frames, 4, 500.0, seed=0)
    write(path, [reference.label(g, calc, "GFN2-xTB") for g in geometries], format="extxyz")


def main(epochs: int = 3, outdir: str = "runs/example-train"):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    make_data(outdir / "ethanol.extxyz")
    config = {
        "name": "ethanol-demo",
        "data": {"files": [str(outdir / "ethanol.extxyz")],
                 "labels": {"energy": "ref_energy", "forces": "ref_forces", "charges": "ref_charges"}},
        "architecture": {"backbone_kwargs": {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0}},
        "tasks": [{"output": "energy", "weight": 10}, {"output": "forces", "weight": 10}, {"output": "charges"}],
        "trainer": {"max_epochs": epochs, "batch_size": 8, "progress": False},
        "run_dir": str(outdir / "run"),
        "output": str(outdir / "ethanol-demo.pt"),
    }
    summary = train(config)
    atoms = molecule("CH3CH2OH")
    atoms.calc = NNPCalculator(summary["model"])
    print(f"exported {summary['model']}: test force MAE {summary['test_metrics']['test_forces_mae']:.3f} eV/Å; "
          f"ethanol energy {atoms.get_potential_energy():.3f} eV, charges sum {atoms.get_charges().sum():+.1e} e")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--outdir", default="runs/example-train")
    args = parser.parse_args()
    main(args.epochs, args.outdir)
