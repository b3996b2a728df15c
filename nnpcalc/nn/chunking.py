"""Evaluate a backbone's per-pair work in chunks that are recomputed in the backward pass.

Memory, not time, limits how large a system one force call can take: autograd keeps every
per-pair activation (``[E, 9, F]`` gathered features, radial-network layers) until the
backward pass, ~1 MB per atom for TensorNet 128×2 at 5 Å. A block that keeps all its per-pair
work in one method, ``edge_sum``, derives from :class:`PairBlock` and calls ``sum_pairs``; its
declared attribute ``chunk_size`` (0: off) makes ``sum_pairs`` run ``edge_sum`` over chunks of at
most ``chunk_size`` pairs under ``torch.utils.checkpoint``: each chunk keeps only its inputs,
and its activations are recomputed, one chunk at a time, when the gradient reaches it.
:func:`chunk_pairs` sets ``chunk_size`` on every such block of a module; nothing is replaced.

This works on eager modules only (TorchScript has no checkpointing: in a model file
``chunk_size`` is 0 and the chunked branch is a stub), so the runtime applies it to the module
rebuilt from the model file's weights (``nnpcalc.nn.build.rebuild``) when a system is large;
the numbers are those of the file's own module up to rounding.
"""

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class PairBlock(nn.Module):
    """A block whose per-pair work is ``edge_sum(rbf, radial_len, pair, edge_index, unit_vec,
    atoms, num_atoms) -> [N, ...]``, called through :meth:`sum_pairs`."""

    def __init__(self):
        super().__init__()
        self.chunk_size = 0  # pairs per recomputed chunk; 0: all pairs at once

    def edge_sum(self, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
                 atoms: Tensor, num_atoms: int) -> Tensor:
        raise NotImplementedError("a PairBlock defines edge_sum")

    def sum_pairs(self, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
                  atoms: Tensor, num_atoms: int) -> Tensor:
        """``edge_sum``, in chunks of ``chunk_size`` pairs when that is set and gradients are on."""
        if self.chunk_size > 0 and rbf.shape[0] > self.chunk_size and torch.is_grad_enabled():
            return self._in_chunks(rbf, radial_len, pair, edge_index, unit_vec, atoms, num_atoms)
        return self.edge_sum(rbf, radial_len, pair, edge_index, unit_vec, atoms, num_atoms)

    @torch.jit.unused
    def _in_chunks(self, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor, unit_vec: Tensor,
                   atoms: Tensor, num_atoms: int) -> Tensor:
        return in_chunks(self.edge_sum, self.chunk_size, rbf, radial_len, pair, edge_index, unit_vec, atoms,
                         num_atoms)


def chunk_pairs(module: nn.Module, max_pairs: int) -> int:
    """Set ``chunk_size = max_pairs`` on every :class:`PairBlock` in ``module``; returns how many."""
    blocks = [block for block in module.modules() if isinstance(block, PairBlock)]
    for block in blocks:
        block.chunk_size = int(max_pairs)
    return len(blocks)


def in_chunks(edge_sum, max_pairs: int, rbf: Tensor, radial_len: Tensor, pair: Tensor, edge_index: Tensor,
              unit_vec: Tensor, atoms: Tensor, num_atoms: int) -> Tensor:
    """``edge_sum`` over chunks of at most ``max_pairs`` pairs (both directions of a pair in one
    chunk), each under ``checkpoint``; the same sum as one call."""
    num_radial = rbf.shape[0]
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
