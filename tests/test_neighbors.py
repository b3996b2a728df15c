"""The runtime's neighbour back-ends find the same pairs as the in-file cell list."""

import pytest

from nnpcalc.graph import neighbor_list
from nnpcalc.neighbors import neighbor_graph
from nnpcalc.runtime import stack_structures
from nnpcalc.testing import reference_structures

pytest.importorskip("vesin_torch")


def as_set(edge_index, shifts):
    return sorted(zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shifts.long().tolist())))


def test_vesin_matches_in_file_graph_for_a_batch():
    systems = list(reference_structures().values())
    pos, _, cell, pbc, batch = stack_structures(systems)
    fast = neighbor_graph(pos, cell, pbc, batch, 4.0, backend="vesin")
    ref = neighbor_list(pos, cell, pbc, batch, len(systems), 4.0)
    assert as_set(*fast) == as_set(*ref)


def test_unknown_backend():
    with pytest.raises(ValueError, match="auto, vesin, torch"):
        neighbor_graph(None, None, None, None, 1.0, backend="magic")


def test_sparse_wire_with_a_skewed_short_period_is_found_like_ase():
    """vesin-torch 0.6 hung on this (one periodic axis, atoms ~1 000 Å apart along the open ones;
    found by the random structures of test_robustness.py): the runtime must route it elsewhere."""
    import numpy as np
    import torch
    from ase.neighborlist import primitive_neighbor_list

    cell = np.array([[-0.1707, 0.4690, 0.4223], [0.8641, -0.7701, 0.4580], [0.8548, 0.9359, -0.9706]])
    pbc = np.array([False, True, False])
    positions = np.array([[863.6, 981.2, 957.2], [148.8, 972.6, 889.9], [822.4, 480.0, 232.4]])
    box = cell * pbc[:, None]
    (i, j), _ = neighbor_graph(
        torch.tensor(positions), torch.tensor(box).unsqueeze(0), torch.tensor(pbc).unsqueeze(0),
        torch.zeros(3, dtype=torch.long), 4.0,
    )
    ref_i, ref_j = primitive_neighbor_list("ij", pbc, box, positions, 4.0)
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(ref_i.tolist(), ref_j.tolist()))
    assert len(ref_i) > 0  # the short period gives each atom images of itself
