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
