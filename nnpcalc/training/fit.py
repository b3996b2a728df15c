"""A compact trainer: energy + forces (+ charges) on labelled frames, exported as a model file.

    python -m nnpcalc.training.fit models/hcno-gfn2.yaml

The recipe (YAML) names the data, the architecture, the budget and the output; the data is
generated first when missing. Per-element reference energies are fitted by least squares
before training, the energy scale from the data; the split is random but seeded.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers

from ..nn.build import Architecture, build_potential, export
from ..neighbors import neighbor_graph

LABELS = {"energy": "ref_energy", "forces": "ref_forces", "charges": "ref_charges"}


@dataclass
class Recipe:
    name: str
    data: str
    output: str
    architecture: dict
    generator: str = "hcno"
    summary: str = ""
    seed: int = 0
    dtype: str = "float32"
    minutes: float = 10.0
    batch_size: int = 16
    lr: float = 1e-3
    clip_grad: float = 10.0
    weights: dict = field(default_factory=lambda: {"energy": 1.0, "forces": 20.0, "charges": 10.0})
    split: dict = field(default_factory=lambda: {"val": 0.1, "test": 0.1})


def fit_atomrefs(frames: list[Atoms], elements: list[str]) -> dict[int, float]:
    """Per-element energies E_Z minimising sum (E - sum_Z n_Z E_Z)^2."""
    numbers = [atomic_numbers[s] for s in elements]
    counts = np.array([[np.sum(f.numbers == z) for z in numbers] for f in frames], dtype=float)
    energies = np.array([f.info["ref_energy"] for f in frames])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return dict(zip(numbers, solution.tolist()))


def _tensors(frame: Atoms, cutoff: float) -> dict[str, torch.Tensor]:
    t = {
        "positions": torch.tensor(frame.positions), "numbers": torch.tensor(frame.numbers),
        "cell": torch.tensor(frame.cell.array), "pbc": torch.tensor(frame.pbc),
        "charge": torch.tensor(float(frame.info.get("charge", 0.0))),
        "energy": torch.tensor(frame.info["ref_energy"]), "forces": torch.tensor(frame.arrays["ref_forces"]),
    }
    if "ref_charges" in frame.arrays:
        t["charges"] = torch.tensor(frame.arrays["ref_charges"])
    batch = torch.zeros(len(frame), dtype=torch.long)
    t["edge_index"], t["shifts"] = neighbor_graph(t["positions"], t["cell"][None], t["pbc"][None], batch, cutoff)
    return t


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    sizes = torch.tensor([len(it["numbers"]) for it in items])
    offsets = torch.cumsum(sizes, 0) - sizes
    out = {key: torch.cat([it[key] for it in items]) for key in ("positions", "numbers", "forces", "shifts")}
    out.update({key: torch.stack([it[key] for it in items]) for key in ("cell", "pbc", "charge", "energy")})
    out["edge_index"] = torch.cat([it["edge_index"] + o for it, o in zip(items, offsets)], dim=1)
    out["batch"] = torch.repeat_interleave(torch.arange(len(items)), sizes)
    out["natoms"] = sizes.to(torch.float64)
    if all("charges" in it for it in items):
        out["charges"] = torch.cat([it["charges"] for it in items])
    return out


def predict(potential, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return potential.forward_batch(b["positions"], b["numbers"], b["cell"], b["pbc"], b["charge"], b["batch"],
                                   None, b["edge_index"], b["shifts"], True, False)


def loss_terms(out, b, weights) -> dict[str, torch.Tensor]:
    """Each weighted term separately; the loss is their sum."""
    terms = {"energy": (((out["energy"] - b["energy"]) / b["natoms"]) ** 2).mean()}
    terms["forces"] = ((out["forces"] - b["forces"].to(out["forces"].dtype)) ** 2).mean()
    if "charges" in out and "charges" in b:
        terms["charges"] = ((out["charges"] - b["charges"].to(out["charges"].dtype)) ** 2).mean()
    return {k: weights.get(k, 0.0) * v for k, v in terms.items()}


def metrics(potential, items) -> dict[str, float]:
    """Mean absolute and root-mean-square errors on ``items`` (held out)."""
    potential.eval()
    errs: dict[str, list[np.ndarray]] = {"energy_per_atom": [], "forces": [], "charges": []}
    for start in range(0, len(items), 32):
        b = collate(items[start:start + 32])
        out = {k: v.detach() for k, v in predict(potential, b).items()}
        errs["energy_per_atom"].append(((out["energy"] - b["energy"]) / b["natoms"]).numpy())
        errs["forces"].append((out["forces"].double() - b["forces"]).numpy().ravel())
        if "charges" in out and "charges" in b:
            errs["charges"].append((out["charges"].double() - b["charges"]).numpy())
    result = {}
    for key, chunks in errs.items():
        if chunks:
            e = np.concatenate(chunks)
            result[f"{key}_mae"], result[f"{key}_rmse"] = float(np.abs(e).mean()), float(np.sqrt((e**2).mean()))
    return result


def split(n: int, fractions: dict, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(fractions["test"] * n)), int(round(fractions["val"] * n))
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}


def prepare(potential, arch: Architecture, frames: list[Atoms], train_idx) -> None:
    """Reference energies by least squares on the training frames; scale from the forces."""
    refs = fit_atomrefs([frames[i] for i in train_idx], arch.elements)
    head = potential.heads[0]
    with torch.no_grad():
        for z, e in refs.items():
            head.atomref[:, z] = e
        forces = np.concatenate([frames[i].arrays["ref_forces"].ravel() for i in train_idx])
        head.scale.fill_(float(np.sqrt((forces**2).mean())))


def train(recipe: Recipe, frames: list[Atoms], log=lambda line: print(line, flush=True)):
    torch.manual_seed(recipe.seed)
    arch = Architecture(**recipe.architecture)
    dtype = {"float32": torch.float32, "float64": torch.float64}[recipe.dtype]
    potential = build_potential(arch).to(dtype)
    parts = split(len(frames), recipe.split, recipe.seed)
    prepare(potential, arch, frames, parts["train"])
    items = [_tensors(f, arch.cutoff) for f in frames]
    sets = {k: [items[i] for i in idx] for k, idx in parts.items()}
    optimizer = torch.optim.Adam(potential.parameters(), lr=recipe.lr)
    rng = np.random.default_rng(recipe.seed)
    start, epoch, best = time.perf_counter(), 0, (float("inf"), None)
    while time.perf_counter() - start < recipe.minutes * 60:
        potential.train()
        progress = (time.perf_counter() - start) / (recipe.minutes * 60)
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
        for k in np.array_split(rng.permutation(len(sets["train"])), max(1, len(sets["train"]) // recipe.batch_size)):
            b = collate([sets["train"][i] for i in k])
            loss = sum(loss_terms(predict(potential, b), b, recipe.weights).values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(potential.parameters(), recipe.clip_grad)
            optimizer.step()
        epoch += 1
        val = metrics(potential, sets["val"])
        score = val["energy_per_atom_mae"] + val["forces_mae"]
        if score < best[0]:
            best = (score, {k: v.clone() for k, v in potential.state_dict().items()})
        log(f"epoch {epoch:3d}  {time.perf_counter() - start:6.0f} s  val E {val['energy_per_atom_mae'] * 1e3:7.2f} "
            f"meV/atom  F {val['forces_mae']:.4f} eV/Å  q {val.get('charges_mae', float('nan')):.4f} e")
    potential.load_state_dict(best[1])
    return potential, arch, parts, sets, {"epochs": epoch, "seconds": time.perf_counter() - start}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(recipe_path: str) -> Path:
    import yaml
    from ase.io import read, write

    recipe = Recipe(**yaml.safe_load(Path(recipe_path).read_text()))
    data = Path(recipe.data)
    if not data.is_file():
        from . import reference

        data.parent.mkdir(parents=True, exist_ok=True)
        write(data, getattr(reference, f"{recipe.generator}_dataset")(recipe.seed), format="extxyz")
    frames = read(data, ":")
    potential, arch, parts, sets, cost = train(recipe, frames)
    test = metrics(potential, sets["test"])
    provenance = {
        "data": [{"file": data.name, "sha256": sha256(data), "frames": len(frames), "method": frames[0].info.get("method")}],
        "split": {k: len(v) for k, v in parts.items()} | {"seed": recipe.seed},
        "test_metrics": test,
        "training": cost | {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                            "threads": torch.get_num_threads(), "torch": torch.__version__},
        "command": f"python -m nnpcalc.training.fit {recipe_path}",
    }
    print("test:", {k: round(v, 5) for k, v in test.items()})
    path = export(potential, arch, recipe.output, provenance)
    if recipe.summary:
        from .card import write_card

        write_card(path, recipe.summary)
    return path


if __name__ == "__main__":
    run(sys.argv[1])
