"""Does denoising pre-training on unlabelled geometries pay for its CPU time? Cu, by hand.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/denoise_pretrain_cu.py OUTDIR [--minutes 3]

Reuses ``benchmarks/learn_cu.py OUTDIR``'s files. At equal training time against its round-0
model (``--minutes`` × 2 from scratch on the bulk labels): pre-train the backbone for
``--minutes`` by predicting the noise added to positions (``{output: noise, head: denoise}``)
on the bulk frames plus round 0's unlabelled exploration candidates (surfaces included), then
fine-tune for ``--minutes`` on the bulk labels with fresh heads (``init_from: {path, parts:
[backbone]}``). Prints held-out MAE per subset for both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    import torch

    from learn_cu import RECIPE
    from nnpcalc.training.train import train
    from nnpcalc.workflows.learn import assess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = args.outdir
    folder = out / "denoise"
    pre = json.loads(json.dumps(RECIPE)) | {"name": "cu-denoise", "run_dir": str(folder / "pretrain"),
                                            "output": str(folder / "pretrain.pt")}
    pre["data"] = {"files": [str(out / "bulk.extxyz"), str(out / "learn" / "round-000" / "candidates.extxyz")],
                   "labels": {}, "split": {"val": 0.1, "test": 0.0}}
    pre["tasks"] = [{"output": "noise", "head": "denoise", "noise_std": 0.05}]
    pre["trainer"] |= {"max_minutes": args.minutes, "max_epochs": 1000}
    if not (folder / "pretrain.pt").is_file():
        train(pre)
    tune = json.loads(json.dumps(RECIPE)) | {"name": "cu-finetune", "run_dir": str(folder / "finetune"),
                                             "output": str(folder / "finetune.pt"),
                                             "init_from": {"path": str(folder / "pretrain.pt"), "parts": ["backbone"]}}
    tune["data"]["files"] = [str(out / "bulk.extxyz")]
    tune["trainer"] |= {"max_minutes": args.minutes}
    if not (folder / "finetune.pt").is_file():
        train(tune)
    rows = {"scratch": assess(out / "round0" / "model.pt", [str(out / "test.extxyz")]),
            "denoise + fine-tune": assess(folder / "finetune.pt", [str(out / "test.extxyz")])}
    (folder / "assessment.json").write_text(json.dumps(rows, indent=1))
    subsets = list(rows["scratch"])
    print("| model | " + " | ".join(f"{s} F / E MAE" for s in subsets) + " |")
    print("|---|" + "---:|" * len(subsets))
    for name, result in rows.items():
        cells = [f"{result[s]['forces']['mae']:.3f} / {result[s]['energy_per_atom']['mae'] * 1e3:.1f}" for s in subsets]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
