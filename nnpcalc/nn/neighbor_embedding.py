"""Neighbour embedding of torchmd-net 3.1 (``models/utils.py``) in pure torch.

Each atom's embedding is combined with a distance-filtered sum of a second embedding of its
neighbours (eq. 3 of the Equivariant Transformer paper). Used by the ET and the Graph
Network; parameter names mirror upstream's ``NeighborEmbedding`` so its weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .graph_ops import scatter_sum
from .radial import CosineCutoff


class NeighborEmbedding(nn.Module):
    """x_i ← combine([x_i, Σ_j W(r_ij) · emb(z_j)]), summed over the graph without self-loops."""

    def __init__(
        self,
        hidden_channels: int,
        num_rbf: int,
        cutoff_lower: float,
        cutoff_upper: float,
        max_z: int = 100,
    ):
        super().__init__()
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.distance_proj = nn.Linear(num_rbf, hidden_channels)
        self.combine = nn.Linear(hidden_channels * 2, hidden_channels)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)

    def forward(
        self, z: Tensor, x: Tensor, edge_index: Tensor, edge_len: Tensor, rbf: Tensor
    ) -> Tensor:
        """``edge_index`` must hold no self-loops: ``edge_index[0]`` receives from ``[1]``."""
        weight = self.distance_proj(rbf) * self.cutoff(edge_len).unsqueeze(1)
        msg = weight * self.embedding(z).index_select(0, edge_index[1])
        neighbors = scatter_sum(msg, edge_index[0], z.shape[0])
        return self.combine(torch.cat([x, neighbors], dim=1))
