"""Equivariant Transformer (Thölke & De Fabritiis, ICLR 2022) in pure torch.

A port of torchmd-net 3.1's ``TorchMD_ET`` with identical parameter names, so the same state
dict (minus upstream's neighbour-list buffer ``distance.box``) gives the same features.
Atoms carry scalar features ``x`` [N, F] and vector features ``vec`` [N, 3, F]; each layer is
a multi-head attention over the neighbour graph plus self-loops, as upstream's ``loop=True``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .backbone import EmbeddedBackbone
from .graph_ops import add_self_loops, drop_short_pairs, scatter_sum
from .radial import ACTIVATIONS, DEFAULT_CUTOFF, CosineCutoff, check_choice, choose


DISTANCE_INFLUENCE = ("keys", "values", "both", "none")


class EquivariantMultiHeadAttention(nn.Module):
    """One ET layer: attention-weighted scalar and vector messages, then a gated update."""

    def __init__(
        self, hidden_channels, num_rbf, distance_influence, num_heads, activation,
        attn_activation, cutoff_lower, cutoff_upper, vector_cutoff=False,
    ):
        super().__init__()
        if hidden_channels % num_heads != 0:
            raise ValueError(
                f"hidden_channels ({hidden_channels}) must be divisible by num_heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.hidden_channels = hidden_channels
        self.head_dim = hidden_channels // num_heads
        self.vector_cutoff = bool(vector_cutoff)
        self.layernorm = nn.LayerNorm(hidden_channels)
        self.act = activation()
        self.attn_activation = attn_activation()
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.q_proj = nn.Linear(hidden_channels, hidden_channels)
        self.k_proj = nn.Linear(hidden_channels, hidden_channels)
        self.v_proj = nn.Linear(hidden_channels, hidden_channels * 3)
        self.o_proj = nn.Linear(hidden_channels, hidden_channels * 3)
        self.vec_proj = nn.Linear(hidden_channels, hidden_channels * 3, bias=False)
        keys = distance_influence in ("keys", "both")
        values = distance_influence in ("values", "both")
        self.dk_proj = nn.Linear(num_rbf, hidden_channels) if keys else None
        self.dv_proj = nn.Linear(num_rbf, hidden_channels * 3) if values else None

    def _distance_weights(self, rbf: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        dk: Optional[Tensor] = None
        dv: Optional[Tensor] = None
        if self.dk_proj is not None:
            dk = self.act(self.dk_proj(rbf)).reshape(-1, self.num_heads, self.head_dim)
        if self.dv_proj is not None:
            dv = self.act(self.dv_proj(rbf)).reshape(-1, self.num_heads, self.head_dim * 3)
        return dk, dv

    def _messages(
        self, q: Tensor, k: Tensor, v: Tensor, vec: Tensor, edge_index: Tensor,
        edge_len: Tensor, unit_vec: Tensor, rbf: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        """Sum over neighbours j of each centre i = ``edge_index[0]`` (upstream's ``propagate``)."""
        i, j, n = edge_index[0], edge_index[1], q.shape[0]
        dk, dv = self._distance_weights(rbf)
        attn = q[i] * k[j]
        if dk is not None:
            attn = attn * dk
        attn = self.attn_activation(attn.sum(dim=-1))
        cutoff = self.cutoff(edge_len).unsqueeze(1)
        v_j = v[j]
        if self.vector_cutoff:
            v_j = v_j * cutoff.unsqueeze(2)
        else:
            attn = attn * cutoff
        if dv is not None:
            v_j = v_j * dv
        x, vec1, vec2 = torch.split(v_j, self.head_dim, dim=2)
        x = x * attn.unsqueeze(2)
        vec = vec[j] * vec1.unsqueeze(1) + vec2.unsqueeze(1) * unit_vec[:, :, None, None]
        return scatter_sum(x, i, n), scatter_sum(vec, i, n)

    def forward(
        self, x: Tensor, vec: Tensor, edge_index: Tensor, edge_len: Tensor,
        rbf: Tensor, unit_vec: Tensor,
    ) -> Tuple[Tensor, Tensor]:
        n, F, H = x.shape[0], self.hidden_channels, self.num_heads
        x = self.layernorm(x)
        q = self.q_proj(x).reshape(n, H, self.head_dim)
        k = self.k_proj(x).reshape(n, H, self.head_dim)
        v = self.v_proj(x).reshape(n, H, self.head_dim * 3)
        vec1, vec2, vec3 = torch.split(self.vec_proj(vec), F, dim=-1)
        vec_dot = (vec1 * vec2).sum(dim=1)
        x, vec = self._messages(
            q, k, v, vec.reshape(n, 3, H, self.head_dim), edge_index, edge_len, unit_vec, rbf
        )
        o1, o2, o3 = torch.split(self.o_proj(x.reshape(n, F)), F, dim=1)
        dx = vec_dot * o2 + o3
        dvec = vec3 * o1.unsqueeze(1) + vec.reshape(n, 3, F)
        return dx, dvec


class EquivariantTransformer(EmbeddedBackbone):
    """ET backbone: (z, graph, per-atom total charge) → per-atom scalar features [N, F].

    The charge ``q`` is ignored, as upstream's ET ignores it.
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 6,
        num_rbf: int = 50,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = True,
        activation: str = "silu",
        attn_activation: str = "silu",
        neighbor_embedding: bool = True,
        num_heads: int = 8,
        distance_influence: str = "both",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = DEFAULT_CUTOFF,
        max_z: int = 100,
        vector_cutoff: bool = False,
    ):
        act = choose(ACTIVATIONS, activation, "activation")
        attn_act = choose(ACTIVATIONS, attn_activation, "attention activation")
        influence = check_choice(DISTANCE_INFLUENCE, distance_influence, "distance influence")
        super().__init__(
            hidden_channels, num_rbf, rbf_type, trainable_rbf, neighbor_embedding, cutoff_lower, cutoff_upper, max_z
        )
        self.attention_layers = nn.ModuleList(
            [
                EquivariantMultiHeadAttention(
                    hidden_channels, num_rbf, influence, num_heads, act, attn_act,
                    cutoff_lower, cutoff_upper, vector_cutoff,
                )
                for _ in range(num_layers)
            ]
        )
        self.out_norm = nn.LayerNorm(hidden_channels)

    def forward(self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor) -> Tensor:
        return self.features(z, edge_index, edge_vec, edge_len)[0]

    def features(
        self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor,
        q: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Scalar features [N, F] and vector features [N, 3, F] (upstream's ``x, vec``); ``q`` is ignored."""
        n = z.shape[0]
        edge_index, edge_vec, edge_len = drop_short_pairs(
            edge_index, edge_vec, edge_len, self.cutoff_lower
        )
        n_edges = edge_index.shape[1]
        edge_index, edge_vec, edge_len = add_self_loops(edge_index, edge_vec, edge_len, n)
        is_loop = torch.arange(edge_len.shape[0], device=z.device) >= n_edges
        # neighbour minus centre, as upstream's (its centre is edge_index[1]); loops stay 0
        unit_vec = edge_vec / edge_len.masked_fill(is_loop, 1.0).unsqueeze(1)
        rbf = self.distance_expansion(edge_len)
        x = self.embed(z, edge_index[:, :n_edges], edge_len[:n_edges], rbf[:n_edges])
        vec = torch.zeros(n, 3, self.hidden_channels, dtype=x.dtype, device=x.device)
        for layer in self.attention_layers:
            dx, dvec = layer(x, vec, edge_index, edge_len, rbf, unit_vec)
            x = x + dx
            vec = vec + dvec
        return self.out_norm(x), vec
