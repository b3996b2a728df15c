"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023) in pure torch.

A port of torchmd-net 3.1's ``TensorNet`` with identical parameter names, so the same
state dict gives the same features (tested against the upstream module). Upstream's fast
path calls Warp kernels registered from Python (``torch.ops.tensornet.*``) which a bare
``torch.jit.load`` cannot resolve; this module uses only torch ops, so an exported file runs
anywhere torch does. Features are Cartesian 3×3 tensors per channel, ``X`` [N, 3, 3, F],
split into scalar (I), antisymmetric (A) and symmetric traceless (S) parts.

Per-pair work dominates the cost (~44 pairs per atom at 5 Å), so everything done per pair
uses the irreducible components only: 1 (I) + 3 (A) + 5 (S) = 9 numbers per channel,
``[E, 9, F]``, instead of three full 3×3 tensors (27). Pair features are gathered with
``index_select`` (whose backward is a fast ``index_add``) and the pair-embedding linear
layer is split into two per-atom products. The 3×3 algebra stays per atom, where it is cheap.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from .graph_ops import add_self_loops, scatter_sum
from .chunking import PairBlock
from .radial import ACTIVATIONS, DEFAULT_CUTOFF, RADIAL_BASES, CosineCutoff, choose


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


def _channel_matmul(A: Tensor, B: Tensor) -> Tensor:
    """Per-channel 3×3 product of [N,3,3,F] tensors (broadcast, not a batch of tiny matmuls)."""
    return (A.unsqueeze(3) * B.unsqueeze(1)).sum(2)


def to_irreps(I: Tensor, A: Tensor, S: Tensor) -> Tensor:
    """(I [N,F], A and S [N,3,3,F]) → [N,9,F]: I; A₂₁, A₀₂, A₁₀; S₀₀, S₁₁, S₀₁, S₀₂, S₁₂."""
    parts = (I, A[:, 2, 1], A[:, 0, 2], A[:, 1, 0], S[:, 0, 0], S[:, 1, 1], S[:, 0, 1], S[:, 0, 2], S[:, 1, 2])
    return torch.stack(parts, dim=1)


def from_irreps(c: Tensor) -> Tensor:
    """[N,9,F] irreducible components → the full tensor I·1 + A + S [N,3,3,F]."""
    i, ax, ay, az = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    s00, s11, s01, s02, s12 = c[:, 4], c[:, 5], c[:, 6], c[:, 7], c[:, 8]
    rows = (
        i + s00, s01 - az, s02 + ay,
        s01 + az, i + s11, s12 - ax,
        s02 - ay, s12 + ax, i - s00 - s11,
    )
    return torch.stack(rows, dim=1).view(c.shape[0], 3, 3, c.shape[2])


def pair_sum(weight: Tensor, features: Tensor, edge_index: Tensor, num_atoms: int) -> Tensor:
    """Σ_j weight_ij ⊙ features_j per atom i → [N,9,F].

    ``weight`` [E,3,F] holds one radial weight per part (I, A, S); ``features`` are per-atom
    components [N,9,F] (gathered from j) or per-pair ones [E,9]. Each part is gathered, weighted
    and summed on its own, so no [E,9,F] copy of the weights (or its gradient) is ever made.
    """
    # split (not slicing): its backward is one concatenation, not a zero-filled gradient per part
    weights = weight.split(1, dim=1)
    parts = features.split([1, 3, 5], dim=1)  # components of I, A, S
    out: List[Tensor] = []
    for w, f in zip(weights, parts):
        if features.dim() == 2:  # per-pair components (the embedding's direction terms)
            messages = w * f.unsqueeze(-1)
        else:
            messages = w * f.contiguous().index_select(0, edge_index[1])
        out.append(scatter_sum(messages, edge_index[0], num_atoms))
    return torch.cat(out, dim=1)


def pair_messages(weight: Tensor, features: Tensor, pair: Tensor, edge_index: Tensor, num_atoms: int) -> Tensor:
    """Σ_j W(r_ij) ⊙ features_j per atom i → [N,9,F], from ``weight`` [R,3,F] once per pair (the
    same for i → j and j → i) spread to the directions by ``pair`` [E] → [0, R).

    ``nnpcalc.slots`` traces its own version of this function (``slot_messages``), whose backward
    is the same sum again: with symmetric weights, the gradient to the senders is a message pass.
    """
    return pair_sum(weight.index_select(0, pair), features, edge_index, num_atoms)


