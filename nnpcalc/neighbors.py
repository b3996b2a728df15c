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
