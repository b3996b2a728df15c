"""Train from a YAML config: `nnp train CONFIG` or ``nnpcalc.training.train.train(config)``.

A config has ``name``, ``seed``, ``data`` (see :class:`~nnpcalc.training.data.DataSpec`),
``architecture`` (see :class:`~nnpcalc.nn.build.Architecture`; elements, heads and fidelities
are filled in from the data and tasks when omitted), ``tasks`` (see
:class:`~nnpcalc.training.tasks.Task`), ``trainer`` (see :data:`TRAINER_DEFAULTS`) and, optionally,
``run_dir`` (checkpoints and logs), ``output`` (the exported model file) and ``summary``
(opens the model card). A run resumes from ``run_dir/checkpoints/last.ckpt`` when it exists.
``init_from`` (a model file or checkpoint of the same architecture) fine-tunes instead of
starting from random weights; ``{path: ..., parts: [backbone]}`` loads only those parts
(pre-train → fine-tune).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..nn.build import Architecture
from .data import DataSpec, collate, file_hashes, read_frames, split_indices, to_item, validate
from .tasks import Task, heads_for

TRAINER_DEFAULTS = {
    "max_epochs": 100, "max_minutes": None, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0,
    "lr_factor": 0.5, "lr_patience": 5, "clip_grad": 10.0, "patience": 20, "dtype": "float32",
    "devices": 1, "num_nodes": 1, "strategy": "auto", "accelerator": "cpu", "progress": True,
    "augment_rotations": False,  # rotate (and reflect) every training structure at random (training/augment.py)
    "monitor": "val_loss",  # the validation metric (or {metric: weight} sum) behind best.ckpt, early stop, LR
}
TOP_LEVEL = {"name", "seed", "data", "architecture", "tasks", "trainer", "run_dir", "output", "summary", "init_from"}


def load_config(config: str | Path | dict) -> dict:
    """The config as a dict, with unknown keys refused and trainer defaults filled in."""
    if not isinstance(config, dict):
        import yaml

        try:
            config = yaml.safe_load(Path(config).read_text())  # safe_load: no tag runs code
        except yaml.YAMLError as err:
            raise DataError(f"{config} is not a YAML recipe nnpcalc reads ({str(err).splitlines()[0]}); "
                            "write plain YAML (no !!python tags), as in models/*.yaml") from None
        if not isinstance(config, dict):
            raise DataError(f"the recipe holds a {type(config).__name__}, not a mapping of keys (see models/*.yaml)")
    unknown = set(config) - TOP_LEVEL
    if unknown:
        raise DataError(f"unknown config key(s) {sorted(unknown)}; valid: {sorted(TOP_LEVEL)}")
    trainer = dict(config.get("trainer") or {})
    bad = set(trainer) - set(TRAINER_DEFAULTS)
    if bad:
        raise DataError(f"unknown trainer option(s) {sorted(bad)}; valid: {sorted(TRAINER_DEFAULTS)}")
    config = {"seed": 0, "run_dir": f"runs/{config.get('name', 'model')}", **config}
    config["trainer"] = TRAINER_DEFAULTS | trainer
    return config


def complete(config: dict, frames, labels) -> dict:
    """Fill in elements, heads and fidelities from the data and tasks; check tasks have labels."""
    spec = DataSpec(**config["data"])
    tasks = [Task(**t) for t in config["tasks"]]
    available = {name for lab in labels for name in lab} | {t.label for t in tasks if t.head == "denoise"}
    missing = [t.label for t in tasks if t.label not in available]
    if missing:
        raise DataError(f"task label(s) {missing} are in no frame; labels found: {sorted(available)}")
    arch = dict(config.get("architecture") or {})
    present = sorted({s for f in frames for s in f.get_chemical_symbols()})
    arch.setdefault("elements", present)
    extra = sorted(set(present) - set(arch["elements"]))
    if extra:
        raise DataError(f"the data holds element(s) {extra} that architecture.elements {arch['elements']} lacks")
    arch.setdefault("heads", heads_for(tasks, charges=arch.get("electrostatics", "none") != "none"))
    if spec.fidelity_key:
        arch.setdefault("fidelities", sorted({str(f.info[spec.fidelity_key]) for f in frames}))
    Architecture(**arch)  # fail early on bad architecture keys
    return config | {"architecture": arch, "tasks": [t.to_dict() for t in tasks]}


def _fidelity_index(frame, spec: DataSpec, fidelities: list[str]) -> int:
    if not spec.fidelity_key:
        return 0
    return fidelities.index(str(frame.info[spec.fidelity_key]))


def fit_atomrefs(frames, energies, elements: list[str]) -> dict[int, float]:
    """Per-element energies E_Z minimising sum_frames (E - sum_Z n_Z E_Z)^2."""
    from ase.data import atomic_numbers

    numbers = [atomic_numbers[s] for s in elements]
    counts = np.array([[np.sum(f.numbers == z) for z in numbers] for f in frames], dtype=float)
    solution, *_ = np.linalg.lstsq(counts, np.asarray(energies, dtype=float), rcond=None)
    return dict(zip(numbers, solution.tolist()))


def prepare_reference_energies(module, frames, labels, train_idx, spec: DataSpec) -> None:
    """Least-squares per-element energies (per fidelity) and a force-based energy scale,
    both of what the network learns: the labels minus the model's priors (ZBL, ...)."""
    arch = module.architecture
    head = module.potential.heads[0]
    learned = _minus_priors(module, frames, labels, train_idx)
    with torch.no_grad():
        for k, fidelity in enumerate(arch.fidelities):
            chosen = [i for i in train_idx if "energy" in labels[i] and _fidelity_index(frames[i], spec, arch.fidelities) == k]
            if chosen:
                energies = [learned[i]["energy"] for i in chosen]
                for z, e in fit_atomrefs([frames[i] for i in chosen], energies, arch.elements).items():
                    head.atomref[k, z] = e
        # the median frame's RMS force: off-equilibrium frames with huge forces do not set it
        rms = [np.sqrt(np.mean(learned[i]["forces"] ** 2)) for i in train_idx if "forces" in learned[i]]
        if rms:
            head.scale.fill_(float(np.median(rms)))


