"""Labelled structures for training: reading, validation, masks, grouped splits, batching.

Frames come from extended XYZ or ASE databases (anything ``ase.io.read`` reads). Each frame
may carry any subset of the labels: a missing label is masked, never zero-filled. Labels are
named in the config (``labels: {energy: ref_energy, forces: ref_forces, ...}``) and converted
to eV/Å/e on reading; everything is checked before any training starts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.io import read

from ..charge import total_charge
from ..errors import DataError
from ..neighbors import neighbor_graph

#: per-structure label shapes (after conversion); () scalar
STRUCTURE_LABELS = {"energy": (), "stress": (3, 3), "dipole": (3,)}
#: per-atom label trailing shapes
ATOM_LABELS = {"forces": (3,), "charges": ()}
ENERGY_UNITS = {"eV": 1.0, "kcal/mol": units.kcal / units.mol, "kJ/mol": units.kJ / units.mol, "Hartree": units.Hartree}


@dataclass
class DataSpec:
    files: list[str]
    labels: dict[str, str] = field(default_factory=lambda: {"energy": "ref_energy", "forces": "ref_forces"})
    energy_unit: str = "eV"
    fidelity_key: str | None = None
    group_by: str | None = None
    split: dict = field(default_factory=lambda: {"val": 0.1, "test": 0.1})
    generate: str | None = None
    spacegroup: bool = False


#: ``info`` key naming the file a frame was read from: each file is split on its own
SOURCE_KEY = "data_file"


def read_frames(spec: DataSpec, seed: int = 0) -> list[Atoms]:
    """All frames of ``spec.files`` (generated first when missing and a generator is named)."""
    frames: list[Atoms] = []
    for name in spec.files:
        path = Path(name)
        if not path.is_file() and spec.generate:
            _generate(path, spec.generate, seed)
        if not path.is_file():
            raise DataError(f"training data file {path} does not exist")
        try:
            part = read(path, ":")
        except Exception as err:  # ase raises many types for unparsable files
            raise DataError(f"could not read {path} as a structure file: {err}") from err
        for frame in part:
            frame.info[SOURCE_KEY] = name
        frames += part
    if not frames:
        raise DataError(f"the training data {spec.files} holds no frames")
    return frames


def _generate(path: Path, generator: str, seed: int) -> None:
    from ase.io import write

    from . import labelling, reference

    if generator in labelling.DATASETS:  # job lists: parallel, resumable, content-hashed
        labelling.build(generator, path)
        return
    make = getattr(reference, f"{generator}_dataset", None)
    if make is None:
        raise DataError(f"unknown data generator {generator!r}; choose from {', '.join(labelling.DATASETS)} "
                        "(nnpcalc.training.datasets) or a *_dataset of nnpcalc.training.reference")
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, make(seed), format="extxyz")


def file_hashes(spec: DataSpec) -> list[dict]:
    return [{"file": Path(f).name, "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()} for f in spec.files]


def _raw(frame: Atoms, key: str):
    """A label from the frame's arrays, info, or attached calculator results (ASE db, extxyz)."""
    if key in frame.arrays:
        return frame.arrays[key]
    if key in frame.info:
        return frame.info[key]
    results = getattr(frame.calc, "results", {}) if frame.calc is not None else {}
    return results.get(key)


def frame_labels(frame: Atoms, spec: DataSpec, where: str) -> dict[str, np.ndarray]:
    """The labels this frame carries, converted and shape-checked."""
    out = {}
    for name, key in spec.labels.items():
        value = _raw(frame, key)
        if value is None:
            continue
        value = np.asarray(value, dtype=float)
        if name in ("energy", "forces", "stress"):
            value = value * ENERGY_UNITS[spec.energy_unit]
        if name == "stress" and value.shape == (6,):
            from ase.stress import voigt_6_to_full_3x3_stress

            value = voigt_6_to_full_3x3_stress(value)
        expected = (len(frame), *ATOM_LABELS[name]) if name in ATOM_LABELS else STRUCTURE_LABELS.get(name, value.shape)
        if value.shape != tuple(expected):
            raise DataError(f"{where}: label {name!r} (key {key!r}) has shape {value.shape}, expected {tuple(expected)}")
        if not np.isfinite(value).all():
            raise DataError(f"{where}: label {name!r} (key {key!r}) contains NaN or inf; fix or drop the frame")
        out[name] = value
    return out


def validate(frames: list[Atoms], spec: DataSpec) -> list[dict[str, np.ndarray]]:
    """Labels of every frame; raises DataError before training for anything wrong."""
    if spec.energy_unit not in ENERGY_UNITS:
        raise DataError(f"unknown energy_unit {spec.energy_unit!r}; choose from {', '.join(ENERGY_UNITS)}")
    labels = [frame_labels(f, spec, f"{spec.files} frame {i}") for i, f in enumerate(frames)]
    for name, key in spec.labels.items():
        if not any(name in lab for lab in labels):
            raise DataError(f"no frame carries label {name!r} under key {key!r}; keys seen: {sorted(_keys(frames[0]))}")
    if spec.spacegroup:
        for frame, lab in zip(frames, labels):
            lab["spacegroup"] = np.asarray(space_group_number(frame) - 1)
    return labels


