"""Large graphs: per-pair work in recomputed chunks gives the file's numbers (nnpcalc.nn.chunking)."""

import copy

import numpy as np
import torch
from ase.build import bulk

from nnpcalc.nn.build import Architecture, build_potential
from nnpcalc.nn.chunking import chunk_pairs
from nnpcalc.runtime import Model, stack_structures


def _copper(repeat=(2, 2, 3)):
    atoms = bulk("Cu", "fcc", a=3.6).repeat(repeat)
    atoms.rattle(0.1, seed=1)
    return atoms


def test_chunked_pairs_match_unchunked_module():
    torch.manual_seed(0)
    arch = Architecture(elements=["Cu"], backbone="tensornet", heads=["energy"],
                        backbone_kwargs={"hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 5.0})
    potential = build_potential(arch).double().eval()
    positions, numbers, cell, pbc, batch = stack_structures([_copper()], torch.float64)
    args = (positions, numbers, cell, pbc, torch.zeros(1), batch)
    reference = potential.forward_batch(*args)
    chunked = copy.deepcopy(potential)
    assert chunk_pairs(chunked, 37) == 3  # the embedding and both interactions
    out = chunked.forward_batch(*args)
    for key in ("energy", "forces", "stress"):
        assert (out[key] - reference[key]).abs().max() < 1e-12, key
    assert chunk_pairs(chunked, 10_000) == 3  # re-wrapping replaces, never stacks, the wrapper


def test_runtime_switches_to_chunks_for_large_graphs():
    atoms = _copper((3, 3, 3))
    plain = Model("metals-emt", dtype="float64", chunk_pairs=0)
    small_chunks = Model("metals-emt", dtype="float64", chunk_pairs=64)  # 8 x 64 pairs: chunked
    (a,), (b,) = plain.compute([atoms]), small_chunks.compute([atoms])
    assert small_chunks._chunked is not None and small_chunks._chunked is not small_chunks.module
    assert abs(a["energy"] - b["energy"]) < 1e-9
    assert np.abs(a["forces"] - b["forces"]).max() < 1e-9
    assert np.abs(a["stress"] - b["stress"]).max() < 1e-9
