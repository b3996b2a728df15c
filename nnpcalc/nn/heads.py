"""Task heads: small modules that turn per-atom features into named outputs.

Every head has the same interface, ``forward(x, system, outputs) -> outputs``: it reads the
per-atom features ``x`` [N, F] (with the per-structure context already appended), the
``system`` tensors and the outputs of the heads before it, and adds its own entries.
Adding a head is one small class; the training submodule composes losses over the names.

``system`` holds: ``positions`` [N,3] (strained, differentiable), ``numbers`` [N],
``batch`` [N], ``total_charge`` [B].
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
    """Per-atom energies ``scale * mlp(x) + shift + E0[Z]``, summed per structure in float64."""

    outputs = ("energy", "energies")

    def __init__(self, in_channels: int, hidden: int, max_z: int = 100):
        super().__init__(in_channels, hidden)
        self.register_buffer("atomref", torch.zeros(max_z + 1, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64 = torch.float64  # accumulate in float64 whatever the model's dtype
        raw = self.net(x).squeeze(-1).to(f64)
        energies = raw * self.scale.to(f64) + self.shift.to(f64) + self.atomref.to(f64)[system["numbers"]]
        outputs["energies"] = energies
        outputs["energy"] = per_structure(energies, system["batch"], system["total_charge"].shape[0])
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


HEADS = {"energy": EnergyHead, "charges": ChargeHead, "dipole": DipoleHead}
#: heads that must come earlier in the list
REQUIRES = {"dipole": ("charges",)}
