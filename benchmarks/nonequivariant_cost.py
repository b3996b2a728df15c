"""Accuracy per CPU-minute on Cu (EMT): TensorNet, the non-equivariant cartesian-mpnn with and
without rotation augmentation, and TensorNet pre-trained by denoising then fine-tuned.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/nonequivariant_cost.py --threads 1 --cpu-minutes 4

or one process per model (``--runs NAME --workdir DIR/NAME``, then ``--collect DIR/*``): each
measures its own CPU time, so they may run side by side on a busy machine.

Data: the pure-Cu frames of ``data/emt-v2.extxyz`` (351 frames: bulk, strained and hot bulk,
slabs, vacancies, clusters, dimers; energy, forces, stress), split as the metals recipe splits
(``group_by: group``, 80/10/10, seed 0). Every run gets the same budget of *CPU* seconds of
this process (``time.process_time``, checked after each epoch, validation included), not
wall-clock, because the machine is shared; the denoising run spends half of it pre-training
the backbone on the training frames' geometries (no labels; ``{output: noise, head: denoise}``)
and the rest fine-tuning with fresh heads (``init_from: {path, parts: [backbone]}``). Reported:
test MAE of energy, forces and stress (best checkpoint), the equivariance error of the model
file (``nnpcalc.equivariance``, 8 rotations of 12 test frames), and the CPU cost of one energy +
forces + stress call on a 108-atom Cu cell.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "emt-v2.extxyz"
TENSORNET = {"backbone": "tensornet", "backbone_kwargs": {"hidden_channels": 48, "num_layers": 2, "num_rbf": 24,
                                                          "cutoff_upper": 5.0}}
CARTESIAN = {"backbone": "cartesian-mpnn", "backbone_kwargs": {"hidden_channels": 64, "num_layers": 2, "num_rbf": 16,
                                                               "cutoff_upper": 5.0}}
LABELLED = [{"output": "energy", "weight": 20, "metric": "huber"}, {"output": "forces", "weight": 40, "metric": "huber"},
            {"output": "stress", "weight": 200}]


def options(parser):
    parser.add_argument("--cpu-minutes", type=float, default=6.0, help="CPU budget per model (all of its legs)")
    parser.add_argument("--runs", nargs="+", default=["tensornet", "cartesian", "cartesian+rot", "tensornet+denoise"])
    parser.add_argument("--workdir", type=Path, default=C.CACHE / "nonequivariant-cost")
    parser.add_argument("--collect", nargs="+", type=Path, help="print one table from these workdirs' results.json")


def cu_frames(workdir: Path) -> Path:
    """The pure-Cu frames of the metals data, as their own file (labels and groups kept)."""
    from ase.io import read, write

    path = workdir / "cu.extxyz"
    if not path.is_file():
        frames = [f for f in read(SOURCE, ":") if set(f.get_chemical_symbols()) == {"Cu"}]
        write(path, frames, format="extxyz")
    return path


def config(name: str, data: Path, workdir: Path, arch: dict, tasks: list, labels: dict, **trainer) -> dict:
    return {
        "name": name, "seed": 0, "run_dir": str(workdir / name), "output": str(workdir / f"{name}.pt"),
        "data": {"files": [str(data)], "labels": labels, "group_by": "group", "split": {"val": 0.1, "test": 0.1}},
        "architecture": arch | {"head_hidden": 32}, "tasks": tasks,
        "trainer": {"max_epochs": 100_000, "batch_size": 8, "lr": 1e-3, "lr_patience": 8, "patience": 1000,
                    "progress": False} | trainer,
    }


def train_for(cfg: dict, cpu_seconds: float) -> dict:
    """Train ``cfg`` until ``cpu_seconds`` of this process's CPU time are spent (checked per epoch)."""
    import lightning.pytorch as pl

    import nnpcalc.training.train as T

    class CPUBudget(pl.Callback):
        def on_train_start(self, trainer, module):
            self.start = time.process_time()

        def on_train_epoch_end(self, trainer, module):
            if time.process_time() - self.start >= cpu_seconds:
                trainer.should_stop = True

    make = T._trainer

    def with_budget(config, run_dir):
        trainer = make(config, run_dir)
        trainer.callbacks.append(CPUBudget())
        return trainer

    shutil.rmtree(cfg["run_dir"], ignore_errors=True)  # a fresh run: train() would resume an old one
    T._trainer = with_budget
    start = time.process_time()
    try:
        summary = T.train(cfg)
    finally:
        T._trainer = make
    return summary | {"cpu_seconds": time.process_time() - start}


