"""Does `nnp learn` fix what a model without periodic water gets wrong? The 8-water box with GFN2-xTB.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/learn_water.py OUTDIR [--rounds 3] [--control]

1. Starting data: the shipped default model's own GFN2-xTB data (``data/hcno-v2.extxyz``)
   without any periodic water, cut to its neutral H/O frames so that round 0 trains in minutes
   on 2 shared cores: water clusters of 2-8 molecules, water-water pairs from 1 Å, H2O bond scans,
   H-H/O-H/O-O dimers, isolated atoms, rattled H2O/H2O2. A quarter of the water-cluster groups
   (blocks of 10 consecutive MD frames, or one rattle job) is held out as a second test subset.
2. Round 0: TensorNet 32×2 (5 Å) with an 8-member ensemble energy head and the shipped model's
   ZBL wall and Huber losses, trained from scratch on those frames for 8 minutes.
3. ``nnp learn`` (the library call): each round explores two 8-water boxes
   (``nnpcalc.systems.water_box``, seeds 0 and 1) with Langevin MD at 300 and 450 K
   (0.5 fs steps) and FIRE relaxations, labels the most uncertain, diverse frames with
   periodic GFN2-xTB (tblite, total charge passed) and fine-tunes the previous model.
   With ``--control`` nothing is labelled: the same fine-tuning budget on the starting data.
4. Held-out: ``data/water-box-md.extxyz`` (32 frames of GFN2-xTB MD of the box at 300/450 K,
   never trained on; read, never written) and the held-out water clusters.
5. Per round: the stability check of the model card (``workflows.scans.water_md``: 0.5 ps of
   Langevin MD of other water boxes, seeds 10 and 11, at 300 and 450 K; failed when an O–O
   comes under 2.0 Å or an O–H over 1.5 Å), also for the shipped ``models/hcno-gfn2.pt``;
   written to ``OUTDIR/stability-<run>.json``.

Everything is written under OUTDIR; the round records and plot are ``OUTDIR/<run>/rounds.json``
and ``rounds.png``. docs/uncertainty.md quotes a run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase.io import read, write

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DATA = ROOT / "data" / "hcno-v2.extxyz"
HELD_OUT_BOX = ROOT / "data" / "water-box-md.extxyz"
SHIPPED_MODEL = ROOT / "models" / "hcno-gfn2.pt"
CHECK_SEEDS, CHECK_TEMPERATURES, CHECK_STEPS = (10, 11), (300.0, 450.0), 1000  # 0.5 ps at 0.5 fs

RECIPE = {
    "name": "water-no-box", "seed": 0,
    "data": {"files": [], "labels": {"energy": "ref_energy", "forces": "ref_forces"}, "split": {"val": 0.1, "test": 0.1}},
    "architecture": {"elements": ["H", "O"], "backbone": "tensornet", "fidelities": ["GFN2-xTB"], "head_hidden": 32,
                     "heads": [{"kind": "energy_ensemble", "members": 8}, {"kind": "zbl", "radius_factor": 1.0}],
                     "backbone_kwargs": {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "cutoff_upper": 5.0}},
    "tasks": [{"output": "energy", "weight": 20, "metric": "huber"}, {"output": "forces", "weight": 40, "metric": "huber"},
              {"output": "energy_ensemble", "metric": "nll", "weight": 1, "members": 8}],
    "trainer": {"max_epochs": 300, "max_minutes": 8, "batch_size": 16, "lr": 1e-3, "patience": 40,
                "progress": False},
}


def starting_data():
    """(training frames, held-out water clusters) from the shipped data: neutral, H/O only, no cell."""
    frames = [f for f in read(SHIPPED_DATA, ":")
              if set(f.get_chemical_symbols()) <= {"H", "O"} and not f.pbc.any() and abs(f.info.get("charge", 0)) < 0.5]
    groups = sorted({str(f.info["group"]) for f in frames if f.info["subset"] == "water-clusters"})
    held = set(groups[::4])
    train = [f for f in frames if str(f.info["group"]) not in held]
    test = [f for f in frames if str(f.info["group"]) in held]
    return train, test


def starts():
    from nnpcalc.systems import water_box

    boxes = [water_box(2, seed=s) for s in (0, 1)]
    for box in boxes:
        box.info["subset"] = "water-box"
    return boxes


def stability(model_path) -> list[dict]:
    """The model card's water-box check (closest O–O, longest O–H, step it failed) per seed and temperature."""
    from nnpcalc import NNPCalculator
    from nnpcalc.systems import water_box
    from nnpcalc.workflows.scans import water_md

    runs = []
    for seed in CHECK_SEEDS:
        for temperature in CHECK_TEMPERATURES:
            calc = NNPCalculator(str(model_path), dtype="float64", warn_uncertainty=0)
            try:
                run = water_md(calc, water_box(2, seed=seed), CHECK_STEPS, temperature, seed=seed)
            except Exception as err:  # noqa: BLE001 - a model that blows up may break the neighbour list
                run = {"closest_OO": float("nan"), "longest_OH": float("nan"), "failed_at_step": 0,
                       "error": str(err)[:200]}
            runs.append({"seed": seed, "temperature_K": temperature, **run})
    return runs


def main(argv=None) -> None:
    import torch

    args = C.learn_arguments(__doc__.splitlines()[0], frames=16, minutes=3.0).parse_args(argv)
    torch.set_num_threads(1)  # a program's choice: one thread, beside other work
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "clusters-test.extxyz").is_file():
        train, test = starting_data()
        write(out / "start.extxyz", train, format="extxyz")
        write(out / "starts.extxyz", starts(), format="extxyz")
        write(out / "clusters-test.extxyz", test, format="extxyz")
    recipe = json.loads(json.dumps(RECIPE))
    recipe["data"]["files"] = [str(out / "start.extxyz")]
    config = {"data": [str(out / "start.extxyz")], "structures": [str(out / "starts.extxyz")],
              "test": [str(HELD_OUT_BOX), str(out / "clusters-test.extxyz")], "method": "GFN2-xTB",
              "max_epochs": 60,
              "explore": {"temperatures_K": [300.0, 450.0], "steps": 400, "timestep_fs": 0.5, "sample_every": 10,
                          "relax": True}}
    summary = "Round 0 of the periodic-water active-learning demo: the default model's H/O data, no periodic water."
    name, records = C.learn_demo(args, recipe, config, summary)
    path = out / f"stability-{name}.json"
    checks = json.loads(path.read_text()) if path.is_file() else {}
    for key, model in [("shipped hcno-gfn2", SHIPPED_MODEL)] + [(f"round {r['round']}", r["model"]) for r in records]:
        if key not in checks:
            checks[key] = stability(model)
            path.write_text(json.dumps(checks, indent=1))
    print(C.rounds_table(records))
    print()
    print(stability_table(checks))


def stability_table(checks: dict) -> str:
    rows = []
    for key, runs in checks.items():
        failed = [r for r in runs if r["failed_at_step"] is not None]
        rows.append([key, f"{len(failed)} / {len(runs)}", float(np.nanmin([r["closest_OO"] for r in runs])),
                     float(np.nanmax([r["longest_OH"] for r in runs])),
                     ", ".join(f"{r['temperature_K']:g} K seed {r['seed']} at step {r['failed_at_step']}"
                               for r in failed) or "—"])
    return C.table(rows, ["model", "water-box MD failed", "closest O–O (Å)", "longest O–H (Å)", "failures"])


if __name__ == "__main__":
    main()
