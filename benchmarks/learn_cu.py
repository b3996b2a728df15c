"""Does `nnp learn` fix what a bulk-only model gets wrong? Cu surfaces with EMT, by hand.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/learn_cu.py OUTDIR [--rounds 3]

1. Reference data from ASE's EMT (seconds): the starting data is bulk only (strained, rattled
   and 600 K MD cells of 1-32 atoms); the held-out test set is 500 K MD frames of Cu(111),
   Cu(100) and Cu(110) slabs and of bulk, tagged by ``info["subset"]``; exploration starts from
   smaller slabs of the same three facets.
2. Round 0: a small TensorNet with an ensemble energy head trained on the bulk data.
3. ``nnp learn`` (the library call): each round explores with MD at 300 and 900 K and
   relaxations, labels the most uncertain, diverse frames with EMT and fine-tunes.
   With ``--control`` the same rounds label nothing (``min_uncertainty`` out of reach): the
   same fine-tuning budget on the bulk data alone, in ``OUTDIR/learn-control``.
4. Per round: unrelaxed surface energies of the three facets against EMT's (the failure of
   round 0), from ``OUTDIR/learn/round-NNN/model.pt``; written to ``OUTDIR/surfaces-learn.json``.

The round records and plot are ``OUTDIR/learn/rounds.json`` and ``rounds.png``;
docs/uncertainty.md quotes a run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.io import write

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

A0 = 3.6  # Å, lattice constant of every cell (EMT's own is 3.59)
FACETS = {"Cu(111)": fcc111, "Cu(100)": fcc100, "Cu(110)": fcc110}
EV_PER_A2_TO_J_PER_M2 = 16.021766


def bulk_data(seed: int = 0):
    from nnpcalc.training import reference

    rng = np.random.default_rng(seed)
    cells = [bulk("Cu", "fcc", a=A0), bulk("Cu", "fcc", a=A0, cubic=True), bulk("Cu", "fcc", a=A0).repeat(2),
             bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)]
    frames = []
    for cell in cells:
        for _ in range(10):
            atoms = cell.copy()
            strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
            atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
            atoms.positions += rng.normal(scale=0.07, size=atoms.positions.shape)
            frames.append(atoms)
    frames += reference.md_frames(cells[3], EMT(), 20, 10, 600.0, seed)
    return [reference.label(f, EMT(), "EMT") for f in frames]


def slab(facet: str, size=(2, 2, 4)):
    atoms = FACETS[facet]("Cu", size, a=A0, vacuum=6.0)
    atoms.info = {"subset": facet}
    return atoms


def test_data(seed: int = 1):
    from nnpcalc.training import reference

    frames = []
    systems = [slab(f) for f in FACETS] + [bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)]
    for k, atoms in enumerate(systems):
        subset = atoms.info.get("subset", "bulk")
        for frame in reference.md_frames(atoms, EMT(), 8, 20, 500.0, seed + k):
            labelled = reference.label(frame, EMT(), "EMT")
            labelled.info["subset"] = subset
            frames.append(labelled)
    return frames


RECIPE = {
    "name": "cu-bulk", "seed": 0,
    "data": {"files": [], "labels": {"energy": "ref_energy", "forces": "ref_forces"}, "split": {"val": 0.1, "test": 0.1}},
    "architecture": {"elements": ["Cu"], "backbone": "tensornet", "fidelities": ["EMT"], "head_hidden": 32,
                     "backbone_kwargs": {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "cutoff_upper": 4.5}},
    "tasks": [{"output": "energy", "weight": 20}, {"output": "forces", "weight": 20},
              {"output": "energy_ensemble", "metric": "nll", "weight": 1, "members": 8}],
    "trainer": {"max_epochs": 150, "max_minutes": 6, "batch_size": 8, "lr": 1e-3, "patience": 30,
                "progress": False},
}


def surface_energies(model_path) -> dict:
    """Unrelaxed surface energy (J/m²) of each facet from ``model_path`` (None: EMT itself)."""
    from nnpcalc import NNPCalculator

    def calc():
        return EMT() if model_path is None else NNPCalculator(str(model_path), dtype="float64")

    reference = bulk("Cu", "fcc", a=A0)
    reference.calc = calc()
    per_atom = reference.get_potential_energy() / len(reference)
    out = {}
    for facet in FACETS:
        atoms = slab(facet, (1, 1, 6))
        atoms.calc = calc()
        area = np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1]))
        out[facet] = (atoms.get_potential_energy() - len(atoms) * per_atom) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    return out


def main(argv=None) -> None:
    args = C.learn_start(__doc__.splitlines()[0], frames=16, minutes=3.0, argv=argv)
    out = args.outdir
    if not (out / "test.extxyz").is_file():
        write(out / "bulk.extxyz", bulk_data(), format="extxyz")
        write(out / "starts.extxyz", [slab(f, (2, 2, 3)) for f in FACETS], format="extxyz")
        write(out / "test.extxyz", test_data(), format="extxyz")
    config = {"data": [str(out / "bulk.extxyz")], "structures": [str(out / "starts.extxyz")],
              "test": [str(out / "test.extxyz")], "method": "EMT", "max_epochs": 60,
              "explore": {"temperatures_K": [300.0, 900.0], "steps": 300, "sample_every": 10, "relax": True}}
    summary = "Round 0 of the Cu active-learning demo: bulk EMT data only."
    name, records = C.learn_demo(args, RECIPE, config, summary)
    surfaces = {"EMT": surface_energies(None)}
    surfaces |= {f"round {r['round']}": surface_energies(r["model"]) for r in records}
    (out / f"surfaces-{name}.json").write_text(json.dumps(surfaces, indent=1))
    print_tables(records, surfaces)


def print_tables(records: list[dict], surfaces: dict) -> None:
    print(C.rounds_table(records))
    print("\n| surface energy (J/m²) | " + " | ".join(FACETS) + " |")
    print("|---|" + "---:|" * len(FACETS))
    for name, values in surfaces.items():
        print(f"| {name} | " + " | ".join(f"{values[f]:.3f}" for f in FACETS) + " |")


if __name__ == "__main__":
    main()
