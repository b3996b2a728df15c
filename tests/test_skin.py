"""The one-structure fast path of the runtime: Verlet-skin neighbour lists, per-structure constants,
the calculator's state check and the fused-atom check that reuses the call's graph.

Every reuse must give what a fresh evaluation gives: the same pairs, the same numbers (1e-12 in
float64), the same refusals."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import compare_atoms

from nnpcalc import NNPCalculator
from nnpcalc.calculator import system_changes
from nnpcalc.errors import InvalidStructureError
from nnpcalc.neighbors import SkinList, neighbor_graph
from nnpcalc.runtime import Model
from nnpcalc.testing import reference_structures
from nnpcalc.workflows import md_watch


def fresh_pairs(atoms, cutoff):
    edges, shifts = neighbor_graph(torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)[None],
                                   torch.tensor(atoms.pbc)[None], torch.zeros(len(atoms), dtype=torch.long), cutoff)
    return sorted(zip(edges[0].tolist(), edges[1].tolist(), map(tuple, shifts.long().tolist())))


def trajectory(atoms, steps=12, step=0.09, seed=0):
    """Positions drifting (no wrapping, as ASE's MD): some steps cross skin / 2, most do not."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    velocity = rng.normal(scale=step, size=atoms.positions.shape)
    for _ in range(steps):
        atoms.positions += velocity
        yield atoms


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("name", ["ethanol", "al-skewed", "mixed-cell", "al-slab", "cu-1atom"])
def test_skin_list_finds_the_fresh_pairs_at_every_step(name, backend):
    start = reference_structures()[name]
    skin = SkinList(4.0, skin=0.5, backend=backend)
    for atoms in trajectory(start):
        i, j, shifts, lengths2 = skin.graph(atoms.positions, atoms.cell.array, atoms.pbc)
        assert sorted(zip(i.tolist(), j.tolist(), map(tuple, shifts.astype(int).tolist()))) == fresh_pairs(atoms, 4.0)
        vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
        np.testing.assert_allclose(lengths2, (vectors**2).sum(1), rtol=1e-14)
    assert 1 < skin.builds < 12  # reused, and rebuilt once atoms moved more than skin / 2


def test_skin_list_rebuilds_when_the_cell_changes():
    atoms = reference_structures()["al-skewed"]
    skin = SkinList(4.0, skin=1.0)
    skin.graph(atoms.positions, atoms.cell.array, atoms.pbc)
    atoms.set_cell(atoms.cell.array * 1.02, scale_atoms=True)  # every atom moves < skin/2, the images more
    i, j, shifts, _ = skin.graph(atoms.positions, atoms.cell.array, atoms.pbc)
    assert skin.builds == 2
    assert sorted(zip(i.tolist(), j.tolist(), map(tuple, shifts.astype(int).tolist()))) == fresh_pairs(atoms, 4.0)


@pytest.mark.parametrize("name", ["ethanol", "al-skewed", "mixed-cell"])
def test_md_with_a_skin_gives_the_fresh_numbers(model_file, name):
    """Forces, energy and stress along a drifting run: skin 1 Å vs a fresh list at every call, 1e-12."""
    reused, fresh = Model(model_file, dtype="float64"), Model(model_file, dtype="float64", skin=0.0)
    for atoms in trajectory(reference_structures()[name], steps=8, step=0.05):
        a, b = reused.compute([atoms], closest=True)[0], fresh.compute([atoms], closest=True)[0]
        assert a.keys() == b.keys()
        for key in a:
            if key == "closest_pair":
                assert a[key][2] == pytest.approx(b[key][2], rel=1e-14)
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-12, err_msg=key)
    assert reused._local.skin.builds < fresh._local.skin.builds == 8


def test_one_structure_path_agrees_with_the_batched_path(model_file):
    """The fast path (one structure) against the batched path (fresh tensors, fresh graph), 1e-12."""
    model = Model(model_file, dtype="float64")
    structures = [s for s in reference_structures().values() if len(s) > 1]
    batched = model.compute(structures + structures[:1])
    for atoms, expected in zip(structures, batched):
        one = model.compute([atoms])[0]
        for key in expected:
            np.testing.assert_allclose(one[key], expected[key], rtol=0, atol=1e-12, err_msg=key)


def test_kept_constants_follow_changes_of_numbers_cell_and_charge(model_file):
    model, fresh = Model(model_file, dtype="float64"), Model(model_file, dtype="float64", skin=0.0)
    atoms = molecule("H2O")
    first = model.compute([atoms])[0]["energy"]
    atoms.numbers[0] = 7  # same positions, another element
    assert model.compute([atoms])[0]["energy"] == pytest.approx(fresh.compute([atoms])[0]["energy"], abs=1e-12)
    assert model.compute([atoms])[0]["energy"] != pytest.approx(first, abs=1e-6)
    atoms.info["charge"] = 1.0
    charged = model.compute([atoms])[0]["charges"].sum()
    assert charged == pytest.approx(1.0, abs=1e-9)
    atoms.cell, atoms.pbc = [6.0, 6.0, 6.0], True
    np.testing.assert_allclose(model.compute([atoms])[0]["stress"], fresh.compute([atoms])[0]["stress"], atol=1e-12)


