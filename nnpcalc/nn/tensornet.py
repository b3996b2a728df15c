"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023) in pure torch.

A port of torchmd-net 3.1's ``TensorNet`` with identical parameter names, so the same
state dict gives the same features (tested against the upstream module). Upstream's fast
path calls Warp kernels registered from Python (``torch.ops.tensornet.*``) which a bare
``torch.jit.load`` cannot resolve; this module uses only torch ops, so an exported file runs
anywhere torch does. Features are Cartesian 3×3 tensors per channel, ``X`` [N, 3, 3, F],
split into scalar (I), antisymmetric (A) and symmetric traceless (S) parts.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from .graph_ops import add_self_loops, scatter_sum
from .radial import ACTIVATIONS, RADIAL_BASES, CosineCutoff, choose


GROUPS = {"O(3)": "O(3)", "SO(3)": "SO(3)"}


def _eye(x: Tensor) -> Tensor:
    return torch.eye(3, dtype=x.dtype, device=x.device)[None, :, :, None]


def decompose(X: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """X [N,3,3,F] → I [N,F] (mean trace), A antisymmetric, S symmetric traceless."""
    A = 0.5 * (X - X.transpose(1, 2))
    I = X.diagonal(dim1=1, dim2=2).mean(-1)
    S = X - A - I[:, None, None, :] * _eye(X)
    return I, A, S


def compose(I: Tensor, A: Tensor, S: Tensor) -> Tensor:
    return I[:, None, None, :] * _eye(A) + A + S


def norm2(X: Tensor) -> Tensor:
    """Squared Frobenius norm over the 3×3 axes: [N,3,3,F] → [N,F]."""
    return (X**2).sum((1, 2))


def skew(v: Tensor) -> Tensor:
    """Vector [N,3,F] → antisymmetric tensor [N,3,3,F]."""
    zero = torch.zeros_like(v[:, 0])
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=1).view(v.shape[0], 3, 3, v.shape[2])


def unskew(A: Tensor) -> Tensor:
    """Antisymmetric tensor [N,3,3,F] → vector [N,3,F]."""
    return torch.stack((A[:, 2, 1], A[:, 0, 2], A[:, 1, 0]), dim=1)


def symmetric_traceless(X: Tensor) -> Tensor:
    S = 0.5 * (X + X.transpose(1, 2))
    return S - S.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None, :] * _eye(X)


