"""Figure 7: accuracy at equal cost — nnpcalc and MACE trained on the same data for the same CPU time.

Run: /work/bench-venv/bin/python benchmarks/accuracy_cost.py --threads 2 --minutes 10

Data: the default model's GFN2-xTB set (``data/hcno-v2.extxyz``, made by
``nnp train models/hcno-gfn2.yaml``; figure 7 was measured on its predecessor ``hcno-gfn2.extxyz``,
figure 7b (``equal_accuracy.py``) is the current comparison), split as its recipe splits it (seed 0, 80/10/10), energy
and forces only. nnpcalc trains its default recipe's TensorNet (48×2) through
``nnpcalc.training``; MACE trains a MACE-MP-0 *small*-size ``ScaleShiftMACE`` (random init,
r_max 5 Å, E0s by least squares) with its own data pipeline and a plain Adam loop (MACE's
defaults: lr 0.01, amsgrad, energy weight 1 per atom², forces weight 100). Both get the same
wall-clock budget on the same threads, then: held-out energy and force MAE, and the cost of
one energy + forces call on 64 waters (192 atoms, periodic) in float32.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "hcno-v2.extxyz"
ELEMENTS = ["H", "C", "N", "O"]


def options(parser):
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per engine")
    parser.add_argument("--engines", nargs="+", default=["nnpcalc", "mace-small"])


def split():
    """(frames, {"train", "val", "test"} → indices) exactly as the default recipe splits them."""
    from nnpcalc.training.data import DataSpec, read_frames, split_indices

    spec = DataSpec(files=[str(DATA)], labels={"energy": "ref_energy", "forces": "ref_forces"},
                    split={"val": 0.1, "test": 0.1})
    frames = read_frames(spec, 0)
    return spec, frames, split_indices(frames, spec, 0)


def train_nnpcalc(minutes: float, workdir: Path) -> Path:
    import yaml

    from nnpcalc.training.train import train

    recipe = yaml.safe_load((ROOT / "models" / "hcno-gfn2.yaml").read_text())
    config = {
        "name": "accuracy-cost", "seed": 0,
        "data": {"files": [str(DATA)], "labels": {"energy": "ref_energy", "forces": "ref_forces"},
                 "split": {"val": 0.1, "test": 0.1}},
        "architecture": {k: v for k, v in recipe["architecture"].items() if k != "fidelities"},
        "tasks": [{"output": "energy", "weight": 20}, {"output": "forces", "weight": 20}],
        "trainer": recipe["trainer"] | {"max_minutes": minutes, "max_epochs": 100_000, "progress": False},
        "run_dir": str(workdir / "nnpcalc-run"), "output": str(workdir / "nnpcalc.pt"),
    }
    summary = train(config)
    return Path(summary["model"]), summary["seconds"], summary["epochs"]


def train_mace(minutes: float, frames, parts, workdir: Path):
    import numpy as np
    import torch

    torch.serialization.add_safe_globals([slice])
    from e3nn import o3
    from mace import data, modules, tools
    from mace.tools import torch_geometric

    torch.manual_seed(0)
    z_table = tools.AtomicNumberTable([1, 6, 7, 8])
    keys = data.KeySpecification(info_keys={"energy": "ref_energy"}, arrays_keys={"forces": "ref_forces"})
    train_configs = data.config_from_atoms_list([frames[i] for i in parts["train"]], key_specification=keys)
    e0s = data.compute_average_E0s(train_configs, z_table)
    dataset = [data.AtomicData.from_config(c, z_table=z_table, cutoff=C.CUTOFF) for c in train_configs]
    neighbours = np.mean([d.edge_index.shape[1] / d.num_nodes for d in dataset])
    model = modules.ScaleShiftMACE(
        r_max=C.CUTOFF, num_bessel=10, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=len(z_table), hidden_irreps=o3.Irreps("128x0e"),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.array([e0s[z] for z in z_table.zs]),
        avg_num_neighbors=float(neighbours), atomic_numbers=z_table.zs, correlation=3,
        gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
        atomic_inter_scale=float(np.std(np.concatenate([c.properties["forces"].ravel() for c in train_configs]))),
        atomic_inter_shift=0.0,
    ).float()
    loader = torch_geometric.dataloader.DataLoader(dataset, batch_size=16, shuffle=True, drop_last=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    start = time.perf_counter()
    deadline, epochs = start + 60 * minutes, 0
    while time.perf_counter() < deadline:
        for batch in loader:
            batch = batch.to_dict()
            out = model(batch, training=True, compute_force=True)
            atoms_per = (batch["ptr"][1:] - batch["ptr"][:-1]).float()
            loss = (((out["energy"] - batch["energy"]) / atoms_per) ** 2).mean() \
                + 100.0 * ((out["forces"] - batch["forces"]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            if time.perf_counter() > deadline:
                break
        epochs += 1
    seconds = time.perf_counter() - start
    path = workdir / "mace-small.model"
    torch.save(model.eval(), path)
    return path, seconds, epochs


def calculator(engine: str, path: Path):
    if engine == "nnpcalc":
        from nnpcalc import NNPCalculator

        return NNPCalculator(str(path), dtype="float32")
    import torch
    from mace.calculators import MACECalculator

    return MACECalculator(models=torch.load(path, weights_only=False), device="cpu", default_dtype="float32")


def errors(calc, frames, test):
    import numpy as np

    de, df = [], []
    for i in test:
        atoms = frames[i].copy()
        atoms.calc = calc
        de.append(abs(atoms.get_potential_energy() - frames[i].info["ref_energy"]) / len(atoms))
        df.append(np.abs(atoms.get_forces() - frames[i].arrays["ref_forces"]).ravel())
    return 1000 * float(np.mean(de)), float(np.mean(np.concatenate(df)))


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    from ase.calculators.calculator import all_changes

    if not DATA.is_file():
        sys.exit(f"{DATA} is missing; make it with `nnp train models/hcno-gfn2.yaml` (it generates the data first)")
    _, frames, parts = split()
    import shutil

    workdir = C.CACHE / "accuracy-cost"
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run: nnpcalc would resume an old one
    workdir.mkdir(parents=True)
    print(f"# {len(frames)} frames: {', '.join(f'{k} {len(v)}' for k, v in parts.items())}; "
          f"{args.minutes} min of training each", flush=True)
    trained = {}
    for engine in args.engines:
        trained[engine] = (train_nnpcalc(args.minutes, workdir) if engine == "nnpcalc"
                           else train_mace(args.minutes, frames, parts, workdir))
        print(f"# {engine}: {trained[engine][2]} epochs in {trained[engine][1]:.0f} s of training", flush=True)
    box = C.water(192)
    rows = []
    for engine, (path, seconds, epochs) in trained.items():
        calc = calculator(engine, path)
        e_mae, f_mae = errors(calc, frames, parts["test"])
        calc.calculate(box, ["energy", "forces"], all_changes)
        call = C.median(C.timed(lambda: calc.calculate(box, ["energy", "forces"], all_changes), 5))
        rows.append([engine, seconds / 60, epochs, e_mae, f_mae, call * 1e3, 1 / call])
    print(f"\n## Accuracy at equal training time ({args.minutes} min each), threads = {args.threads}")
    print(C.table(rows, ["engine", "training min", "epochs", "test energy MAE meV/atom", "test force MAE eV/Å",
                         "E+F ms (192 waters)", "calls/s"]))


if __name__ == "__main__":
    main()