def assess(model: Path, data: Path) -> dict:
    """Equivariance error on test frames and the CPU cost of one E + F + stress call (108 Cu)."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.calculator import all_changes

    from nnpcalc import NNPCalculator
    from nnpcalc.equivariance import equivariance_error
    from nnpcalc.training.data import DataSpec, read_frames, split_indices

    spec = DataSpec(files=[str(data)], group_by="group", split={"val": 0.1, "test": 0.1})
    frames = read_frames(spec, 0)
    test = split_indices(frames, spec, 0)["test"]
    chosen = [frames[i] for i in np.random.default_rng(0).choice(test, size=min(12, len(test)), replace=False)]
    calc = NNPCalculator(str(model), dtype="float32")
    error = equivariance_error(calc, chosen, rotations=8)
    cell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    cell.rattle(0.05, seed=0)
    calc.calculate(cell, ["energy", "forces", "stress"], all_changes)
    start = time.process_time()
    for _ in range(5):
        calc.calculate(cell, ["energy", "forces", "stress"], all_changes)
    return {"equivariance": error.to_dict(), "call_cpu_ms": (time.process_time() - start) / 5 * 1e3}


def run(name: str, budget: float, data: Path, workdir: Path) -> dict:
    labels = {"energy": "ref_energy", "forces": "ref_forces", "stress": "ref_stress"}
    if name == "tensornet":
        return train_for(config(name, data, workdir, TENSORNET, LABELLED, labels), budget)
    if name in ("cartesian", "cartesian+rot"):
        cfg = config(name.replace("+", "-"), data, workdir, CARTESIAN, LABELLED, labels,
                     augment_rotations=name.endswith("+rot"))
        return train_for(cfg, budget)
    if name == "tensornet+denoise":
        pre = config("denoise-pretrain", data, workdir, TENSORNET,
                     [{"output": "noise", "head": "denoise", "noise_std": 0.05}], {})
        first = train_for(pre, budget / 2)
        tune = config("denoise-finetune", data, workdir, TENSORNET, LABELLED, labels)
        tune["init_from"] = {"path": first["model"], "parts": ["backbone"]}
        second = train_for(tune, budget - first["cpu_seconds"])
        return second | {"cpu_seconds": first["cpu_seconds"] + second["cpu_seconds"],
                         "epochs": f"{first['epochs']} + {second['epochs']}",
                         "pretrain_metrics": first.get("test_metrics", {})}
    raise SystemExit(f"unknown run {name!r}")


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.collect:  # the runs of several processes (one --workdir each), as one table
        results = {}
        for folder in args.collect:
            results |= json.loads((folder / "results.json").read_text())
        print_table(results, args)
        return
    data = cu_frames(workdir)
    budget = 60 * args.cpu_minutes
    results = {}
    for name in args.runs:
        summary = run(name, budget, data, workdir)
        results[name] = summary | assess(Path(summary["model"]), data)
        print(f"# {name}: {summary['epochs']} epochs, {summary['cpu_seconds']:.0f} CPU s", flush=True)
        (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print_table(results, args)


def print_table(results: dict, args) -> None:
    rows = []
    for name, r in results.items():
        m, eq = r["test_metrics"], r["equivariance"]
        rows.append([name, r["cpu_seconds"] / 60, r["epochs"], m["test_energy_mae"] * 1e3, m["test_forces_mae"],
                     m["test_stress_mae"] * 1e3, eq["energy_spread"] * 1e3, eq["forces_relative"] * 100,
                     r["call_cpu_ms"]])
    print(f"\n## Cu (EMT), {args.cpu_minutes:g} CPU-min per model, threads = {args.threads}")
    print(C.table(rows, ["model", "CPU min", "epochs", "test E MAE meV/atom", "test F MAE eV/Å",
                         "test σ MAE meV/Å³", "rotation E spread meV/atom", "rotation F error % of RMS F",
                         "E+F+σ CPU ms (108 Cu)"]))


if __name__ == "__main__":
    main()
