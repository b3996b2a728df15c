"""torchmd-net's TensorNet2: TensorNet with per-layer partial charges (AIMNet2-style equilibration).

A port of torchmd-net 3.1's ``TensorNet2`` (``torchmdnet/models/tensornet2.py``, its pure-torch
path) with upstream's parameter names, for imported checkpoints. After the embedding and after
every interaction layer a ``ChargePredict`` block predicts ``q_dim`` charge channels per atom
and shifts them so that each channel sums to the structure's total charge (weights ``f²``);
each interaction layer reads the previous charges of both atoms of a pair as edge features.

Features: ``[N, F]`` as TensorNet's; with ``output_charges`` (upstream sets it for its Coulomb
output model) the ``(num_layers + 1) · q_dim`` charge channels follow them, layer-major
(embedding's ``q_dim`` channels first), as upstream appends them for ``ScalarPlusWeightedCoulomb``.
Per-structure sums need the batch: :class:`~nnpcalc.nn.potential.Potential` calls
:meth:`TensorNet2.features_batch` (it checks for ``uses_batch``).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from .backbone import radial_basis
from .graph_ops import scatter_sum
from .heads import TorchMDMLP
from .radial import ACTIVATIONS, DEFAULT_CUTOFF, CosineCutoff, choose
from .tensornet import (
    GROUPS, TensorEmbedding, _channel_matmul, compose, decompose, from_irreps, norm2, pair_graph, pair_sum,
    to_irreps,
)

#: upstream's regulariser of the equilibration weights' sum
QEQ_EPSILON = 1.0e-6


class ChargePredict(nn.Module):
    """``q_dim`` charge channels per atom from the tensor features, each summing to the total charge."""

    def __init__(self, hidden_channels: int, activation: str, q_dim: int):
        super().__init__()
        self.q_dim = q_dim
        self.epsilon = QEQ_EPSILON  # an attribute: TorchScript reads no float globals
        self.q_norm = nn.LayerNorm(3 * hidden_channels)
        self.q_mlp = TorchMDMLP(3 * hidden_channels, hidden_channels, 2 * q_dim, activation, 1)

    def forward(self, X: Tensor, batch: Tensor, total_charge: Tensor, num_structures: int) -> Tensor:
        I, A, S = decompose(X)
        out = self.q_mlp(self.q_norm(torch.cat((I, norm2(A), norm2(S)), dim=-1)))
        charges, f = out[:, : self.q_dim], out[:, self.q_dim:]
        weight = f * f
        weight_sum = scatter_sum(weight, batch, num_structures) + self.epsilon
        missing = total_charge.unsqueeze(-1) - scatter_sum(charges, batch, num_structures)[batch]
        return charges + weight / weight_sum[batch] * missing


class ChargedInteraction(nn.Module):
    """TensorNet's interaction whose pair weights also read both atoms' charges (upstream's ``Interaction``)."""

    def __init__(self, num_rbf, hidden_channels, q_dim, activation, cutoff_lower, cutoff_upper, group):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.linears_scalar = nn.ModuleList([
            nn.Linear(num_rbf + 2 * q_dim, hidden_channels),
            nn.Linear(hidden_channels, 2 * hidden_channels),
            nn.Linear(2 * hidden_channels, 3 * hidden_channels),
        ])
        self.linears_tensor = nn.ModuleList(
            [nn.Linear(hidden_channels, hidden_channels, bias=False) for _ in range(6)]
        )
        self.act = activation()
        self.o3 = group == "O(3)"

    def forward(self, X: Tensor, charges: Tensor, edge_index: Tensor, radial_len: Tensor, rbf: Tensor,
                pair: Tensor) -> Tensor:
        n = X.shape[0]
        weight = torch.cat(
            [rbf.index_select(0, pair), charges.index_select(0, edge_index[0]), charges.index_select(0, edge_index[1])],
            dim=-1,
        )
        for linear in self.linears_scalar:
            weight = self.act(linear(weight))
        weight = weight * self.cutoff(radial_len).index_select(0, pair).unsqueeze(-1)
        weight = weight.view(-1, 3, self.hidden_channels)
        X = X / (norm2(X) + 1)[:, None, None, :]
        I, A, S = decompose(X)
        I, A, S = self.linears_tensor[0](I), self.linears_tensor[1](A), self.linears_tensor[2](S)
        Y = compose(I, A, S)
        msg = from_irreps(pair_sum(weight, to_irreps(I, A, S), edge_index, n))
        if self.o3:
            C = _channel_matmul(msg, Y) + _channel_matmul(Y, msg)
        else:
            C = 2 * _channel_matmul(Y, msg)
        I, A, S = decompose(C)
        normp1 = norm2(C) + 1
        I = self.linears_tensor[3](I / normp1)
        A = self.linears_tensor[4](A / normp1[:, None, None, :])
        S = self.linears_tensor[5](S / normp1[:, None, None, :])
        dX = compose(I, A, S)
        return X + dX + _channel_matmul(dX, dX)


class TensorNet2(nn.Module):
    """TensorNet2 backbone: (z, graph, per-atom total charge, batch) → features [N, F (+ charges)]."""

    def __init__(
        self,
        hidden_channels: int = 128,
        q_dim: int = 16,
        num_layers: int = 2,
        num_rbf: int = 32,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = DEFAULT_CUTOFF,
        max_z: int = 128,
        equivariance_invariance_group: str = "O(3)",
        output_charges: bool = False,
        total_charge: bool = True,
    ):
        super().__init__()
        self.uses_batch = True  # Potential calls features_batch (batch and the number of structures)
        #: False: the total charge is not an input (torchmd-net trained with ``charge=False`` sees 0)
        self.total_charge = bool(total_charge)
        self.output_charges = bool(output_charges)
        self.q_dim = int(q_dim)
        act = choose(ACTIVATIONS, activation, "activation")
        group = choose(GROUPS, equivariance_invariance_group, "equivariance group")
        self.hidden_channels = hidden_channels
        self.cutoff_upper = float(cutoff_upper)
        self.distance_expansion = radial_basis(rbf_type, cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.tensor_embedding = TensorEmbedding(hidden_channels, num_rbf, act, cutoff_lower, cutoff_upper, max_z)
        self.charge_predict_0 = ChargePredict(hidden_channels, activation, q_dim)
        self.layers = nn.ModuleList([
            ChargedInteraction(num_rbf, hidden_channels, q_dim, act, cutoff_lower, cutoff_upper, group)
            for _ in range(num_layers)
        ])
        self.charge_predicts = nn.ModuleList(
            [ChargePredict(hidden_channels, activation, q_dim) for _ in range(num_layers)]
        )
        self.linear = nn.Linear(3 * hidden_channels, hidden_channels)
        self.out_norm = nn.LayerNorm(3 * hidden_channels)
        self.act = act()
        #: how many charge channels follow the features (0 without ``output_charges``)
        self.charge_channels = (num_layers + 1) * self.q_dim if self.output_charges else 0

    def features_batch(
        self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor, batch: Tensor,
        num_structures: int,
    ) -> Tuple[Tensor, Tensor]:
        """Features [N, F (+ charge channels)] and no vector features (an empty tensor)."""
        n = z.shape[0]
        if not self.total_charge:
            q = torch.zeros_like(q)
        edge_index, edge_vec, edge_len, radial_len, pair = pair_graph(edge_index, edge_vec, edge_len, n)
        is_loop = torch.arange(edge_len.shape[0], device=z.device) >= edge_len.shape[0] - n
        unit_vec = -edge_vec / edge_len.masked_fill(is_loop, 1.0).unsqueeze(1)  # upstream: r_i - r_j
        rbf = self.distance_expansion(radial_len)
        X = self.tensor_embedding(z, edge_index, unit_vec, radial_len, rbf, pair)
        charges = self.charge_predict_0(X, batch, q, num_structures)
        channels = [charges]
        for layer, predict in zip(self.layers, self.charge_predicts):
            X = layer(X, charges, edge_index, radial_len, rbf, pair)
            charges = predict(X, batch, q, num_structures)
            channels.append(charges)
        I, A, S = decompose(X)
        x = self.act(self.linear(self.out_norm(torch.cat((3 * I**2, norm2(A), norm2(S)), dim=-1))))
        if self.output_charges:
            x = torch.cat([x] + channels, dim=-1)
        return x, edge_vec.new_zeros((0,))