def _channel_matmul(A: Tensor, B: Tensor) -> Tensor:
    """Per-channel 3×3 product of [N,3,3,F] tensors."""
    return torch.matmul(A.permute(0, 3, 1, 2), B.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class TensorEmbedding(nn.Module):
    def __init__(self, hidden_channels, num_rbf, activation, cutoff_lower, cutoff_upper, max_z):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.distance_proj1 = nn.Linear(num_rbf, hidden_channels)
        self.distance_proj2 = nn.Linear(num_rbf, hidden_channels)
        self.distance_proj3 = nn.Linear(num_rbf, hidden_channels)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.emb = nn.Embedding(max_z, hidden_channels)
        self.emb2 = nn.Linear(2 * hidden_channels, hidden_channels)
        self.act = activation()
        self.linears_tensor = nn.ModuleList(
            [nn.Linear(hidden_channels, hidden_channels, bias=False) for _ in range(3)]
        )
        self.linears_scalar = nn.ModuleList(
            [
                nn.Linear(hidden_channels, 2 * hidden_channels),
                nn.Linear(2 * hidden_channels, 3 * hidden_channels),
            ]
        )
        self.init_norm = nn.LayerNorm(hidden_channels)

    def forward(
        self, z: Tensor, edge_index: Tensor, edge_len: Tensor, unit_vec: Tensor, rbf: Tensor
    ) -> Tensor:
        n, F = z.shape[0], self.hidden_channels
        Z = self.emb(z)
        Zij = self.emb2(torch.cat([Z[edge_index[0]], Z[edge_index[1]]], dim=-1))
        weight = (self.cutoff(edge_len).unsqueeze(-1) * Zij).unsqueeze(1) * torch.stack(
            [self.distance_proj1(rbf), self.distance_proj2(rbf), self.distance_proj3(rbf)], dim=1
        )  # [E, 3, F]
        outer = unit_vec.unsqueeze(2) * unit_vec.unsqueeze(1)  # [E, 3, 3]
        I = scatter_sum(weight[:, 0], edge_index[0], n)
        A = skew(scatter_sum(weight[:, 1, None, :] * unit_vec.unsqueeze(-1), edge_index[0], n))
        S = scatter_sum(weight[:, 2, None, None, :] * outer.unsqueeze(-1), edge_index[0], n)
        S = symmetric_traceless(S)
        norm = self.init_norm(norm2(compose(I, A, S)))
        for linear in self.linears_scalar:
            norm = self.act(linear(norm))
        norm = norm.reshape(n, 3, F)
        I = self.linears_tensor[0](I) * norm[:, 0]
        A = self.linears_tensor[1](A) * norm[:, 1, None, None, :]
        S = self.linears_tensor[2](S) * norm[:, 2, None, None, :]
        return compose(I, A, S)


class Interaction(nn.Module):
    def __init__(self, num_rbf, hidden_channels, activation, cutoff_lower, cutoff_upper, group):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.linears_scalar = nn.ModuleList(
            [
                nn.Linear(num_rbf, hidden_channels),
                nn.Linear(hidden_channels, 2 * hidden_channels),
                nn.Linear(2 * hidden_channels, 3 * hidden_channels),
            ]
        )
        self.linears_tensor = nn.ModuleList(
            [nn.Linear(hidden_channels, hidden_channels, bias=False) for _ in range(6)]
        )
        self.act = activation()
        self.o3 = group == "O(3)"

    def _messages(self, I: Tensor, A: Tensor, S: Tensor, weight: Tensor, edge_index: Tensor) -> Tensor:
        i, j, n = edge_index[0], edge_index[1], I.shape[0]
        Im = scatter_sum(weight[:, 0] * I[j], i, n)
        Am = scatter_sum(weight[:, 1, None, :] * unskew(A)[j], i, n)
        Sm = scatter_sum(weight[:, 2, None, None, :] * S[j], i, n)
        return compose(Im, skew(Am), Sm)

    def forward(self, X: Tensor, edge_index: Tensor, edge_len: Tensor, rbf: Tensor, q: Tensor) -> Tensor:
        weight = rbf
        for linear in self.linears_scalar:
            weight = self.act(linear(weight))
        weight = (weight * self.cutoff(edge_len).unsqueeze(-1)).reshape(-1, 3, self.hidden_channels)
        X = X / (norm2(X) + 1)[:, None, None, :]
        I, A, S = decompose(X)
        I, A, S = self.linears_tensor[0](I), self.linears_tensor[1](A), self.linears_tensor[2](S)
        Y = compose(I, A, S)
        msg = self._messages(I, A, S, weight, edge_index)
        charge = (1 + 0.1 * q)[:, None, None, None]
        if self.o3:
            C = charge * (_channel_matmul(msg, Y) + _channel_matmul(Y, msg))
        else:
            C = 2 * _channel_matmul(Y, msg)
        I, A, S = decompose(C)
        normp1 = norm2(C) + 1
        I = self.linears_tensor[3](I / normp1)
        A = self.linears_tensor[4](A / normp1[:, None, None, :])
        S = self.linears_tensor[5](S / normp1[:, None, None, :])
        dX = compose(I, A, S)
        return X + dX + charge * _channel_matmul(dX, dX)


class TensorNet(nn.Module):
    """TensorNet backbone: (z, graph, per-atom total charge) → per-atom features [N, F]."""

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 2,
        num_rbf: int = 32,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 4.5,
        max_z: int = 128,
        equivariance_invariance_group: str = "O(3)",
        total_charge: bool = True,
    ):
        super().__init__()
        # False: the total charge is not an input (torchmd-net trained with ``charge=False`` sees 0)
        self.total_charge = bool(total_charge)
        act = choose(ACTIVATIONS, activation, "activation")
        group = choose(GROUPS, equivariance_invariance_group, "equivariance group")
        self.hidden_channels = hidden_channels
        self.cutoff_upper = float(cutoff_upper)
        self.distance_expansion = choose(RADIAL_BASES, rbf_type, "radial basis")(
            cutoff_lower, cutoff_upper, num_rbf, trainable_rbf
        )
        self.tensor_embedding = TensorEmbedding(
            hidden_channels, num_rbf, act, cutoff_lower, cutoff_upper, max_z
        )
        self.layers = nn.ModuleList(
            [
                Interaction(num_rbf, hidden_channels, act, cutoff_lower, cutoff_upper, group)
                for _ in range(num_layers)
            ]
        )
        self.linear = nn.Linear(3 * hidden_channels, hidden_channels)
        self.out_norm = nn.LayerNorm(3 * hidden_channels)
        self.act = act()

    def forward(self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor) -> Tensor:
        n = z.shape[0]
        if not self.total_charge:
            q = torch.zeros_like(q)
        n_edges = edge_index.shape[1]
        edge_index, edge_vec, edge_len = add_self_loops(edge_index, edge_vec, edge_len, n)
        is_loop = torch.arange(edge_len.shape[0], device=z.device) >= n_edges
        unit_vec = -edge_vec / edge_len.masked_fill(is_loop, 1.0).unsqueeze(1)  # upstream: r_i - r_j
        rbf = self.distance_expansion(edge_len)
        X = self.tensor_embedding(z, edge_index, edge_len, unit_vec, rbf)
        for layer in self.layers:
            X = layer(X, edge_index, edge_len, rbf, q)
        I, A, S = decompose(X)
        x = torch.cat((3 * I**2, norm2(A), norm2(S)), dim=-1)
        return self.act(self.linear(self.out_norm(x)))

    def features(
        self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Scalar features [N, F] and no vector features (an empty tensor)."""
        return self.forward(z, edge_index, edge_vec, edge_len, q), edge_vec.new_zeros((0,))
