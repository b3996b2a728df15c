"""Graph Network (SchNet-like continuous-filter convolutions) in pure torch.

A port of torchmd-net 3.1's ``TorchMD_GN`` (Majewski et al., Nat. Commun. 2023) with
identical parameter names, so the same state dict (minus upstream's neighbour-list buffer
``distance.box``) gives the same features. The graph has no self-loops, as upstream's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbone import EmbeddedBackbone
from .graph_ops import drop_short_pairs, scatter_sum
from .radial import ACTIVATIONS, DEFAULT_CUTOFF, CosineCutoff, check_choice, choose


AGGREGATIONS = ("add", "mean", "max")


def aggregate(msg: Tensor, index: Tensor, size: int, aggr: str) -> Tensor:
    """Reduce edge messages onto atoms like upstream's ``scatter``.

    Upstream reduces into a zero tensor *including* it, so ``mean`` divides by degree + 1
    and ``max`` is never below 0; both quirks are kept.
    """
    if aggr == "add":
        return scatter_sum(msg, index, size)
    if aggr == "mean":
        degree = scatter_sum(torch.ones_like(msg[:, :1]), index, size)
        return scatter_sum(msg, index, size) / (degree + 1)
    out = torch.zeros([size, msg.shape[1]], dtype=msg.dtype, device=msg.device)
    return out.scatter_reduce(0, index.unsqueeze(1).expand_as(msg), msg, "amax")


class CFConv(nn.Module):
    """Continuous-filter convolution: x_i ← lin2(aggr_j W(r_ij) · lin1(x)_j)."""

    def __init__(
        self, in_channels, out_channels, num_filters, net, cutoff_lower, cutoff_upper, aggr="add"
    ):
        super().__init__()
        self.lin1 = nn.Linear(in_channels, num_filters, bias=False)
        self.lin2 = nn.Linear(num_filters, out_channels)
        self.net = net
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        self.aggr = aggr

    def forward(self, x: Tensor, edge_index: Tensor, edge_len: Tensor, rbf: Tensor) -> Tensor:
        weight = self.net(rbf) * self.cutoff(edge_len).unsqueeze(1)
        msg = weight * self.lin1(x).index_select(0, edge_index[1])
        return self.lin2(aggregate(msg, edge_index[0], x.shape[0], self.aggr))


class InteractionBlock(nn.Module):
    """CFConv, activation, linear. ``mlp`` is the filter network, shared as ``conv.net``."""

    def __init__(
        self, hidden_channels, num_rbf, num_filters, activation, cutoff_lower, cutoff_upper, aggr="add"
    ):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(num_rbf, num_filters), activation(), nn.Linear(num_filters, num_filters)
        )
        self.conv = CFConv(
            hidden_channels, hidden_channels, num_filters, self.mlp, cutoff_lower, cutoff_upper, aggr
        )
        self.act = activation()
        self.lin = nn.Linear(hidden_channels, hidden_channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_len: Tensor, rbf: Tensor) -> Tensor:
        return self.lin(self.act(self.conv(x, edge_index, edge_len, rbf)))


class GraphNetwork(EmbeddedBackbone):
    """GN backbone: (z, graph, per-atom total charge) → per-atom features [N, F].

    The charge ``q`` is ignored, as upstream's GN ignores it.
    """

    def __init__(
        self,
        hidden_channels: int = 128,
        num_filters: int = 128,
        num_layers: int = 6,
        num_rbf: int = 50,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = True,
        activation: str = "silu",
        neighbor_embedding: bool = True,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = DEFAULT_CUTOFF,
        max_z: int = 100,
        aggr: str = "add",
    ):
        act = choose(ACTIVATIONS, activation, "activation")
        aggr = check_choice(AGGREGATIONS, aggr, "aggregation")
        super().__init__(
            hidden_channels, num_rbf, rbf_type, trainable_rbf, neighbor_embedding, cutoff_lower, cutoff_upper, max_z
        )
        self.interactions = nn.ModuleList(
            [
                InteractionBlock(
                    hidden_channels, num_rbf, num_filters, act, cutoff_lower, cutoff_upper, aggr
                )
                for _ in range(num_layers)
            ]
        )

    def forward(self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor) -> Tensor:
        edge_index, edge_vec, edge_len = drop_short_pairs(
            edge_index, edge_vec, edge_len, self.cutoff_lower
        )
        rbf = self.distance_expansion(edge_len)
        x = self.embed(z, edge_index, edge_len, rbf)
        for interaction in self.interactions:
            x = x + interaction(x, edge_index, edge_len, rbf)
        return x
