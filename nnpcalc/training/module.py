"""The LightningModule: a :class:`Potential` plus a task list, trained on batches from ``data``.

Everything needed to rebuild it is in its hyperparameters (the completed config), so a
checkpoint alone exports to a model file.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from ..nn.build import Architecture, build_potential
from ..properties import torch_dtype
from .calibration import Collector, scores
from .tasks import CLASSIFICATION, Task, total_loss

#: the name a weighted combination of validation metrics (``trainer.monitor: {name: weight}``) is logged under
COMBINED = "val_monitor"


def validation_metrics(tasks: list[Task]) -> list[str]:
    """The validation metrics logged every epoch: what ``trainer.monitor`` may name."""
    names = ["val_loss"]
    for task in tasks:
        if task.metric in CLASSIFICATION:
            names.append(f"val_{task.output}_accuracy")
        else:
            names += [f"val_{task.output}_{kind}" for kind in ("mae", "mse", "rmse")]
    return names


def monitor_spec(monitor, tasks: list[Task]) -> tuple[str, str]:
    """(logged name, "min" or "max") of ``trainer.monitor``, which drives best.ckpt, early
    stopping and the LR scheduler; DataError for a metric the tasks do not log."""
    from ..errors import DataError

    logged = validation_metrics(tasks)
    if isinstance(monitor, str):
        if monitor not in logged:
            raise DataError(f"trainer.monitor {monitor!r} is not a validation metric these tasks log; "
                            f"choose from {logged}, or a mapping {{metric: weight}} of error metrics")
        return monitor, "max" if monitor.endswith("_accuracy") else "min"
    combinable = [m for m in logged if m != "val_loss" and not m.endswith("_accuracy")]
    valid = isinstance(monitor, dict) and bool(monitor) and all(
        m in combinable and isinstance(w, (int, float)) and w > 0 for m, w in monitor.items())
    if not valid:
        raise DataError(f"trainer.monitor must be one of {logged} or a mapping {{metric: positive weight}} "
                        f"over {combinable}; got {monitor!r}")
    return COMBINED, "min"

class PotentialModule(pl.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.architecture = Architecture(**config["architecture"])
        self.potential = build_potential(self.architecture).to(torch_dtype(config["trainer"]["dtype"]))
        self.tasks = [Task(**t) for t in config["tasks"]]
        self.optim = config["trainer"]
        self.provenance: dict = {}
        self._sums: dict[str, list[float]] = {}
        self._uncertainty = Collector()

    def ensemble_head(self):
        """The ensemble energy head (``nnpcalc.nn.uncertainty``), or None."""
        from ..nn.uncertainty import EnsembleEnergyHead

        return next((h for h in self.potential.heads if isinstance(h, EnsembleEnergyHead)), None)

    def forward(self, batch: dict, uncertainty: bool = False) -> dict:
        positions = batch["positions"]
        for task in self.tasks:
            if task.head == "denoise":
                noise = torch.randn_like(positions) * task.noise_std
                positions = positions + noise
                batch["labels"][task.label] = noise
                batch["mask"][task.label] = torch.ones_like(batch["pbc"][:, 0])
        outputs = {t.output for t in self.tasks}
        fidelity = batch["fidelity"] if len(self.architecture.fidelities) > 1 else None
        return self.potential.forward_batch(
            positions, batch["numbers"], batch["cell"], batch["pbc"], batch["charge"], batch["batch"],
            fidelity, batch["edge_index"], batch["shifts"], "forces" in outputs, "stress" in outputs,
            uncertainty and "forces" in outputs,
        )

    def training_step(self, batch, index):
        if self.optim.get("augment_rotations"):  # inputs and labels turned by a random O(3) element per structure
            from .augment import random_orthogonal, rotate_batch

            batch = rotate_batch(batch, random_orthogonal(batch["cell"].shape[0]))
        loss, terms = total_loss(self.tasks, self(batch), batch)
        size = len(batch["natoms"])
        self.log("train_loss", loss, batch_size=size, prog_bar=True)
        self.log_dict({f"train_{k}": v for k, v in terms.items()}, batch_size=size)
        return loss

    def _evaluate(self, batch, stage: str):
        head = self.ensemble_head()
        with torch.enable_grad():  # forces are derivatives, also when validating
            out = self(batch, uncertainty=head is not None)
        if head is not None:
            self._uncertainty.add(out, batch, float(head.forces_calibration))
        loss, _ = total_loss(self.tasks, out, batch)
        self.log(f"{stage}_loss", loss.detach(), batch_size=len(batch["natoms"]), prog_bar=True, sync_dist=True)
        for task in self.tasks:
            for name, (total, count) in task.errors(out, batch).items():
                sums = self._sums.setdefault(f"{stage}_{name}", [0.0, 0])
                sums[0], sums[1] = sums[0] + total, sums[1] + count

    def validation_step(self, batch, index):
        self._evaluate(batch, "val")

    def test_step(self, batch, index):
        self._evaluate(batch, "test")

    def _epoch_metrics(self):
        metrics = {}
        for name, (total, count) in self._sums.items():
            metrics[name] = total / max(count, 1)
            if name.endswith("_mse"):
                metrics[name[:-4] + "_rmse"] = metrics[name] ** 0.5
        self._sums = {}
        monitor = self.optim.get("monitor", "val_loss")
        if isinstance(monitor, dict) and all(name in metrics for name in monitor):  # a validation epoch
            metrics[COMBINED] = sum(weight * metrics[name] for name, weight in monitor.items())
        self.log_dict(metrics, sync_dist=True)

    def on_validation_epoch_end(self):
        self._epoch_metrics()
        self._calibrate()

    def on_test_epoch_end(self):
        self._epoch_metrics()
        self._score_uncertainty()

    def _calibrate(self):
        """Set the ensemble head's calibration from this validation epoch (saved with the checkpoint)."""
        result, self._uncertainty = self._uncertainty.result(), Collector()
        head = self.ensemble_head()
        if not result or head is None:
            return
        with torch.no_grad():
            for name, buffer in (("energy", head.energy_calibration), ("forces", head.forces_calibration)):
                if name not in result:
                    continue
                factor = result[name]["calibration"]
                if math.isfinite(factor) and factor > 0:
                    buffer.fill_(factor)
                else:  # no spread or no error to scale (e.g. only 1-atom cells): keep the factor in use
                    result[name] |= {"calibration": float(buffer), "kept": True}
        self.provenance["uncertainty"] = {"split": "val"} | result

    def _score_uncertainty(self):
        """Test-split coverage of the calibrated uncertainty, logged as test metrics."""
        head = self.ensemble_head()
        if head is None:
            return
        factors = {"energy": float(head.energy_calibration), "forces": float(head.forces_calibration)}
        result, self._uncertainty = self._uncertainty.result(factors), Collector()
        metrics = {f"{name}_uncertainty_{key}": stats[key] for name, stats in result.items()
                   for key in ("coverage_1sigma", "coverage_2sigma", "z_rms", "rank_correlation")}
        self.log_dict(metrics)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.optim["lr"], weight_decay=self.optim["weight_decay"])
        monitor, mode = monitor_spec(self.optim.get("monitor", "val_loss"), self.tasks)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=self.optim["lr_factor"], patience=self.optim["lr_patience"]
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["nnpcalc_provenance"] = self.provenance

    def on_load_checkpoint(self, checkpoint):
        self.provenance = checkpoint.get("nnpcalc_provenance", {})


