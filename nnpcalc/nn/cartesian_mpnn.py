"""A non-equivariant backbone: MLP message passing on raw Cartesian pair vectors.

Every message is an MLP of (the two atoms' features, a radial basis of the distance, the pair
vector r_ij itself in the lab frame). The vector's x, y, z components enter the network as
plain numbers, so nothing constrains the energy to be rotation-invariant: the model learns
invariance from data, which rotation augmentation (``trainer: {augment_rotations: true}``,
``nnpcalc.training.augment``) supplies, and how far it falls short is measured by
``nnpcalc.equivariance``. Translation invariance, lattice-image invariance and smoothness hold
exactly (only relative vectors enter; every message is multiplied by a cosine envelope), so
energy, forces and stress are conservative and periodic cells work as for the other backbones.

The seed's idea (a non-equivariant EdgeTransformer trained with rotations and flips) in its
simplest form; whether it earns its place against TensorNet is measured in
``benchmarks/nonequivariant_cost.py`` (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbone import Backbone, radial_basis
from .graph_ops import drop_short_pairs, scatter_sum
from .radial import ACTIVATIONS, DEFAULT_CUTOFF, CosineCutoff, choose


class CartesianMessage(nn.Module):
    """x_i ← x_i + update([x_i, norm(Σ_j envelope(r_ij) · MLP(x_i, x_j, rbf(r_ij), r_ij / cutoff))])."""

    def __init__(self, hidden_channels: int, geometry_channels: int, activation):
        super().__init__()
        F = hidden_channels
        # the first message layer on cat(x_i, x_j, geometry), split into per-atom products
        self.receiver = nn.Linear(F, F, bias=False)
        self.sender = nn.Linear(F, F, bias=False)
        self.geometry = nn.Linear(geometry_channels, F)
        self.message = nn.Linear(F, F)
        self.norm = nn.LayerNorm(F)
        self.update = nn.Sequential(nn.Linear(2 * F, F), activation(), nn.Linear(F, F))
        self.act = activation()

    def forward(self, x: Tensor, edge_index: Tensor, geometry: Tensor, envelope: Tensor) -> Tensor:
        i, j = edge_index[0], edge_index[1]
        hidden = self.geometry(geometry) + self.receiver(x).index_select(0, i) + self.sender(x).index_select(0, j)
        messages = self.message(self.act(hidden)) * envelope.unsqueeze(1)
        summed = self.norm(scatter_sum(messages, i, x.shape[0]))
        return x + self.update(torch.cat([x, summed], dim=1))


class CartesianMPNN(Backbone):
    """Non-equivariant backbone: (z, graph, per-atom total charge) → per-atom features [N, F].

    ``edge_vec`` (r_j - r_i + image, Å) is divided by the cutoff and fed to every message
    MLP with ``num_rbf`` radial functions of its length; ``total_charge``: the structure's
    total charge is added to the embedding through a learned vector.
    """

    #: read by ``nnpcalc.equivariance.rotation_equivariant`` (a class attribute: not in the file)
    rotation_equivariant = False

    def __init__(
        self,
        hidden_channels: int = 64,
        num_layers: int = 2,
        num_rbf: int = 16,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = DEFAULT_CUTOFF,
        max_z: int = 128,
        total_charge: bool = True,
    ):
        act = choose(ACTIVATIONS, activation, "activation")
        super().__init__(hidden_channels, cutoff_lower, cutoff_upper)
        self.total_charge = bool(total_charge)
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.charge_embedding = nn.Linear(1, hidden_channels, bias=False)
        self.distance_expansion = radial_basis(rbf_type, cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.envelope = CosineCutoff(cutoff_lower, cutoff_upper)
        self.layers = nn.ModuleList(
            [CartesianMessage(hidden_channels, num_rbf + 3, act) for _ in range(num_layers)]
        )
        self.out_norm = nn.LayerNorm(hidden_channels)

    def forward(self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor) -> Tensor:
        edge_index, edge_vec, edge_len = drop_short_pairs(edge_index, edge_vec, edge_len, self.cutoff_lower)
        # the lab-frame components themselves: this is what makes the backbone non-equivariant
        geometry = torch.cat([self.distance_expansion(edge_len), edge_vec / self.cutoff_upper], dim=1)
        envelope = self.envelope(edge_len)
        x = self.embedding(z)
        if self.total_charge:
            x = x + self.charge_embedding(q.to(x.dtype).unsqueeze(1))
        for layer in self.layers:
            x = layer(x, edge_index, geometry, envelope)
        return self.out_norm(x)
