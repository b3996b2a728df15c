"""The per-receiver slot layout of a full neighbour list, for compiled programs on several threads.

A full list of directed pairs ``(i, j, shift)`` (receiver ``i``, sender ``j``) is laid out as
``K`` slots per atom: atom ``i``'s self-loop in slot 0, then its pairs, then padding (``K`` = the
most any atom has), stored slot-major ``[K, N]``. In this layout every sum over an atom's
neighbours is a reduction over ``K`` (``[K, N, ...].sum(0)``), and because the list is symmetric, every gather from senders has a
backward that is a gather too: atom ``j``'s gradient is the sum over the *reverse* slots of its own
row (the reverse of ``i → j + s`` is ``j → i − s``). A program traced this way holds no scatter
(``index_add``), so AOTInductor can run all its kernels on several threads; with the edge list,
its scatters need atomic adds (a compare-and-swap loop per vector lane on x86), which made a
2-thread program slower than a 1-thread one (docs/benchmarks.md, "What stands in the way").

Radial networks depend on the distance only, so they run once per unordered pair (``P`` of them)
and are spread to the pair's two slots, as ``nn.tensornet.pair_graph`` does for edge lists.

:func:`slot_graph` builds the layout on the host (numpy, O(E log E)) from what the runtime already
has; :class:`Gather` is the traced gather with a gather backward; :class:`SlotOps` rewrites the
network code's gathers and scatters into them while ``nnpcalc.exported`` traces a model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class SlotGraph(NamedTuple):
    """One structure's neighbour list in slots (all int64 except ``shifts``), slot-major: entry
    ``[k, i]`` is slot ``k`` of atom ``i``, flat index ``k * N + i``.

    ``neighbors`` [K,N]: the sender of each slot (the atom itself for its self-loop and padding);
    ``shifts`` [K,N,3]: lattice shifts (0 for self-loops and padding), in the positions' dtype;
    ``reverse`` [K,N]: the flat index of each pair slot's reverse slot, the self-loop's own index,
    ``N*K`` for padding; ``pair`` [K,N]: the slot's unordered pair in ``[0, P)``, ``P + i`` for atom
    ``i``'s self-loop, ``P + N`` for padding; ``pair_slots`` [2,P]: each pair's two slots (flat);
    ``first`` [K,N]: the pair of the slot listed first in ``pair_slots``, ``P`` elsewhere.
    """

    neighbors: Tensor
    shifts: Tensor
    reverse: Tensor
    pair: Tensor
    pair_slots: Tensor
    first: Tensor


def slot_graph(edge_index: Tensor, shifts: Tensor, num_atoms: int) -> SlotGraph:
    """The slot layout of a full (symmetric) list ``edge_index`` [2,E] (receiver, sender) with
    integer lattice ``shifts`` [E,3]; ``ValueError`` when a pair's reverse is missing."""
    i, j = edge_index.cpu().numpy()
    lattice = np.rint(shifts.detach().cpu().numpy()).astype(np.int64)
    n, count = int(num_atoms), i.shape[0]
    forward, partner = _reverse_pairs(i, j, lattice, n)
    degree = np.bincount(i, minlength=n) + 1  # + the self-loop
    width = int(degree.max()) if n else 1
    start = np.concatenate([[0], np.cumsum(degree - 1)[:-1]])
    receivers = i[forward]
    slot = np.empty(count, dtype=np.int64)  # flat slot of each directed pair
    slot[forward] = receivers * width + 1 + np.arange(count) - start[receivers]
    total = n * width
    atoms = np.arange(n)
    neighbors = np.repeat(atoms[:, None], width, axis=1).reshape(-1)
    neighbors[slot] = j
    slot_shifts = np.zeros((total, 3), dtype=np.float64)
    slot_shifts[slot] = lattice
    reverse = np.full(total, total, dtype=np.int64)
    reverse[atoms * width] = atoms * width
    reverse[slot] = slot[partner]
    first = np.flatnonzero(np.arange(count) < partner)  # one direction of each pair
    num_pairs = first.shape[0]
    pair_id = np.empty(count, dtype=np.int64)
    pair_id[first] = np.arange(num_pairs)
    pair_id[partner[first]] = np.arange(num_pairs)
    pair = np.full(total, num_pairs + n, dtype=np.int64)
    pair[atoms * width] = num_pairs + atoms
    pair[slot] = pair_id
    listed = np.full(total, num_pairs, dtype=np.int64)
    listed[slot[first]] = np.arange(num_pairs)
    # slot-major ("k-major") order, flat slot k * N + i: per-slot index loads then step by N along a
    # row's slots, so Inductor vectorises its sums over channels, not over slots (which it gathers)
    def major(values, is_slot=False):
        grid = values.reshape((n, width) + values.shape[1:]).swapaxes(0, 1)
        if is_slot:
            grid = np.where(grid < total, (grid % width) * n + grid // width, total)
        return np.ascontiguousarray(grid)

    as_long = lambda a: torch.from_numpy(a).to(edge_index.device)  # noqa: E731
    pair_slots = np.stack([slot[first], slot[partner[first]]], axis=0)
    pair_slots = np.where(pair_slots < total, (pair_slots % width) * n + pair_slots // width, total)
    return SlotGraph(
        as_long(major(neighbors)),
        torch.from_numpy(major(slot_shifts)).to(device=shifts.device, dtype=shifts.dtype),
        as_long(major(reverse, is_slot=True)),
        as_long(major(pair)),
        as_long(np.ascontiguousarray(pair_slots.reshape(2, num_pairs))),
        as_long(major(listed)),
    )


def _reverse_pairs(i: np.ndarray, j: np.ndarray, lattice: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the pairs' order by (i, j, s), each directed pair's reverse j → i − s); ``ValueError`` if one
    is missing. Both sorts use one int64 key per pair (shift components in [-m, m]); equal ranks in
    the two orders are reverses."""
    count = i.shape[0]
    reach = int(np.abs(lattice).max()) if count else 0
    base = 2 * reach + 1
    code = ((lattice[:, 0] + reach) * base + lattice[:, 1] + reach) * base + lattice[:, 2] + reach
    forward = np.argsort((i * n + j) * base**3 + code, kind="stable")
    backward = np.argsort((j * n + i) * base**3 + (base**3 - 1 - code), kind="stable")
    partner = np.empty(count, dtype=np.int64)
    partner[forward] = backward
    if count and not ((i[partner] == j).all() and (j[partner] == i).all() and (lattice[partner] == -lattice).all()):
        raise ValueError("slot layout: the neighbour list is not symmetric (a full list is needed)")
    return forward, partner


class Gather(torch.autograd.Function):
    """``x.index_select(0, index)`` whose backward is a gather: column ``r`` of ``inverse`` [M, len(x)]
    lists the positions of ``index`` that read row ``r`` of ``x``, padded with ``len(index)``."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse,) = ctx.saved_tensors
        padded = torch.cat([grad, grad.new_zeros((1,) + grad.shape[1:])])
        rows = padded.index_select(0, inverse.reshape(-1)).view(inverse.shape + grad.shape[1:])
        return rows.sum(0), None, None


class SlotOps(torch.overrides.TorchFunctionMode):
    """While tracing one structure in slots: the network code's gathers and scatters over the
    graph, rewritten into reductions and :class:`Gather` s (no ``index_add`` left).

    The network code indexes with tensors it was handed; this mode recognises them by identity:
    ``receivers``/``senders`` (what ``edge_index[0]``/``edge_index[1]`` return), ``pair`` (slot →
    radial pair) and ``batch`` (atom → structure, all zeros). ``index_select`` by receivers is a
    broadcast, by senders or pair a :class:`Gather`; ``index_add`` by receivers is a sum over the
    slots, by batch a sum over atoms; ``x[batch]`` of a one-row ``x`` is a broadcast.
    """

    def __init__(self, edge_index: Tensor, receivers: Tensor, senders: Tensor, pair: Tensor,
                 batch: Tensor, reverse: Tensor, pair_slots: Tensor, width: int):
        super().__init__()
        self.edge_index, self.receivers, self.senders, self.pair, self.batch = edge_index, receivers, senders, pair, batch
        self.reverse, self.pair_slots, self.width = reverse, pair_slots, width

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.index_select, torch.index_select) and len(args) == 3 and not kwargs and args[1] == 0:
            x, index = args[0], args[2]
            if index is self.senders:
                return Gather.apply(x, index, self.reverse)
            if index is self.pair:
                return Gather.apply(x, index, self.pair_slots)
            if index is self.receivers:
                return self._spread(x)
        if func is torch.Tensor.index_add and len(args) == 4 and not kwargs and args[1] == 0:
            out, index, source = args[0], args[2], args[3]
            if index is self.receivers:
                return out + source.view((self.width, out.shape[0]) + source.shape[1:]).sum(0)
            if index is self.batch and out.shape[0] == 1:
                return out + source.sum(0, keepdim=True)
        if func is torch.Tensor.__getitem__ and len(args) == 2:
            x, key = args
            if x is self.edge_index and isinstance(key, int):
                return (self.receivers, self.senders)[key]
            if key is self.batch and x.dim() >= 1 and x.shape[0] == 1:
                return x.expand((key.shape[0],) + x.shape[1:])
            if key is self.senders:
                return Gather.apply(x, key, self.reverse)
            if key is self.receivers:
                return self._spread(x)
        return func(*args, **kwargs)

    def _spread(self, x: Tensor) -> Tensor:
        """Each atom's row repeated over its ``K`` slots: [N, ...] → [K*N, ...]."""
        return x.unsqueeze(0).expand((self.width,) + x.shape).reshape((-1,) + x.shape[1:])


class SlotMessages(torch.autograd.Function):
    """``nn.tensornet.pair_messages`` in slots: ``msg_i = Σ_k W[pair(k,i)] ⊙ X[neighbor(k,i)]`` with
    ``W`` [R,3,F] once per pair (parts I, A, S over the 1 + 3 + 5 components of ``X`` [N,9,F]).

    Its backward is explicit, so no per-slot gradient is ever written out: the weights are the same
    in both directions of a pair, so the gradient to ``X`` is this same message pass of the incoming
    gradient ``G``, and a pair (i, j)'s weight gradient is ``G_i ⊙ X_j + G_j ⊙ X_i`` summed over each
    part's components (zero for the self-loop and padding rows, whose lengths are constants).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, features: Tensor, senders: Tensor, pair: Tensor, pair_atoms: Tensor,
                width: int) -> Tensor:
        ctx.save_for_backward(weight, features, senders, pair, pair_atoms)
        ctx.width = width
        return _messages(weight, features, senders, pair, width)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, features, senders, pair, pair_atoms = ctx.saved_tensors
        grad_features = _messages(weight, grad, senders, pair, ctx.width)
        i, j = pair_atoms[0], pair_atoms[1]
        products = grad.index_select(0, i) * features.index_select(0, j) + grad.index_select(0, j) * features.index_select(0, i)
        parts = torch.stack([products[:, 0], products[:, 1:4].sum(1), products[:, 4:9].sum(1)], dim=1)
        rest = parts.new_zeros((weight.shape[0] - parts.shape[0],) + parts.shape[1:])
        return torch.cat([parts, rest]), grad_features, None, None, None, None


def _messages(weight: Tensor, features: Tensor, senders: Tensor, pair: Tensor, width: int) -> Tensor:
    n, out = features.shape[0], []
    for w, x in zip(weight.split(1, dim=1), features.split([1, 3, 5], dim=1)):  # each part on its own, as pair_sum
        messages = w.index_select(0, pair) * x.contiguous().index_select(0, senders)
        out.append(messages.view((width, n) + messages.shape[1:]).sum(0))
    return torch.cat(out, dim=1)

