"""Small graph helpers shared by the backbones."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


def add_self_loops(
    edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, num_atoms: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Append one zero-length edge (i, i) per atom, as torchmd-net's ``loop=True`` graphs have."""
    loop = torch.arange(num_atoms, device=edge_index.device, dtype=edge_index.dtype)
    edge_index = torch.cat([edge_index, torch.stack([loop, loop])], dim=1)
    edge_vec = torch.cat([edge_vec, edge_vec.new_zeros((num_atoms, 3))])
    edge_len = torch.cat([edge_len, edge_len.new_zeros((num_atoms,))])
    return edge_index, edge_vec, edge_len


def scatter_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Sum the rows of ``src`` into ``size`` rows by ``index``."""
    out = torch.zeros([size] + list(src.shape[1:]), dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)


def drop_short_pairs(
    edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, cutoff_lower: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """Keep pairs with ``edge_len >= cutoff_lower``, as upstream's neighbour list does."""
    if cutoff_lower <= 0.0:
        return edge_index, edge_vec, edge_len
    keep = edge_len >= cutoff_lower
    return edge_index[:, keep], edge_vec[keep], edge_len[keep]