def pair_graph(
    edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, num_atoms: int
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The backbone's graph: (edge_index, edge_vec, edge_len [E], radial_len [R], pair [E]).

    A full pair list is reordered as [one direction of every pair; the reverse directions], then
    one self-loop (i, i) per atom is appended, as torchmd-net's ``loop=True`` graphs have. Radial
    weights depend on the distance only, the same for i→j and j→i, so they are computed once per
    pair (``radial_len``) and spread to both directions by ``pair`` [E] → [0, R). A list that is
    not symmetric (a half list) keeps every entry as its own radial edge.
    """
    i, j, v = edge_index[0], edge_index[1], edge_vec
    positive = (v[:, 0] > 0) | ((v[:, 0] == 0) & ((v[:, 1] > 0) | ((v[:, 1] == 0) & (v[:, 2] > 0))))
    first = torch.nonzero((i < j) | ((i == j) & positive)).squeeze(1)  # self-images: by direction
    num_pairs = first.shape[0]
    if not torch.jit.is_scripting() and isinstance(num_pairs, torch.SymInt):
        torch._check(2 * num_pairs == i.shape[0])  # traced (nnpcalc.exported): full lists only, checked per call
    if 2 * num_pairs == i.shape[0]:
        index = edge_index.index_select(1, first)
        vec = edge_vec.index_select(0, first)
        radial_len = edge_len.index_select(0, first)
        order = torch.arange(num_pairs, device=i.device)
        edge_index, edge_vec, pair = torch.cat([index, index.flip(0)], 1), torch.cat([vec, -vec]), torch.cat([order, order])
    else:
        radial_len, pair = edge_len, torch.arange(i.shape[0], device=i.device)
    loops = torch.arange(num_atoms, device=i.device) + radial_len.shape[0]
    edge_index, edge_vec, edge_len = add_self_loops(edge_index, edge_vec, radial_len.index_select(0, pair), num_atoms)
    return edge_index, edge_vec, edge_len, torch.cat([radial_len, radial_len.new_zeros((num_atoms,))]), torch.cat([pair, loops])


class TensorEmbedding(PairBlock):
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
        self, z: Tensor, edge_index: Tensor, unit_vec: Tensor, radial_len: Tensor, rbf: Tensor, pair: Tensor
    ) -> Tensor:
        n, F = z.shape[0], self.hidden_channels
        Z = self.emb(z)
        # emb2(cat(Z_i, Z_j)) = W_a Z_i + W_b Z_j + b: two per-atom products instead of a per-pair one
        w2 = self.emb2.weight
        pair_parts = torch.stack([nn.functional.linear(Z, w2[:, :F], self.emb2.bias), nn.functional.linear(Z, w2[:, F:])], 1)
        X = from_irreps(self.sum_pairs(rbf, radial_len, pair, edge_index, unit_vec, pair_parts, n))
        I, A, S = decompose(X)
        norm = self.init_norm(norm2(X))
        for linear in self.linears_scalar:
            norm = self.act(linear(norm))
        norm = norm.reshape(n, 3, F)
        I = self.linears_tensor[0](I) * norm[:, 0]
        A = self.linears_tensor[1](A) * norm[:, 1, None, None, :]
        S = self.linears_tensor[2](S) * norm[:, 2, None, None, :]
        return compose(I, A, S)

    def edge_sum(
        self, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
        atoms: Tensor, num_atoms: int,
    ) -> Tensor:
        """Σ_j over the pairs of every atom i → [N,9,F]; ``atoms`` [N,2,F]: the two halves of emb2.

        Everything made per pair lives in here, so a caller may evaluate it in chunks of pairs
        (``nnpcalc.nn.chunking``): rbf and radial_len [R] per pair, the rest [E] per direction.
        """
        F = self.hidden_channels
        Zij = atoms[:, 0].index_select(0, edge_index[0]) + atoms[:, 1].index_select(0, edge_index[1])
        proj = nn.functional.linear(
            rbf,
            torch.cat([self.distance_proj1.weight, self.distance_proj2.weight, self.distance_proj3.weight]),
            torch.cat([self.distance_proj1.bias, self.distance_proj2.bias, self.distance_proj3.bias]),
        ).view(-1, 3, F)
        radial = (self.cutoff(radial_len)[:, None, None] * proj).index_select(0, pair)
        weight = Zij.unsqueeze(1) * radial  # [E, 3, F]
        u = unit_vec
        trace = (u * u).sum(-1) / 3  # 1/3 per pair, 0 for the self-loops (u = 0)
        directions = torch.stack(
            [torch.ones_like(trace), u[:, 0], u[:, 1], u[:, 2], u[:, 0] * u[:, 0] - trace,
             u[:, 1] * u[:, 1] - trace, u[:, 0] * u[:, 1], u[:, 0] * u[:, 2], u[:, 1] * u[:, 2]],
            dim=1,
        )  # [E, 9]: 1, u, the traceless part of u uᵀ
        return pair_sum(weight, directions, edge_index, num_atoms)


class Interaction(PairBlock):
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

    def forward(
        self, X: Tensor, edge_index: Tensor, unit_vec: Tensor, radial_len: Tensor, rbf: Tensor, pair: Tensor,
        q: Tensor,
    ) -> Tensor:
        X = X / (norm2(X) + 1)[:, None, None, :]
        I, A, S = decompose(X)
        I, A, S = self.linears_tensor[0](I), self.linears_tensor[1](A), self.linears_tensor[2](S)
        Y = compose(I, A, S)
        n = X.shape[0]
        msg = from_irreps(self.sum_pairs(rbf, radial_len, pair, edge_index, unit_vec, to_irreps(I, A, S), n))
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

    def edge_sum(
        self, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
        atoms: Tensor, num_atoms: int,
    ) -> Tensor:
        """Messages Σ_j W(r_ij) ⊙ X_j → [N,9,F] from ``atoms`` [N,9,F] (``unit_vec`` is not used).

        The same contract as :meth:`TensorEmbedding.edge_sum`: all per-pair work is in here.
        """
        weight = rbf
        for linear in self.linears_scalar:
            weight = self.act(linear(weight))
        weight = weight * self.cutoff(radial_len).unsqueeze(-1)
        return pair_messages(weight.view(-1, 3, self.hidden_channels), atoms, pair, edge_index, num_atoms)


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
        cutoff_upper: float = DEFAULT_CUTOFF,
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
        edge_index, edge_vec, edge_len, radial_len, pair = pair_graph(edge_index, edge_vec, edge_len, n)
        is_loop = torch.arange(edge_len.shape[0], device=z.device) >= edge_len.shape[0] - n
        unit_vec = -edge_vec / edge_len.masked_fill(is_loop, 1.0).unsqueeze(1)  # upstream: r_i - r_j
        return self.on_pairs(z, edge_index, unit_vec, radial_len, pair, q)

    def on_pairs(self, z: Tensor, edge_index: Tensor, unit_vec: Tensor, radial_len: Tensor, pair: Tensor,
                 q: Tensor) -> Tensor:
        """Features from ``pair_graph``'s graph: directions ``unit_vec`` [E,3] (0 for self-loops),
        ``radial_len`` [R] once per pair and ``pair`` [E] → [0, R) (``nnpcalc.slots`` passes its own)."""
        if not self.total_charge:
            q = torch.zeros_like(q)
        rbf = self.distance_expansion(radial_len)
        X = self.tensor_embedding(z, edge_index, unit_vec, radial_len, rbf, pair)
        for layer in self.layers:
            X = layer(X, edge_index, unit_vec, radial_len, rbf, pair, q)
        I, A, S = decompose(X)
        x = torch.cat((3 * I**2, norm2(A), norm2(S)), dim=-1)
        return self.act(self.linear(self.out_norm(x)))

    def features(
        self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Scalar features [N, F] and no vector features (an empty tensor)."""
        return self.forward(z, edge_index, edge_vec, edge_len, q), edge_vec.new_zeros((0,))
