"""Neighbour-graph back-ends for the runtime: vesin (fast, compiled) or the in-file cell list.

Every model file carries its own pure-torch cell list (``nnpcalc.graph``), so the file runs
bare. The Python runtime may instead build the same graph with ``vesin-torch`` and pass it
in (``edge_index``/``shifts``); ``benchmarks/neighbors.py`` measures both, and
``tests/test_neighbors.py`` checks they find the same pairs.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

BACKENDS = ("auto", "vesin", "torch")


def _vesin():
    try:
        import vesin_torch
    except ImportError:
        return None
    return vesin_torch


def neighbor_graph(positions, cell, pbc, batch, cutoff: float, backend: str = "auto"):
    """(edge_index [2,E], shifts [E,3]) for B structures, in the convention of ``nnpcalc.graph``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown neighbour-list backend {backend!r}; choose from {', '.join(BACKENDS)}")
    vesin = _vesin() if backend in ("auto", "vesin") else None
    if vesin is None:
        if backend == "vesin":
            raise ImportError("backend 'vesin' needs vesin-torch: pip install vesin-torch")
        from .graph import neighbor_list

        return neighbor_list(positions, cell, pbc, batch, cell.shape[0], cutoff)
    return _with_vesin(vesin, positions, cell, pbc, batch, cutoff)


_calculators = threading.local()  # one vesin NeighborList per thread and cutoff, reused across calls


def _calculator(vesin, cutoff: float):
    cache = _calculators.__dict__.setdefault("by_cutoff", {})
    if cutoff not in cache:
        cache[cutoff] = vesin.NeighborList(cutoff=cutoff, full_list=True)
    return cache[cutoff]


def _with_vesin(vesin, positions, cell, pbc, batch, cutoff):
    calculator = _calculator(vesin, cutoff)
    sizes = [positions.shape[0]] if cell.shape[0] == 1 else torch.bincount(batch, minlength=cell.shape[0]).tolist()
    edges, shifts, start = [], [], 0
    for b, size in enumerate(sizes):
        points = positions[start:start + size].detach().to(torch.float64)
        box = cell[b].detach().to(torch.float64)
        periodic = pbc[b].to(torch.bool)
        box = torch.where(periodic.unsqueeze(1), box, torch.zeros_like(box))
        if size == 0 or _too_sparse_for_vesin(points, periodic, cutoff):
            from .graph import neighbor_list

            one = torch.zeros(size, dtype=torch.long, device=points.device)
            (i, j), S = neighbor_list(points, box.unsqueeze(0), periodic.unsqueeze(0), one, 1, cutoff)
        else:
            i, j, S = calculator.compute(points=points, box=box, periodic=periodic, quantities="ijS")
        edges.append(torch.stack([i, j]).to(torch.long) + start)
        shifts.append(S.to(positions.dtype))
        start += size
    return torch.cat(edges, dim=1), torch.cat(shifts)


#: vesin-torch 0.6 bins open axes by the atoms' extent: beyond ~1e5 cutoffs it dies with SIGFPE
#: (or hangs), so such sparse structures use the in-file cell list, which caps its bin count.
VESIN_MAX_EXTENT = 1_000.0
#: With a periodic axis beside open ones (slabs, wires) it degrades far sooner: 4 atoms over 300 Å
#: took 1.9 s, over 1 000 Å it hung (found by tests/test_robustness.py's random structures), while
#: the in-file list takes ~30 ms. Real slabs and wires span a few tens of Å along their open axes.
VESIN_MAX_EXTENT_MIXED = 25.0


def _too_sparse_for_vesin(points, periodic, cutoff: float) -> bool:
    """Whether the atoms span more than vesin handles well along an open axis (in cutoffs)."""
    if points.shape[0] == 0:
        return False
    if points.device.type == "cpu":  # numpy on a few atoms: ~1 µs per op where torch's cost ~10 µs
        flags = periodic.numpy()
        open_axes = ~flags
        limit = (VESIN_MAX_EXTENT_MIXED if flags.any() else VESIN_MAX_EXTENT) * cutoff
        return bool(open_axes.any()) and bool((np.ptp(points.numpy()[:, open_axes], axis=0) > limit).any())
    if bool(periodic.all()):
        return False
    limit = (VESIN_MAX_EXTENT_MIXED if bool(periodic.any()) else VESIN_MAX_EXTENT) * cutoff
    extent = points.max(dim=0).values - points.min(dim=0).values
    return bool((extent[~periodic] > limit).any())


class SkinList:
    """A Verlet neighbour list of one structure, on the host (numpy), reused across calls.

    The pairs within ``cutoff + skin`` are kept until an atom has moved more than ``skin / 2``
    since they were found, or the number of atoms, the cell or the pbc flags change; every call
    then keeps the pairs within ``cutoff`` at the current positions. No pair within the cutoff
    can be missing: two atoms that each moved less than skin/2 changed their distance by less
    than skin. ``skin = 0`` finds a fresh list at every call. Not shared between threads
    (``Model`` keeps one per thread).
    """

    def __init__(self, cutoff: float, skin: float = 1.0, backend: str = "auto"):
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.cutoff, self.skin, self.backend = float(cutoff), float(skin), backend
        self.builds = 0  # how many lists were found (for tests and benchmarks)
        self._reference = None  # (positions, cell, pbc) when the list was found
        self._pairs = None  # (i, j, shifts) within cutoff + skin

    def graph(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        """(i [E], j [E], shifts [E,3] float64, squared lengths [E]) of the pairs within the cutoff,
        in the convention of ``nnpcalc.graph`` (r_ij = r_j − r_i + shifts @ cell)."""
        if self._stale(positions, cell, pbc):
            self._build(positions, cell, pbc)
        i, j, shifts, imaged = self._pairs
        vectors = positions[j] - positions[i]
        if imaged:
            vectors += shifts @ cell
        lengths2 = np.einsum("ij,ij->i", vectors, vectors)
        keep = lengths2 < self.cutoff * self.cutoff
        if keep.all():
            return i, j, shifts, lengths2
        return i[keep], j[keep], shifts[keep], lengths2[keep]

    def _stale(self, positions, cell, pbc) -> bool:
        if self._reference is None or self.skin == 0.0:
            return True
        reference, ref_cell, ref_pbc = self._reference
        if reference.shape != positions.shape or not np.array_equal(ref_cell, cell) or not np.array_equal(ref_pbc, pbc):
            return True
        moved = positions - reference
        largest2 = float(np.einsum("ij,ij->i", moved, moved).max(initial=0.0))
        return not largest2 < (0.5 * self.skin) ** 2  # NaN positions: stale (the runtime refuses them first)

    def _build(self, positions, cell, pbc) -> None:
        edges, shifts = neighbor_graph(
            torch.from_numpy(np.ascontiguousarray(positions, dtype=np.float64)),
            torch.from_numpy(np.ascontiguousarray(cell, dtype=np.float64))[None],
            torch.from_numpy(np.asarray(pbc, dtype=bool))[None],
            torch.zeros(len(positions), dtype=torch.long), self.cutoff + self.skin, self.backend,
        )
        edges = edges.numpy()
        shifts = shifts.numpy().astype(np.float64)
        self._pairs = (edges[0].copy(), edges[1].copy(), shifts, bool(shifts.any()))
        self._reference = (np.array(positions, dtype=np.float64), np.array(cell, dtype=np.float64), np.array(pbc, dtype=bool))
        self.builds += 1