def test_checks_still_run_on_every_call(model_file):
    model = Model(model_file, dtype="float64")
    atoms = molecule("H2O")
    model.compute([atoms])
    atoms.positions[1, 0] = np.nan
    with pytest.raises(InvalidStructureError, match="NaN or inf"):
        model.compute([atoms])
    atoms = molecule("H2O")
    model.compute([atoms])
    atoms.positions[2] = atoms.positions[0] + [0.05, 0.0, 0.0]  # within the skin list's reach
    with pytest.raises(InvalidStructureError, match="atoms 0 and 2 are 0.05 Å apart"):
        model.compute([atoms])
    cell = Atoms("H2", positions=[[0.02, 1, 1], [3.0, 1, 1]], cell=[6, 6, 6], pbc=True)
    model.compute([cell])
    cell.positions[1] = [5.97, 1, 1]  # closer than 0.1 Å through the boundary
    with pytest.raises(InvalidStructureError, match=r"\(a periodic image\)"):
        model.compute([cell])
    atoms = molecule("H2O")
    atoms.numbers[0] = 92  # an element the model does not know
    with pytest.raises(Exception, match="U"):
        model.compute([atoms])


def test_state_check_gives_ase_s_answer():
    rng = np.random.default_rng(0)
    base = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    base.set_initial_charges([0.1, -0.1])
    cases = []
    for edit in ("nothing", "tiny", "move", "numbers", "cell", "pbc", "nan", "charges", "drop charges", "magmoms"):
        atoms = base.copy()
        if edit == "tiny":
            atoms.positions[0, 0] += 1e-16
        elif edit == "move":
            atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        elif edit == "numbers":
            atoms.numbers[1] = 13
        elif edit == "cell":
            atoms.cell[0, 0] += 1e-9
        elif edit == "pbc":
            atoms.pbc = [True, False, True]
        elif edit == "nan":
            atoms.positions[1, 2] = np.nan
        elif edit == "charges":
            atoms.set_initial_charges([0.2, -0.2])
        elif edit == "drop charges":
            del atoms.arrays["initial_charges"]
        elif edit == "magmoms":
            atoms.set_initial_magnetic_moments([1.0, 0.0])
        cases.append(atoms)
    for atoms in cases + [None]:
        for other in cases:
            assert sorted(system_changes(atoms, other)) == sorted(compare_atoms(atoms, other))
            assert sorted(system_changes(atoms, other, ignored={"positions"})) == sorted(
                compare_atoms(atoms, other, excluded_properties={"positions"}))


def test_fused_check_reuses_the_call_and_still_stops_a_fusing_run(model_file, monkeypatch):
    calc = NNPCalculator(model_file, dtype="float64")
    atoms = molecule("H2O")
    atoms.calc = calc
    atoms.get_forces()
    assert calc.closest_pair[2] == pytest.approx(np.sort(atoms.get_all_distances()[np.triu_indices(3, 1)])[0])
    looked, search = [], md_watch.closest_fused_pair

    def spy(*args):
        looked.append(args)
        return search(*args)
    monkeypatch.setattr(md_watch, "closest_fused_pair", spy)
    assert md_watch.fused_atoms(atoms, 0.5) is None and not looked  # answered by the call's own graph
    atoms.positions[1] = atoms.positions[0] + [0.2, 0.0, 0.0]  # fuse O and H: the run must stop
    atoms.get_forces()
    reason = md_watch.fused_atoms(atoms, 0.5)
    assert reason and reason.startswith("atoms 0 (O) and 1 (H) are 0.2 Å apart") and looked
    atoms.positions[1] += [0.5, 0.0, 0.0]  # moved since the last call: not trusted, looked up
    looked.clear()
    assert md_watch.fused_atoms(atoms, 0.5) is None and looked


def test_fused_check_agrees_with_a_direct_search(model_file):
    calc = NNPCalculator(model_file, dtype="float64")
    rng = np.random.default_rng(3)
    for k in range(20):
        atoms = Atoms("CH4O", positions=rng.uniform(0, 2.5, (6, 3)), cell=[3.0, 3.2, 3.4], pbc=k % 2 == 0)
        atoms.calc = calc
        try:
            atoms.get_forces()
        except InvalidStructureError:
            continue
        for factor in (0.3, 0.5, 0.9):
            direct = md_watch.closest_fused_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, factor)
            message = md_watch.fused_atoms(atoms, factor)
            assert (message is None) == (direct is None)


def test_subnormals_are_flushed_inside_the_compiled_call_only():
    from nnpcalc.artifacts import flushed_subnormals

    tiny32, tiny64 = torch.tensor([1e-39], dtype=torch.float32), torch.tensor([1e-310], dtype=torch.float64)
    with flushed_subnormals():
        assert float(tiny32 * 1.0) == 0.0 and float(tiny64 * 1.0) == 0.0
    assert float(tiny32 * 1.0) > 0.0 and float(tiny64 * 1.0) > 0.0  # as before the block
    with flushed_subnormals(active=False):
        assert float(tiny32 * 1.0) > 0.0


def test_threads_sharing_a_model_keep_their_own_lists_and_constants(model_file):
    """Each thread keeps its own structure's constants and skin list: two threads running different
    structures through one Model get what each gets alone."""
    import threading

    model = Model(model_file, dtype="float64")
    runs = {name: list(trajectory(reference_structures()[name], steps=6, step=0.05))
            for name in ("ethanol", "mixed-cell")}
    expected = {name: [Model(model_file, dtype="float64", skin=0.0).compute([a])[0]["forces"] for a in frames]
                for name, frames in runs.items()}
    got, errors = {}, []

    def run(name):
        try:
            got[name] = [model.compute([atoms])[0]["forces"] for atoms in runs[name] for _ in range(2)][::2]
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)
    threads = [threading.Thread(target=run, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for name in runs:
        for a, b in zip(got[name], expected[name]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
