"""The neighbour graph against ASE's neighbour list: every image, every cell."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from nnpcalc import graph, modelfile

from nnpcalc.runtime import stack_structures
from nnpcalc.testing import reference_structures as structures

neighbor_list_scripted = modelfile.script(graph.neighbor_list)


def pairs(atoms, cutoff, fn=graph.neighbor_list):
    pos = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)[None]
    pbc = torch.tensor(atoms.pbc)[None]
    edge_index, shifts = fn(pos, cell, pbc, torch.zeros(len(atoms), dtype=torch.long), 1, cutoff)
    return sorted(zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shifts.long().tolist())))


def reference(atoms, cutoff):
    i, j, S = ase_neighbor_list("ijS", atoms, cutoff)
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))


def random_cells(count, seed=0):
    rng = np.random.default_rng(seed)
    while count:
        cell = rng.normal(size=(3, 3)) * 2.0 + np.eye(3) * rng.uniform(2, 8)
        n = int(rng.integers(1, 12))
        atoms = Atoms(f"H{n}", scaled_positions=rng.uniform(-0.5, 1.5, (n, 3)), cell=cell,
                      pbc=rng.integers(0, 2, 3).astype(bool))
        if abs(atoms.cell.volume) > 1.0:
            count -= 1
            yield atoms, float(rng.uniform(1.0, 6.0))


@pytest.mark.parametrize("atoms,cutoff", list(random_cells(40)))
def test_random_triclinic_cells_match_ase(atoms, cutoff):
    assert pairs(atoms, cutoff, neighbor_list_scripted) == reference(atoms, cutoff)


@pytest.mark.parametrize("name", list(structures()))
def test_structures_match_ase(name):
    atoms = structures()[name]
    assert pairs(atoms, 4.0) == reference(atoms, 4.0)


def test_one_atom_cell_sees_all_its_images():
    atoms = bulk("Cu", "fcc", a=3.6)
    found = pairs(atoms, 5.0)
    assert len(found) == len(reference(atoms, 5.0)) == 42  # 12 + 6 + 24 shells within 5 Å


def test_zero_cell_molecule_and_wire():
    wire = Atoms("H3", positions=[[0, 0, 0], [0.9, 0.1, 0], [1.7, 0, 0.2]], cell=[2.5, 0, 0], pbc=[True, False, False])
    assert pairs(wire, 3.0) == reference(wire, 3.0)


def test_batch_equals_separate_structures():
    systems = list(structures().values())
    pos, _, cell, pbc, batch = stack_structures(systems)
    edge_index, shifts = graph.neighbor_list(pos, cell, pbc, batch, len(systems), 4.0)
    offsets = np.cumsum([0] + [len(a) for a in systems])
    for k, atoms in enumerate(systems):
        mine = batch[edge_index[0]] == k
        got = sorted(zip((edge_index[0, mine] - offsets[k]).tolist(), (edge_index[1, mine] - offsets[k]).tolist(),
                         map(tuple, shifts[mine].long().tolist())))
        assert got == reference(atoms, 4.0)


def test_pair_vectors_are_differentiable():
    atoms = structures()["al-skewed"]
    pos = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell.array)[None]
    batch = torch.zeros(len(atoms), dtype=torch.long)
    edge_index, shifts = graph.neighbor_list(pos, cell, torch.ones(1, 3, dtype=torch.bool), batch, 1, 4.0)
    vec = graph.edge_vectors(pos, cell, batch, edge_index, shifts)
    assert vec.requires_grad
    assert torch.all(vec.norm(dim=1) < 4.0)