def _keys(frame: Atoms) -> set[str]:
    return set(frame.info) | set(frame.arrays) - {"numbers", "positions"}


def space_group_number(atoms: Atoms, symprec: float = 1e-3) -> int:
    """International space-group number from spglib (1 for non-periodic structures)."""
    import spglib

    if not atoms.pbc.all():
        return 1
    data = spglib.get_symmetry_dataset((atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers), symprec=symprec)
    return int(data.number) if data is not None else 1


def split_indices(frames: list[Atoms], spec: DataSpec, seed: int) -> dict[str, list[int]]:
    """Random train/val/test split; with ``group_by`` every group lands in one part.

    Each data file (``info["data_file"]``, set by :func:`read_frames`) is split on its own with
    the same seed, so adding a file to a recipe never moves a frame of the files already in it:
    a model trained on ``[a.extxyz]`` can be fine-tuned on ``[a.extxyz, b.extxyz]`` and its test
    frames of ``a`` stay unseen.
    """
    sources: dict[object, list[int]] = {}
    for i, frame in enumerate(frames):
        sources.setdefault(frame.info.get(SOURCE_KEY), []).append(i)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for members in sources.values():
        for name, idx in _split_one(frames, members, spec, seed).items():
            out[name] += idx
    if not out["train"]:
        raise DataError(f"the split {spec.split} leaves no training frames ({len(frames)} frames)")
    return {name: sorted(idx) for name, idx in out.items()}


def recipe_frames(config: dict, part: str) -> list[Atoms]:
    """The frames of one part ("train", "val" or "test") of a recipe's split, as ``nnp train`` draws it."""
    spec = DataSpec(**config["data"])
    frames = read_frames(spec, config["seed"])
    return [frames[i] for i in split_indices(frames, spec, config["seed"])[part]]


def _split_one(frames: list[Atoms], members: list[int], spec: DataSpec, seed: int) -> dict[str, list[int]]:
    groups = [_group(frames[i], spec.group_by, j) for j, i in enumerate(members)]
    unique = sorted(set(groups), key=str)
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = int(round(spec.split.get("test", 0.0) * len(unique)))
    n_val = int(round(spec.split.get("val", 0.1) * len(unique)))
    part = {}
    for rank, k in enumerate(order):
        part[unique[k]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, g in zip(members, groups):
        out[part[g]].append(i)
    return out


def _group(frame: Atoms, key: str | None, index: int):
    if key is None:
        return index
    if key == "formula":
        return frame.get_chemical_formula()
    if key not in frame.info:
        raise DataError(f"group_by {key!r}: frame {index} has no info[{key!r}]")
    return frame.info[key]


def to_item(frame: Atoms, labels: dict, cutoff: float, fidelity: int) -> dict[str, torch.Tensor]:
    """One frame as tensors, with its neighbour graph precomputed."""
    item = {
        "positions": torch.tensor(frame.positions), "numbers": torch.tensor(frame.numbers),
        "cell": torch.tensor(frame.cell.array), "pbc": torch.tensor(frame.pbc),
        "charge": torch.tensor(total_charge(frame)), "fidelity": torch.tensor(fidelity),
    }
    batch = torch.zeros(len(frame), dtype=torch.long)
    item["edge_index"], item["shifts"] = neighbor_graph(item["positions"], item["cell"][None], item["pbc"][None], batch, cutoff)
    item["labels"] = {k: torch.tensor(v) for k, v in labels.items()}
    return item


def collate(items: list[dict]) -> dict:
    """A batch: concatenated atoms, stacked structures, labels with masks for the missing ones."""
    sizes = torch.tensor([len(it["numbers"]) for it in items])
    offsets = torch.cumsum(sizes, 0) - sizes
    batch = {k: torch.cat([it[k] for it in items]) for k in ("positions", "numbers", "shifts")}
    batch.update({k: torch.stack([it[k] for it in items]) for k in ("cell", "pbc", "charge", "fidelity")})
    batch["edge_index"] = torch.cat([it["edge_index"] + o for it, o in zip(items, offsets)], dim=1)
    batch["batch"] = torch.repeat_interleave(torch.arange(len(items)), sizes)
    batch["natoms"] = sizes.to(torch.float64)
    names = sorted({k for it in items for k in it["labels"]})
    batch["labels"], batch["mask"] = {}, {}
    for name in names:
        batch["labels"][name], batch["mask"][name] = _stack_label(items, name, sizes)
    return batch


def _stack_label(items, name, sizes):
    """Labels of one name over a batch, zeros where missing, and the per-structure mask."""
    present = torch.tensor([name in it["labels"] for it in items])
    example = next(it["labels"][name] for it in items if name in it["labels"])
    if name in ATOM_LABELS:
        parts = [it["labels"].get(name, torch.zeros((int(n), *example.shape[1:]), dtype=example.dtype))
                 for it, n in zip(items, sizes)]
        return torch.cat(parts), present
    parts = [it["labels"].get(name, torch.zeros_like(example)) for it in items]
    return torch.stack(parts), present
