"""The LightningModule: a :class:`Potential` plus a task list, trained on batches from ``data``.

Everything needed to rebuild it is in its hyperparameters (the completed config), so a
checkpoint alone exports to a model file.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ..nn.build import Architecture, build_potential
from ..properties import torch_dtype
from .tasks import Task, total_loss



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

    def forward(self, batch: dict) -> dict:
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
        )

    def training_step(self, batch, index):
        loss, terms = total_loss(self.tasks, self(batch), batch)
        size = len(batch["natoms"])
        self.log("train_loss", loss, batch_size=size, prog_bar=True)
        self.log_dict({f"train_{k}": v for k, v in terms.items()}, batch_size=size)
        return loss

    def _evaluate(self, batch, stage: str):
        with torch.enable_grad():  # forces are derivatives, also when validating
            out = self(batch)
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
        self.log_dict(metrics, sync_dist=True)

    def on_validation_epoch_end(self):
        self._epoch_metrics()

    def on_test_epoch_end(self):
        self._epoch_metrics()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.optim["lr"], weight_decay=self.optim["weight_decay"])
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.optim["lr_factor"], patience=self.optim["lr_patience"]
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["nnpcalc_provenance"] = self.provenance

    def on_load_checkpoint(self, checkpoint):
        self.provenance = checkpoint.get("nnpcalc_provenance", {})
