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
5. Per round, the model card's water check (``scans.water_geometry``: fused when an O–O comes
   under 2.0 Å, broken when an O–H exceeds 1.5 Å) on the exploration's own MD frames, written
   to ``OUTDIR/explored-<run>.json`` (the exploration's generic stop, two atoms at 0.5 × their
   covalent radii, is 0.66 Å for O–O: it misses fused water); and the card's stability run
   (``scans.water_md``, 0.3 ps of another box, seed 10, at 300 and 450 K), also for the
   shipped ``models/hcno-gfn2.pt``, in ``OUTDIR/stability.json``.

The fine-tuning budget is in epochs (30 a round; ``--minutes`` only caps it), so that the
control gets the same training whatever else the machine runs.

Everything is written under OUTDIR; the round records and plot are ``OUTDIR/<run>/rounds.json``
and ``rounds.png``; ``OUTDIR/learn-water.png`` sets the run beside its control. docs/uncertainty.md quotes a run.
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
EPOCHS = 30  # fine-tuning epochs per round
FUSED_OO, BROKEN_OH = 2.0, 1.5  # Å: workflows.scans.water_md's failure criteria
CHECK_SEEDS, CHECK_TEMPERATURES, CHECK_STEPS = (10,), (300.0, 450.0), 600  # 0.3 ps at 0.5 fs

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


def explored_geometry(run_dir: Path, rounds: int) -> list[dict]:
    """Per round, the model card's water check on the exploration's own MD frames (every 10th
    step of each run): closest O–O, longest O–H and the runs in which a molecule fused or broke."""
    from nnpcalc.workflows.scans import water_geometry

    out = []
    for k in range(rounds + 1):
        runs: dict[str, list] = {}
        for frame in read(run_dir / f"round-{k:03d}" / "candidates.extxyz", ":"):
            if "-md-" in frame.info["source"]:
                runs.setdefault(frame.info["source"], []).append(water_geometry(frame))
        oo = {name: min(g[0] for g in geometry) for name, geometry in runs.items()}
        oh = {name: max(g[1] for g in geometry) for name, geometry in runs.items()}
        failed = sorted(name for name in runs if oo[name] < FUSED_OO or oh[name] > BROKEN_OH)
        out.append({"round": k, "runs": len(runs), "failed": failed, "closest_OO": min(oo.values()),
                    "longest_OH": max(oh.values())})
    return out


def main(argv=None) -> None:
    args = C.learn_start(__doc__.splitlines()[0], frames=16, minutes=20.0, argv=argv)
    out = args.outdir
    if not (out / "clusters-test.extxyz").is_file():
        train, test = starting_data()
        write(out / "start.extxyz", train, format="extxyz")
        write(out / "starts.extxyz", starts(), format="extxyz")
        write(out / "clusters-test.extxyz", test, format="extxyz")
    config = {"data": [str(out / "start.extxyz")], "structures": [str(out / "starts.extxyz")],
              "test": [str(HELD_OUT_BOX), str(out / "clusters-test.extxyz")], "method": "GFN2-xTB",
              "max_epochs": EPOCHS,
              "explore": {"temperatures_K": [300.0, 450.0], "steps": 400, "timestep_fs": 0.5, "sample_every": 10,
                          "relax": True}}
    summary = "Round 0 of the periodic-water active-learning demo: the default model's H/O data, no periodic water."
    name, records = C.learn_demo(args, RECIPE, config, summary)
    models = [("shipped hcno-gfn2", SHIPPED_MODEL), ("round 0", records[0]["model"])]
    models += [(f"{name} round {r['round']}", r["model"]) for r in records[1:]]
    checks = {}
    for key, model in models:  # OUTDIR/stability.json, shared by the runs: re-read before each check
        path = out / "stability.json"
        done = json.loads(path.read_text()) if path.is_file() else {}
        if key not in done:
            done[key] = stability(model)
            path.write_text(json.dumps(done, indent=1))
        checks[key] = done[key]
    geometry = explored_geometry(out / name, args.rounds)
    (out / f"explored-{name}.json").write_text(json.dumps(geometry, indent=1))
    print(C.rounds_table(records))
    print()
    print(C.table([[g["round"], f"{len(g['failed'])} / {g['runs']}", g["closest_OO"], g["longest_OH"]] for g in geometry],
                  ["round", "exploration MD runs with O–O < 2 Å or O–H > 1.5 Å", "closest O–O (Å)", "longest O–H (Å)"]))
    print()
    print(stability_table(checks))
    plot_runs(out, out / "learn-water.png")


def plot_runs(out: Path, path: Path) -> Path | None:
    """Held-out water-box force and energy MAE, and exploration MD runs that fused or broke water,
    per round, for the learn run and its control (when both are in ``out``)."""
    from matplotlib.figure import Figure

    names = [n for n in ("learn", "learn-control") if (out / f"explored-{n}.json").is_file()]
    if not names:
        return None
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax_f, ax_e, ax_x = fig.subplots(1, 3)
    for index, name in enumerate(names):
        records = json.loads((out / name / "rounds.json").read_text())
        rounds = [r["round"] for r in records]
        for ax, key, scale in ((ax_f, "forces", 1.0), (ax_e, "energy_per_atom", 1e3)):
            ax.plot(rounds, [r["test"]["water-box"][key]["mae"] * scale for r in records], "o-", label=name)
        failed = [len(g["failed"]) for g in json.loads((out / f"explored-{name}.json").read_text())]
        ax_x.bar(np.array(rounds) + 0.2 * (2 * index - 1), failed, width=0.4, label=name)
    ax_f.set(xlabel="round", ylabel="force MAE (eV/Å)", yscale="log", title="water-box-md (held out): forces")
    ax_e.set(xlabel="round", ylabel="energy MAE (meV/atom)", yscale="log", title="water-box-md (held out): energy")
    ax_x.set(xlabel="round", ylabel="runs with O–O < 2 Å or O–H > 1.5 Å", title="exploration MD runs that fused water")
    for ax in (ax_f, ax_e, ax_x):
        ax.set_xticks(rounds)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path


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
