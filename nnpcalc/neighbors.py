"""Neighbour-graph back-ends for the runtime: vesin (fast, compiled) or the in-file cell list.

Every model file carries its own pure-torch cell list (``nnpcalc.graph``), so the file runs
bare. The Python runtime may instead build the same graph with ``vesin-torch`` and pass it
in (``edge_index``/``shifts``); ``benchmarks/neighbors.py`` measures both, and
``tests/test_neighbors.py`` checks they find the same pairs.
"""

from __future__ import annotations

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


def _with_vesin(vesin, positions, cell, pbc, batch, cutoff):
    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True)
    sizes = torch.bincount(batch, minlength=cell.shape[0]).tolist()
    edges, shifts, start = [], [], 0
    for b, size in enumerate(sizes):
        points = positions[start:start + size].detach().to(torch.float64)
        box = cell[b].detach().to(torch.float64)
        periodic = pbc[b].to(torch.bool)
        box = torch.where(periodic.unsqueeze(1), box, torch.zeros_like(box))
        i, j, S = calculator.compute(points=points, box=box, periodic=periodic, quantities="ijS")
        edges.append(torch.stack([i, j]).to(torch.long) + start)
        shifts.append(S.to(positions.dtype))
        start += size
    return torch.cat(edges, dim=1), torch.cat(shifts)
