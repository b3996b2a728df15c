"""What the backbones share: width and cutoffs, the radial basis, the atom embedding, scalar-only features.

A backbone maps ``(z [N], edge_index [2, E], edge_vec [E, 3] Å, edge_len [E] Å, q [N] e)`` to
per-atom features; :class:`~nnpcalc.nn.potential.Potential` calls its ``features`` (or
``features_batch`` when it has ``uses_batch``) and ``nnpcalc.nn.build`` sizes the heads by its
``hidden_channels``. Each backbone keeps its own keyword signature: those are what model files
record (``backbone_kwargs``), and their defaults are upstream's, different per backbone.

Only plain attributes are set here, or modules in the order the backbones always registered them,
so parameter names and order (state dicts, optimizer states of training checkpoints) are unchanged.
"""

from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn

from .neighbor_embedding import NeighborEmbedding
from .radial import RADIAL_BASES, choose


def radial_basis(rbf_type: str, cutoff_lower: float, cutoff_upper: float, num_rbf: int, trainable: bool) -> nn.Module:
    """The radial basis named ``rbf_type`` (a key of ``RADIAL_BASES``): every backbone's ``distance_expansion``."""
    return choose(RADIAL_BASES, rbf_type, "radial basis")(cutoff_lower, cutoff_upper, num_rbf, trainable)


class Backbone(nn.Module):
    """Base of the backbones whose ``forward`` gives scalar features [N, F] only."""

    def __init__(self, hidden_channels: int, cutoff_lower: float, cutoff_upper: float):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.cutoff_lower = float(cutoff_lower)
        self.cutoff_upper = float(cutoff_upper)

    def features(
        self, z: Tensor, edge_index: Tensor, edge_vec: Tensor, edge_len: Tensor, q: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Scalar features [N, F] and no vector features (an empty tensor)."""
        return self.forward(z, edge_index, edge_vec, edge_len, q), edge_vec.new_zeros((0,))


class EmbeddedBackbone(Backbone):
    """torchmd-net's start of ET and GN: atoms begin as ``embedding(z)``, optionally mixed with their
    neighbours' (``NeighborEmbedding``); ``distance_expansion`` is the radial basis of the layers."""

    def __init__(
        self, hidden_channels: int, num_rbf: int, rbf_type: str, trainable_rbf: bool, neighbor_embedding: bool,
        cutoff_lower: float, cutoff_upper: float, max_z: int,
    ):
        super().__init__(hidden_channels, cutoff_lower, cutoff_upper)
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.distance_expansion = radial_basis(rbf_type, cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.neighbor_embedding = (
            NeighborEmbedding(hidden_channels, num_rbf, cutoff_lower, cutoff_upper, max_z)
            if neighbor_embedding
            else None
        )

    def embed(self, z: Tensor, edge_index: Tensor, edge_len: Tensor, rbf: Tensor) -> Tensor:
        """Initial atom features [N, F] from the graph without self-loops and its ``rbf``."""
        x = self.embedding(z)
        if self.neighbor_embedding is not None:
            x = self.neighbor_embedding(z, x, edge_index, edge_len, rbf)
        return x
