"""Loss terms that compose: ``loss = sum(task.weight * task.metric(output, label))``.

One :class:`Task` per term, never a class per combination of tasks. A task names the model
output, the label it is compared with, the metric and the weight; tasks for outputs beyond
energy/forces/stress/charges/dipole also name the head kind that produces them, so the
architecture can be derived from the task list. The seed task list maps onto it as:

==========================  ==================================================================
energy + forces (autograd)  ``{output: energy}``, ``{output: forces}``
stress                      ``{output: stress}``
charges, dipole             ``{output: charges}``, ``{output: dipole}``
scalar regression           ``{output: gap, head: scalar}``
binary classification       ``{output: is_metal, head: classifier, metric: bce}``
space-group classification  ``{output: spacegroup, head: classifier, num_classes: 230, metric: ce}``
direct (gradient-free) F    ``{output: forces_direct, head: direct_forces, label: forces}``
denoising pre-training      ``{output: noise, head: denoise, noise_std: 0.05}``
energy uncertainty          ``{output: energy_ensemble, metric: nll}`` (an ensemble energy head)
==========================  ==================================================================

``energy_ensemble`` makes the energy head a shallow ensemble (``nnpcalc.nn.uncertainty``; its
label is ``energy``): ``nll`` fits the members' mean and spread to the energies (Gaussian
negative log-likelihood per atom), ``mse`` fits every member to them. The energy and force
tasks train the members' mean, which is the model's energy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from .data import ATOM_LABELS

REGRESSION = ("mse", "mae", "huber", "nll")
#: the output of an ensemble energy head: one energy per member [B, K]
ENSEMBLE = "energy_ensemble"
CLASSIFICATION = ("bce", "ce")


@dataclass
class Task:
    output: str
    weight: float = 1.0
    metric: str = "mse"
    label: str | None = None
    head: str | None = None
    num_classes: int = 1
    noise_std: float = 0.0
    unit: str = ""
    reduce: str = "mean"
    members: int = 8  #: ensemble members (``energy_ensemble`` only)

    def __post_init__(self):
        if self.metric not in REGRESSION + CLASSIFICATION:
            raise ValueError(f"task {self.output!r}: unknown metric {self.metric!r}; choose from "
                             f"{', '.join(REGRESSION + CLASSIFICATION)}")
        if self.metric == "nll" and self.output != ENSEMBLE:
            raise ValueError(f"task {self.output!r}: metric 'nll' needs the ensemble's spread; "
                             f"use it with output {ENSEMBLE!r}")
        self.label = self.label or ("energy" if self.output == ENSEMBLE else self.output)

    def to_dict(self) -> dict:
        return asdict(self)

    def head_spec(self) -> dict | None:
        """The head this task needs, for the named head kinds."""
        if self.head is None:
            return None
        spec = {"kind": self.head, "name": self.output}
        spec |= {"num_classes": self.num_classes} if self.head == "classifier" else {}
        spec |= {"unit": self.unit} if self.unit else {}
        spec |= {"reduce": self.reduce} if self.head == "scalar" else {}
        return spec

    def _masked(self, out: dict, batch: dict):
        """Prediction and label of the structures (or their atoms) that carry the label."""
        mask = batch["mask"][self.label]
        if self.label in ATOM_LABELS or self.head in ("direct_forces", "denoise"):
            mask = mask[batch["batch"]]
        pred, ref = out[self.output][mask], batch["labels"][self.label][mask]
        if self.output in ("energy", ENSEMBLE):
            natoms = batch["natoms"][mask]
            pred, ref = pred / natoms.reshape(-1, *[1] * (pred.dim() - 1)), ref / natoms
        if self.output == ENSEMBLE:
            ref = ref.unsqueeze(-1)  # [B, 1] against the members [B, K]
        return pred, ref

    def loss(self, out: dict, batch: dict) -> torch.Tensor:
        labelled = self.label in batch["mask"] and bool(batch["mask"][self.label].any())
        # a batch of molecules and clusters has no stress to write, and no stress label either
        if not labelled and (self.output in out or self.output == "stress"):
            return out["energy"].new_zeros(())
        if self.output not in out:
            from ..errors import DataError

            raise DataError(f"task {self.output!r}: the model writes no such output (it writes "
                            f"{', '.join(sorted(out))}); leave architecture.heads out so the tasks choose "
                            "the heads, or list the head this task needs there")
        pred, ref = self._masked(out, batch)
        if self.metric == "bce":
            return F.binary_cross_entropy_with_logits(pred[:, 0], ref.to(pred.dtype))
        if self.metric == "ce":
            return F.cross_entropy(pred, ref.long())
        if self.metric == "nll":
            return gaussian_nll(pred, ref.to(pred.dtype))
        diff = pred - ref.to(pred.dtype)
        if self.metric == "mae":
            return diff.abs().mean()
        if self.metric == "huber":
            return F.huber_loss(diff, torch.zeros_like(diff), delta=0.01)
        return (diff**2).mean()

    def errors(self, out: dict, batch: dict) -> dict[str, tuple[float, int]]:
        """Sums for epoch metrics: name → (sum, count) of |error|, error², or correct."""
        if self.label not in batch["mask"] or not bool(batch["mask"][self.label].any()):
            return {}
        with torch.no_grad():
            pred, ref = self._masked(out, batch)
            if self.metric in CLASSIFICATION:
                guess = (pred[:, 0] > 0).long() if self.metric == "bce" else pred.argmax(-1)
                return {f"{self.output}_accuracy": (float((guess == ref.long()).sum()), ref.numel())}
            if self.output == ENSEMBLE:  # score the members' mean
                pred = pred.mean(dim=-1, keepdim=True)
            diff = (pred.double() - ref.double()).reshape(-1)
            return {f"{self.output}_mae": (float(diff.abs().sum()), diff.numel()),
                    f"{self.output}_mse": (float((diff**2).sum()), diff.numel())}


def gaussian_nll(members, ref, floor: float = 1e-8):
    """Mean Gaussian negative log-likelihood of ``ref`` [B, 1] under the members' mean and
    variance [B, K] (constant dropped); ``floor`` keeps the variance positive."""
    mean = members.mean(dim=-1, keepdim=True)
    variance = ((members - mean) ** 2).mean(dim=-1, keepdim=True) + floor
    return 0.5 * (torch.log(variance) + (ref - mean) ** 2 / variance).mean()


def total_loss(tasks: list[Task], out: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    terms = {t.output: t.weight * t.loss(out, batch) for t in tasks}
    return sum(terms.values()), terms


def heads_for(tasks: list[Task], charges: bool = False) -> list:
    """The head list a task list needs: energy always; charges, then the (parameter-free)
    dipole head whenever charges are learned or ``charges`` (an electrostatics term reads them:
    the energy alone trains them, a charges task is then an optional auxiliary loss); the named heads."""
    outputs = {t.output for t in tasks} | ({"charges"} if charges else set())
    ensemble = next((t for t in tasks if t.output == ENSEMBLE), None)
    heads: list = [{"kind": ENSEMBLE, "members": ensemble.members} if ensemble else "energy"]
    if outputs & {"charges", "dipole"}:
        heads += ["charges", "dipole"]
    return heads + [spec for spec in (t.head_spec() for t in tasks) if spec is not None]
