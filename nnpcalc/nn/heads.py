"""Task heads: small modules that turn per-atom features into named outputs.

Every head has the same interface, ``forward(x, system, outputs) -> outputs``: it reads the
per-atom features ``x`` [N, F] (with the per-structure context already appended), the
``system`` tensors and the outputs of the heads before it, and adds its own entries.
Adding a head is one small class; the training submodule composes losses over the names.

``system`` holds: ``positions`` [N,3] (strained, differentiable), ``numbers`` [N],
``batch`` [N], ``total_charge`` [B], ``fidelity`` [B] (index), and the graph: ``edge_index`` [2,E], ``edge_vec`` [E,3]
(r_j - r_i + image), ``edge_len`` [E].

Heads of the seed task list beyond energy/charges/dipole: per-structure scalar regression,
classification (binary or multi-class logits), gradient-free (direct) forces and
node denoising (predicting the noise added to positions) — the last two are equivariant
vector outputs built from pair directions.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from .graph_ops import scatter_sum


def mlp(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.SiLU(), nn.Linear(hidden, out_channels))


def per_structure(values: Tensor, batch: Tensor, num_structures: int) -> Tensor:
    return scatter_sum(values, batch, num_structures)


class Head(nn.Module):
    """Base class: an MLP from features (+ context) to ``out_channels`` per atom."""

    outputs: tuple = ()

    def __init__(self, in_channels: int, hidden: int, out_channels: int = 1):
        super().__init__()
        self.net = mlp(in_channels, hidden, out_channels)


class EnergyHead(Head):
    """Per-atom energies ``scale * mlp(x) + shift + E0[fidelity, Z]``, summed in float64.

    Reference energies are per element *and* per fidelity: each method keeps its own zero.
    """

    outputs = ("energy", "energies")

    def __init__(self, in_channels: int, hidden: int, max_z: int = 100, num_fidelities: int = 1):
        super().__init__(in_channels, hidden)
        self.register_buffer("atomref", torch.zeros(num_fidelities, max_z + 1, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64 = torch.float64  # accumulate in float64 whatever the model's dtype
        batch, numbers = system["batch"], system["numbers"]
        reference = self.atomref.to(f64)[system["fidelity"][batch], numbers]
        energies = self.net(x).squeeze(-1).to(f64) * self.scale.to(f64) + self.shift.to(f64) + reference
        outputs["energies"] = energies
        outputs["energy"] = per_structure(energies, batch, system["total_charge"].shape[0])
        return outputs


class ChargeHead(Head):
    """Partial charges that sum to each structure's total charge.

    The excess ``Q - sum(q)`` is spread evenly over the structure's atoms, for every
    structure at once (no loop over structures).
    """

    outputs = ("charges",)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, total = system["batch"], system["total_charge"]
        raw = self.net(x).squeeze(-1)
        counts = torch.bincount(batch, minlength=total.shape[0]).to(raw.dtype)
        excess = total.to(raw.dtype) - per_structure(raw, batch, total.shape[0])
        outputs["charges"] = raw + (excess / counts.clamp(min=1.0))[batch]
        return outputs


class DipoleHead(nn.Module):
    """Dipole moment ``sum_i q_i r_i`` from the charge head's charges (no parameters)."""

    outputs = ("dipole",)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        q = outputs["charges"]
        moments = q.unsqueeze(-1) * system["positions"].to(q.dtype)
        outputs["dipole"] = per_structure(moments, system["batch"], system["total_charge"].shape[0])
        return outputs


class ScalarHead(Head):
    """A per-structure scalar: per-atom contributions, summed or averaged over the structure."""

    def __init__(self, in_channels: int, hidden: int, name: str, reduce: str = "mean"):
        super().__init__(in_channels, hidden)
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        self.name = name
        self.mean = reduce == "mean"

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, n = system["batch"], system["total_charge"].shape[0]
        total = per_structure(self.net(x).squeeze(-1), batch, n)
        if self.mean:
            total = total / torch.bincount(batch, minlength=n).clamp(min=1).to(total.dtype)
        outputs[self.name] = total
        return outputs


class ClassifierHead(Head):
    """Per-structure class logits [B, C] from mean-pooled atom features (C = 1: binary)."""

    def __init__(self, in_channels: int, hidden: int, name: str, num_classes: int = 1):
        super().__init__(in_channels, hidden, num_classes)
        self.name = name

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, n = system["batch"], system["total_charge"].shape[0]
        pooled = per_structure(x, batch, n) / torch.bincount(batch, minlength=n).clamp(min=1).to(x.dtype)[:, None]
        outputs[self.name] = self.net(pooled)
        return outputs


class VectorHead(nn.Module):
    """Per-atom vectors sum_j w(x_i, x_j, r_ij) r_ij/|r_ij|: equivariant, no autograd needed."""

    def __init__(self, in_channels: int, hidden: int, name: str, cutoff: float):
        super().__init__()
        self.net = mlp(2 * in_channels, hidden, 1)
        self.name = name
        self.cutoff = float(cutoff)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        i, j = system["edge_index"][0], system["edge_index"][1]
        length = system["edge_len"]
        envelope = 0.5 * (torch.cos(length * 3.141592653589793 / self.cutoff) + 1.0)
        weight = self.net(torch.cat([x[i], x[j]], dim=-1)).squeeze(-1) * envelope
        unit = system["edge_vec"] / length.clamp(min=1e-9).unsqueeze(-1)
        outputs[self.name] = scatter_sum(weight.unsqueeze(-1) * unit, i, x.shape[0])
        return outputs


HEADS = {
    "energy": EnergyHead,
    "charges": ChargeHead,
    "dipole": DipoleHead,
    "scalar": ScalarHead,
    "classifier": ClassifierHead,
    "direct_forces": VectorHead,
    "denoise": VectorHead,
}
#: heads that must come earlier in the list
REQUIRES = {"dipole": ("charges",)}
#: the kinds whose instances are named by the user (the others have fixed output names)
NAMED = ("scalar", "classifier", "direct_forces", "denoise")