def _minus_priors(module, frames, labels, indices) -> dict[int, dict]:
    """Energy and forces labels of ``indices`` with the potential's prior terms taken away."""
    from ..nn.priors import ZBLRepulsion, prior_energy_forces

    priors = [h for h in module.potential.heads if isinstance(h, ZBLRepulsion)]
    out = {}
    for i in indices:
        out[i] = {k: np.asarray(labels[i][k], dtype=float) for k in ("energy", "forces") if k in labels[i]}
        if priors and out[i]:
            energy, forces = prior_energy_forces(priors, frames[i], module.architecture.cutoff)
            out[i] = {k: v - (energy if k == "energy" else forces) for k, v in out[i].items()}
    return out


class EpochSampler(torch.utils.data.Sampler):
    """A shuffle that depends only on (seed, epoch): resuming reproduces the data order."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self):
        return self.n


def loaders(items, parts, batch_size: int, seed: int):
    from torch.utils.data import DataLoader

    def loader(indices, shuffle):
        data = [items[i] for i in indices]
        sampler = EpochSampler(len(data), seed) if shuffle else None
        return DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=collate)

    return loader(parts["train"], True), loader(parts["val"], False), loader(parts["test"], False)


def _trainer(config: dict, run_dir: Path):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, Timer
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from .module import monitor_spec

    opts = config["trainer"]
    monitor, mode = monitor_spec(opts["monitor"], [Task(**t) for t in config["tasks"]])
    callbacks = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode),
        # written after every epoch whatever the loss did: what a killed run resumes from
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False),
        EarlyStopping(monitor=monitor, mode=mode, patience=opts["patience"]),
    ]
    if opts["max_minutes"]:
        callbacks.append(Timer(duration={"minutes": opts["max_minutes"]}, interval="epoch"))
    loggers = [CSVLogger(run_dir, name="logs")]  # a new version_N per (re)start: nothing is overwritten
    try:
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard"))
    except ModuleNotFoundError:  # neither tensorboard nor tensorboardX installed
        pass
    return pl.Trainer(
        accelerator=opts["accelerator"], devices=opts["devices"], num_nodes=opts["num_nodes"],
        strategy=opts["strategy"], max_epochs=opts["max_epochs"], gradient_clip_val=opts["clip_grad"],
        callbacks=callbacks, logger=loggers, inference_mode=False, deterministic=True,
        default_root_dir=run_dir, log_every_n_steps=10, enable_progress_bar=opts["progress"],
    )


def train(config: str | Path | dict, **trainer_overrides) -> dict:
    """Train (or resume) the run described by ``config``; returns a summary with test metrics.

    ``trainer_overrides`` replace trainer options (e.g. ``devices=2``, ``max_epochs=5``).
    """
    import lightning.pytorch as pl

    from .module import PotentialModule, monitor_spec

    config_path = str(config) if not isinstance(config, dict) else "CONFIG"
    config = load_config(config)
    config["trainer"] |= {k: v for k, v in trainer_overrides.items() if v is not None}
    monitor_spec(config["trainer"]["monitor"], [Task(**t) for t in config.get("tasks") or []])  # fail before data
    pl.seed_everything(config["seed"], workers=True, verbose=False)
    spec = DataSpec(**config["data"])
    frames = read_frames(spec, config["seed"])
    labels = validate(frames, spec)
    config = complete(config, frames, labels)
    parts = split_indices(frames, spec, config["seed"])
    run_dir = Path(config["run_dir"])
    module = PotentialModule(config)
    fidelities = module.architecture.fidelities
    items = [to_item(f, lab, module.architecture.cutoff, _fidelity_index(f, spec, fidelities))
             for f, lab in zip(frames, labels)]
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = last.is_file()
    if not resumed:  # init_from: fine-tune (weights and reference energies) or pre-trained parts
        from .module import initialise_from

        whole = bool(config.get("init_from")) and initialise_from(module, config["init_from"])
        if not whole:
            prepare_reference_energies(module, frames, labels, parts["train"], spec)
    module.provenance = {"data": file_hashes(spec), "split": {k: len(v) for k, v in parts.items()} | {"seed": config["seed"]}}
    train_loader, val_loader, test_loader = loaders(items, parts, config["trainer"]["batch_size"], config["seed"])
    trainer = _trainer(config, run_dir)
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if last.is_file() else None)
    seconds = time.perf_counter() - start + _previous_seconds(run_dir, resumed)
    summary = {"epochs": trainer.current_epoch, "seconds": seconds, "run_dir": str(run_dir),
               "config": config_path, "threads": torch.get_num_threads()}
    if parts["test"]:  # every rank takes part (collective); rank 0 writes
        (metrics,) = trainer.test(module, test_loader, ckpt_path="best", verbose=False)
        summary["test_metrics"] = {k: float(v) for k, v in metrics.items()}
    if trainer.is_global_zero:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if config.get("output"):
            from .export import export_checkpoint

            best = trainer.checkpoint_callbacks[0].best_model_path or str(last)
            summary["model"] = str(export_checkpoint(best, config["output"], summary))
    return summary


def _previous_seconds(run_dir: Path, resumed: bool) -> float:
    """Training time of the legs before a resume (from the run's last summary)."""
    previous = run_dir / "summary.json"
    if not resumed or not previous.is_file():
        return 0.0
    return float(json.loads(previous.read_text()).get("seconds", 0.0))

