"""Evaluate a backbone's per-pair work in chunks that are recomputed in the backward pass.

Memory, not time, limits how large a system one force call can take: autograd keeps every
per-pair activation (``[E, 9, F]`` gathered features, radial-network layers) until the
backward pass, ~1 MB per atom for TensorNet 128×2 at 5 Å. :func:`chunk_pairs` wraps the
``edge_sum`` method of every block that has one (TensorNet's embedding and interactions keep
all per-pair work there) so that it runs over chunks of at most ``max_pairs`` pairs under
``torch.utils.checkpoint``: each chunk keeps only its inputs, and its activations are
recomputed, one chunk at a time, when the gradient reaches it.

This works on eager modules only (TorchScript has no checkpointing), so the runtime applies it
to the module rebuilt from the model file's weights (``nnpcalc.nn.build.rebuild``) when a
system is large; the numbers are those of the file's own module up to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def chunk_pairs(module: nn.Module, max_pairs: int) -> int:
    """Run every ``edge_sum`` in ``module`` over chunks of ``max_pairs`` pairs; returns how many."""
    wrapped = 0
    for block in module.modules():
        edge_sum = getattr(block, "edge_sum", None)
        if edge_sum is None:
            continue
        original = getattr(edge_sum, "unchunked", edge_sum)
        block.edge_sum = _chunked(original, max_pairs)
        wrapped += 1
    return wrapped


def _chunked(edge_sum, max_pairs: int):
    def chunked(rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
                atoms: Tensor, num_atoms: int) -> Tensor:
        num_radial = rbf.shape[0]
        if num_radial <= max_pairs or not torch.is_grad_enabled():
            return edge_sum(rbf, radial_len, pair, edge_index, unit_vec, atoms, num_atoms)
        # directions grouped by the pair they belong to: chunk k holds pairs [a, b) and both directions
        order = torch.argsort(pair, stable=True)
        starts = torch.arange(0, num_radial + max_pairs, max_pairs, device=pair.device).clamp(max=num_radial)
        bounds = torch.searchsorted(pair.index_select(0, order), starts).tolist()
        starts = starts.tolist()
        chunks, atom_sets = [], []
        for k in range(len(starts) - 1):
            sel = order[bounds[k] : bounds[k + 1]]
            # each chunk sees only its own atoms, so no chunk costs O(all atoms)
            local, inverse = torch.unique(edge_index.index_select(1, sel).reshape(-1), return_inverse=True)
            chunks.append((starts[k], starts[k + 1], sel, inverse.view(2, -1)))
            atom_sets.append(local)
        # one gather and one scatter for all chunks (per-chunk ones would each cost O(all atoms))
        local_atoms = atoms.index_select(0, torch.cat(atom_sets)).split([len(s) for s in atom_sets])
        parts = [
            checkpoint(
                edge_sum, rbf[a:b], radial_len[a:b], pair.index_select(0, sel) - a, local_index,
                unit_vec.index_select(0, sel), mine, mine.shape[0], use_reentrant=False,
            )
            for (a, b, sel, local_index), mine in zip(chunks, local_atoms)
        ]
        total = parts[0].new_zeros((num_atoms,) + parts[0].shape[1:])
        return total.index_add(0, torch.cat(atom_sets), torch.cat(parts))

    chunked.unchunked = edge_sum
    return chunked