def initialise_from(module: PotentialModule, init) -> bool:
    """Start ``module`` from the weights of a model file or an nnpcalc training checkpoint.

    ``init``: a path (fine-tuning: the whole potential, same architecture; reference energies
    and calibration come along) or ``{"path": ..., "parts": ["backbone"]}`` (pre-train →
    fine-tune: only those submodules, e.g. a backbone pre-trained by denoising; the heads start
    fresh). Returns True when the whole potential was loaded.
    """
    from pathlib import Path

    from ..errors import DataError

    spec = {"path": init} if isinstance(init, (str, Path)) else dict(init)
    parts, path = spec.get("parts"), Path(spec["path"])
    state = _weights(path)
    try:
        if not parts:
            _load_whole(module.potential, state)  # copies into the module's own dtypes
        for part in parts or ():
            prefix = f"{part}."
            getattr(module.potential, part).load_state_dict(
                {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    except (RuntimeError, AttributeError) as err:
        raise DataError(
            f"init_from {path} (parts {parts or 'all'}): its weights do not fit this config's architecture "
            f"({str(err).splitlines()[0]}). Use the architecture the file was trained with, load only the "
            "matching parts (init_from: {path: ..., parts: [backbone]}), or drop init_from."
        ) from err
    return not parts


def _load_whole(potential, state: dict) -> None:
    """Load every weight; a head marked ``loads_fresh`` (a term added since, e.g. the charge
    self-energy) may be missing from ``state`` and then keeps its initial weights."""
    fresh = tuple(f"heads.{i}." for i, head in enumerate(potential.heads) if getattr(head, "loads_fresh", False))
    kept = {k: v for k, v in potential.state_dict().items() if k.startswith(fresh) and k not in state}
    potential.load_state_dict(dict(state) | kept)


def _weights(path) -> dict:
    """The potential's state dict from a model file or an nnpcalc checkpoint (no code is run)."""
    from .. import modelfile

    if path.suffix == ".ckpt":
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
        return {k.removeprefix("potential."): v for k, v in raw["state_dict"].items()}
    scripted, _ = modelfile.load(path)
    return scripted.state_dict()
