"""Task heads: small modules that turn per-atom features into named outputs.

Every head has the same interface, ``forward(x, system, outputs) -> outputs``: it reads the
per-atom features ``x`` [N, F] (with the per-structure context already appended), the
``system`` tensors and the outputs of the heads before it, and adds its own entries.
Every head also states its ``name`` and its outputs (``describe()``: name → shape, unit,
per_atom), which the model file's metadata lists. Adding a head kind is one small class and
one row of ``nnpcalc.nn.build.HEAD_KINDS``; the training submodule composes losses over the
names.

``system`` holds: ``positions`` [N,3] (strained, differentiable), ``numbers`` [N],
``batch`` [N], ``total_charge`` [B], ``fidelity`` [B] (index), ``cell`` [B,3,3] (strained),
``pbc`` [B,3], the graph: ``edge_index`` [2,E], ``edge_vec`` [E,3]
(r_j - r_i + image), ``edge_len`` [E], and ``vec``: the backbone's vector features [N,3,F]
(ET), an empty tensor for backbones without them.

Heads of the seed task list beyond energy/charges/dipole: per-structure scalar regression,
classification (binary or multi-class logits), gradient-free (direct) forces and
node denoising (predicting the noise added to positions) — the last two are equivariant
vector outputs built from pair directions. The ``torchmd_*`` energy heads are torchmd-net's
output models with its parameter names, for checkpoints imported from ``torchmd-train``.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from ..properties import describe
from .graph_ops import scatter_sum
from .radial import ACTIVATIONS, choose


def mlp(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.SiLU(), nn.Linear(hidden, out_channels))


def per_structure(values: Tensor, batch: Tensor, num_structures: int) -> Tensor:
    return scatter_sum(values, batch, num_structures)


class Head(nn.Module):
    """Base class of every head: it states its name and the outputs it writes.

    ``describe()`` is what the model file's metadata lists (via ``Potential.capabilities``);
    kinds with fixed outputs name them in ``outputs`` (``nnpcalc.properties`` names), named
    kinds override ``describe``. It is plain Python: TorchScript never compiles it.
    """

    name = ""  # (no annotations here: TorchScript would read them for the instances' attributes)
    outputs = ()

    def describe(self) -> dict:
        """Output name → shape, unit, per_atom (the metadata's ``outputs`` entries)."""
        return describe(list(self.outputs))


class MLPHead(Head):
    """A head with an MLP from features (+ context) to ``out_channels`` per atom."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int = 1):
        super().__init__()
        self.net = mlp(in_channels, hidden, out_channels)


def named_output(name: str, shape: str, unit: str, per_atom: bool) -> dict:
    """The ``describe()`` of a head whose output is named by the user."""
    return {name: {"shape": shape, "unit": unit, "per_atom": per_atom}}


class ReferenceEnergy(Head):
    """What every energy head holds: ``atomref`` [fidelity, Z] and ``scale``/``shift``, float64."""

    name = "energy"
    outputs = ("energy", "energies")

    def __init__(self, max_z: int, num_fidelities: int):
        super().__init__()
        self.register_buffer("atomref", torch.zeros(num_fidelities, max_z + 1, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))


class EnergyHead(ReferenceEnergy):
    """Per-atom energies ``scale * mlp(x) + shift + E0[fidelity, Z]``, summed in float64.

    Reference energies are per element *and* per fidelity: each method keeps its own zero.
    """

    def __init__(self, in_channels: int, hidden: int, max_z: int = 100, num_fidelities: int = 1):
        super().__init__(max_z, num_fidelities)
        self.net = mlp(in_channels, hidden, 1)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64 = torch.float64  # accumulate in float64 whatever the model's dtype
        batch, numbers = system["batch"], system["numbers"]
        reference = self.atomref.to(f64)[system["fidelity"][batch], numbers]
        energies = self.net(x).squeeze(-1).to(f64) * self.scale.to(f64) + self.shift.to(f64) + reference
        outputs["energies"] = energies
        outputs["energy"] = per_structure(energies, batch, system["total_charge"].shape[0])
        return outputs


class ChargeHead(MLPHead):
    """Partial charges that sum to each structure's total charge.

    The excess ``Q - sum(q)`` is spread evenly over the structure's atoms, for every
    structure at once (no loop over structures).
    """

    name = "charges"
    outputs = ("charges",)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, total = system["batch"], system["total_charge"]
        raw = self.net(x).squeeze(-1)
        counts = torch.bincount(batch, minlength=total.shape[0]).to(raw.dtype)
        excess = total.to(raw.dtype) - per_structure(raw, batch, total.shape[0])
        outputs["charges"] = raw + (excess / counts.clamp(min=1.0))[batch]
        return outputs


class DipoleHead(Head):
    """Dipole moment ``sum_i q_i r_i`` from the charge head's charges (no parameters)."""

    name = "dipole"
    outputs = ("dipole",)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        q = outputs["charges"]
        moments = q.unsqueeze(-1) * system["positions"].to(q.dtype)
        outputs["dipole"] = per_structure(moments, system["batch"], system["total_charge"].shape[0])
        return outputs


class ScalarHead(MLPHead):
    """A per-structure scalar: per-atom contributions, summed or averaged over the structure."""

    def __init__(self, in_channels: int, hidden: int, name: str, reduce: str = "mean", unit: str = ""):
        super().__init__(in_channels, hidden)
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        self.name, self.unit = name, unit
        self.mean = reduce == "mean"

    def describe(self) -> dict:
        return named_output(self.name, "", self.unit, False)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, n = system["batch"], system["total_charge"].shape[0]
        total = per_structure(self.net(x).squeeze(-1), batch, n)
        if self.mean:
            total = total / torch.bincount(batch, minlength=n).clamp(min=1).to(total.dtype)
        outputs[self.name] = total
        return outputs


class ClassifierHead(MLPHead):
    """Per-structure class logits [B, C] from mean-pooled atom features (C = 1: binary)."""

    def __init__(self, in_channels: int, hidden: int, name: str, num_classes: int = 1, unit: str = "logit"):
        super().__init__(in_channels, hidden, num_classes)
        self.name, self.unit = name, unit

    def describe(self) -> dict:
        return named_output(self.name, "C", self.unit, False)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        batch, n = system["batch"], system["total_charge"].shape[0]
        pooled = per_structure(x, batch, n) / torch.bincount(batch, minlength=n).clamp(min=1).to(x.dtype)[:, None]
        outputs[self.name] = self.net(pooled)
        return outputs


class VectorHead(Head):
    """Per-atom vectors sum_j w(x_i, x_j, r_ij) r_ij/|r_ij|: equivariant, no autograd needed."""

    def __init__(self, in_channels: int, hidden: int, name: str, cutoff: float, unit: str):
        super().__init__()
        self.net = mlp(2 * in_channels, hidden, 1)
        self.name, self.unit = name, unit
        self.cutoff = float(cutoff)

    def describe(self) -> dict:
        return named_output(self.name, "N,3", self.unit, True)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        i, j = system["edge_index"][0], system["edge_index"][1]
        length = system["edge_len"]
        envelope = 0.5 * (torch.cos(length * math.pi / self.cutoff) + 1.0)
        weight = self.net(torch.cat([x[i], x[j]], dim=-1)).squeeze(-1) * envelope
        unit = system["edge_vec"] / length.clamp(min=1e-9).unsqueeze(-1)
        outputs[self.name] = scatter_sum(weight.unsqueeze(-1) * unit, i, x.shape[0])
        return outputs


class TorchMDMLP(nn.Module):
    """torchmd-net's ``MLP``: Linear, act, (Linear, act) × num_hidden_layers, Linear, in ``layers``."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, activation: str,
                 num_hidden_layers: int = 0):
        super().__init__()
        act = choose(ACTIVATIONS, activation, "activation")
        sizes = [in_channels] + [hidden] * (num_hidden_layers + 1)
        layers: list = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), act()]
        self.layers = nn.Sequential(*layers, nn.Linear(hidden, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class GatedEquivariantBlock(nn.Module):
    """torchmd-net's ``GatedEquivariantBlock`` (Schütt et al. 2021) on (x [N,F], v [N,3,F])."""

    def __init__(self, hidden_channels: int, out_channels: int, activation: str,
                 scalar_activation: bool = False):
        super().__init__()
        self.out_channels = out_channels
        self.vec1_proj = nn.Linear(hidden_channels, hidden_channels, bias=False)
        self.vec2_proj = nn.Linear(hidden_channels, out_channels, bias=False)
        self.update_net = TorchMDMLP(2 * hidden_channels, hidden_channels, 2 * out_channels, activation)
        act = choose(ACTIVATIONS, activation, "activation")
        self.act = act() if scalar_activation else nn.Identity()

    def forward(self, x: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        v1 = self.vec1_proj(v)
        # as upstream: norms for atoms with a non-zero vector feature, 0 (and no NaN gradient) elsewhere
        alive = (v1 != 0).flatten(1).any(dim=1).unsqueeze(1)
        squared = (v1 * v1).sum(dim=1)
        safe = torch.where(alive, squared, torch.ones_like(squared))
        norm = torch.where(alive, torch.sqrt(safe), torch.zeros_like(squared))
        x, gate = torch.split(self.update_net(torch.cat([x, norm], dim=-1)), self.out_channels, dim=-1)
        return self.act(x), gate.unsqueeze(1) * self.vec2_proj(v)


class TorchMDScalarHead(ReferenceEnergy):
    """torchmd-net's ``Scalar`` output model, standardisation and ``Atomref`` prior.

    ``E = reduce_i(std * output_network(x_i) + atomref[Z_i]) + mean`` as upstream's
    ``TorchMD_Net.forward``, reduce ``sum`` or ``mean`` (upstream's mean divides by N + 1).
    ``scale`` holds std, ``atomref[0]`` the enabled Atomref priors, ``mean`` the per-structure
    mean (spread evenly over ``energies``); ``shift`` stays 0.
    """

    def __init__(self, in_channels: int, activation: str = "silu", num_hidden_layers: int = 0,
                 max_z: int = 100, reduce: str = "sum"):
        super().__init__(max_z, num_fidelities=1)
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        self.average = reduce == "mean"
        self.output_network = self._network(in_channels, activation, num_hidden_layers)
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))

    @staticmethod
    def _network(in_channels: int, activation: str, num_hidden_layers: int) -> nn.Module:
        return TorchMDMLP(in_channels, in_channels // 2, 1, activation, num_hidden_layers)

    def atom_outputs(self, x: Tensor, system: Dict[str, Tensor]) -> Tensor:
        return self.output_network(x).squeeze(-1)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64 = torch.float64
        batch, numbers, n = system["batch"], system["numbers"], system["total_charge"].shape[0]
        reference = self.atomref.to(f64)[system["fidelity"][batch], numbers]
        atoms = self.atom_outputs(x, system).to(f64) * self.scale.to(f64) + self.shift.to(f64) + reference
        counts = torch.bincount(batch, minlength=n).to(f64)
        total = per_structure(atoms, batch, n)
        if self.average:  # upstream's scatter mean counts its zero start: sum / (N + 1)
            total, atoms = total / (counts + 1), atoms / (counts + 1)[batch]
        mean = self.mean.to(f64)
        outputs["energies"] = atoms + mean / counts.clamp(min=1)[batch]
        outputs["energy"] = total + mean
        return outputs


class TorchMDEquivariantScalarHead(TorchMDScalarHead):
    """torchmd-net's ``EquivariantScalar`` (two gated equivariant blocks on ``x`` and ``system["vec"]``)."""

    def __init__(self, in_channels: int, activation: str = "silu", max_z: int = 100, reduce: str = "sum"):
        super().__init__(in_channels, activation, 0, max_z, reduce)

    @staticmethod
    def _network(in_channels: int, activation: str, num_hidden_layers: int) -> nn.Module:
        return nn.ModuleList([
            GatedEquivariantBlock(in_channels, in_channels // 2, activation, scalar_activation=True),
            GatedEquivariantBlock(in_channels // 2, 1, activation),
        ])

    def atom_outputs(self, x: Tensor, system: Dict[str, Tensor]) -> Tensor:
        v = system["vec"]
        for block in self.output_network:
            x, v = block(x, v)
        return x.squeeze(-1)
