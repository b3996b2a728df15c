"""What bad-input refusals leave working: empty and far-apart structures, stress only where a
cell has a volume, one calculator shared by threads, pickled calculators in other processes,
pymatgen's charge, openmm-ml's precision, and random inputs (hypothesis)."""

from __future__ import annotations

import multiprocessing
import pickle
import threading

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from nnpcalc import NNPCalculator
from nnpcalc.charge import total_charge
from nnpcalc.errors import NNPError
from nnpcalc.runtime import Model, stack_structures


def test_empty_structures_follow_ase_s_convention(model_file):
    model = Model(model_file, dtype="float64")
    empty_box = Atoms(cell=[4, 4, 4], pbc=True)
    water = molecule("H2O")
    out = model.compute([Atoms(), water, empty_box])
    assert out[0]["energy"] == 0.0 and out[0]["forces"].shape == (0, 3) and "stress" not in out[0]
    assert out[2]["energy"] == 0.0 and np.all(out[2]["stress"] == 0.0)
    assert out[1]["energy"] == model.compute([water])[0]["energy"]
    atoms = Atoms()
    atoms.calc = NNPCalculator(model)
    assert atoms.get_potential_energy() == 0.0 and atoms.get_forces().shape == (0, 3)


@pytest.mark.parametrize("distance", [1e4, 1e6, 1e7])
@pytest.mark.parametrize("neighbors", ["vesin", "torch"])
def test_far_apart_atoms_are_two_isolated_ones(model_file, distance, neighbors):
    """vesin 0.6 dies with SIGFPE past ~1e5 cutoffs along an open axis: nnpcalc falls back."""
    model = Model(model_file, dtype="float64", neighbors=neighbors)
    pair = Atoms("HC", positions=[[0, 0, 0], [0, 0, distance]])
    alone = sum(model.compute([Atoms(s)])[0]["energy"] for s in "HC")
    (out,) = model.compute([pair])
    assert out["energy"] == pytest.approx(alone, abs=1e-12)
    assert np.all(out["forces"] == 0.0)


def test_slab_with_a_far_atom(model_file):
    model = Model(model_file, dtype="float64")
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    far = slab + Atoms("H", positions=[[0, 0, 1e6]])
    h_layer = Atoms("H", cell=slab.cell, pbc=slab.pbc)  # the H atom sees its images in the plane
    energies = [model.compute([a])[0]["energy"] for a in (slab, h_layer)]
    assert model.compute([far])[0]["energy"] == pytest.approx(sum(energies), abs=1e-9)


def test_bare_file_gives_no_stress_without_a_volume(model_file):
    from ase.build import nanotube

    module = torch.jit.load(str(model_file)).double()
    tube = nanotube(6, 0, length=2)
    tube.numbers[:] = 6
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    structures = [molecule("H2O"), tube, cu]
    for atoms in structures[:2]:  # single structure: the key is absent
        out = module(*stack_structures([atoms])[:4][:1], torch.tensor(atoms.numbers), torch.tensor(atoms.cell.array),
                     torch.tensor(atoms.pbc), torch.tensor(0.0, dtype=torch.float64))
        assert "stress" not in out and "forces" in out
    positions, numbers, cell, pbc, batch = stack_structures(structures)
    out = module.forward_batch(positions, numbers, cell, pbc, torch.zeros(3, dtype=torch.float64), batch)
    assert torch.isnan(out["stress"][:2]).all() and torch.isfinite(out["stress"][2]).all()
    single = Model(model_file, dtype="float64").compute([cu])[0]["stress"]
    np.testing.assert_allclose(out["stress"][2].numpy(), single, atol=1e-12)


def test_overlap_check_costs_one_pass_over_the_pairs(model_file):
    """Atoms 0.3 Å apart are fine (only < 0.1 Å is refused), in the runtime and the bare file."""
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.3]])
    assert np.isfinite(Model(model_file).compute([atoms])[0]["energy"])
    module = torch.jit.load(str(model_file))
    t = torch.tensor
    out = module(t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(np.zeros((3, 3))), t([False] * 3),
                 t(0.0))
    assert torch.isfinite(out["energy"])


# ---------------------------------------------------------------------------------------------
# total charge


def test_charged_pymatgen_molecule_runs_charged(model_file):
    pytest.importorskip("pymatgen")
    from pymatgen.core import Molecule
    from pymatgen.io.ase import AseAtomsAdaptor

    from nnpcalc.workflows.io import to_atoms

    water = molecule("H2O")
    cation = Molecule(water.get_chemical_symbols(), water.positions, charge=1, spin_multiplicity=2)
    adapted = AseAtomsAdaptor.get_atoms(cation)
    assert "charge" not in adapted.info and total_charge(adapted) == 1.0
    calc = NNPCalculator(model_file, dtype="float64")
    adapted.calc = calc
    assert adapted.get_charges().sum() == pytest.approx(1.0, abs=1e-9)
    assert to_atoms(cation).info["charge"] == 1.0
    water.info["charge"] = 1.0
    water.calc = NNPCalculator(model_file, dtype="float64")
    np.testing.assert_allclose(adapted.get_charges(), water.get_charges(), atol=1e-12)


def test_charge_reader_conventions():
    atoms = molecule("H2O")
    assert total_charge(atoms) == 0.0
    atoms.info["charge"] = -1
    assert total_charge(atoms) == -1.0
    atoms.charge = -1  # both conventions, same value: fine
    assert total_charge(atoms) == -1.0


def test_phonon_supercells_get_the_charge_without_touching_info(model_file, monkeypatch):
    pytest.importorskip("phonopy")
    from nnpcalc.workflows import phonons

    seen = []
    original = Model.compute

    def spy(self, structures, total_charge=None, *args, **kwargs):
        seen.append((list(total_charge), [len(a) for a in structures], [dict(a.info) for a in structures]))
        return original(self, structures, total_charge, *args, **kwargs)

    monkeypatch.setattr(Model, "compute", spy)
    cell = bulk("Cu", "fcc", a=3.6)
    cell.info["charge"] = 0.5
    phonons.phonons(cell, model_file, supercell=(2, 2, 2), mesh=(2, 2, 2), band_points=3)
    charges, sizes, infos = seen[-1]
    assert charges == [0.5 * n for n in sizes] and all("charge" not in info for info in infos)


# ---------------------------------------------------------------------------------------------
# threads and processes


def test_one_calculator_shared_by_threads(model_file):
    calc = NNPCalculator(model_file, dtype="float64")
    structures = [molecule(name) for name in ("H2O", "CH4", "NH3", "CH3CH2OH")]
    expected = []
    for atoms in structures:
        atoms.calc = calc
        expected.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
    got, errors = {}, []

    def work(k):
        try:
            for _ in range(15):
                atoms = structures[k].copy()
                atoms.rattle(0.0)
                atoms.calc = calc
                got.setdefault(k, []).append((atoms.get_potential_energy(), atoms.get_forces().copy()))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(structures))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    # a mix-up gives another molecule's answer (eV apart); torch's threaded reductions may round
    # differently from call to call, so equal means equal to 1e-10 (float64), not bitwise
    assert sorted(got) == list(range(len(structures)))
    for k, results in got.items():
        for energy, forces in results:
            assert energy == pytest.approx(expected[k][0], abs=1e-10)
            np.testing.assert_allclose(forces, expected[k][1], rtol=0, atol=1e-10)


def test_model_and_calculator_pickle(model_file):
    calc = NNPCalculator(model_file, dtype="float64")
    atoms = molecule("H2O")
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    copy = pickle.loads(pickle.dumps(calc))
    assert copy.model.dtype == torch.float64 and copy.model.device == torch.device("cpu")
    assert copy.model.path == calc.model.path and copy.model is not calc.model
    other = molecule("H2O")
    other.calc = copy
    assert other.get_potential_energy() == energy
    model = pickle.loads(pickle.dumps(Model(model_file, dtype="float32", neighbors="torch")))
    assert model.dtype == torch.float32 and model.neighbors == "torch"


def _energy(calc_and_name):
    calc, name = calc_and_name
    atoms = molecule(name)
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.mark.slow  # two fresh interpreters import torch: ~10-30 s on 2 loaded cores
def test_calculator_in_two_processes(model_file):
    calc = NNPCalculator(model_file, dtype="float64")
    names = ["H2O", "CH4"]
    expected = [_energy((calc, name)) for name in names]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map(_energy, [(calc, name) for name in names])
    assert got == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# openmm-ml precision


def test_openmmml_precision_is_honoured(model_file):
    pytest.importorskip("openmmml")
    import openmm
    import openmm.unit as unit
    from openmmml import MLPotential

    from nnpcalc.openmm import from_atoms
    from nnpcalc.openmm.plugin import NNPCalcPotentialImplFactory
    from nnpcalc.units import EV_TO_KJ_PER_MOL

    MLPotential.registerImplFactory("nnpcalc", NNPCalcPotentialImplFactory())
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    topology, positions, _ = from_atoms(atoms)
    atoms.calc = NNPCalculator(model_file, dtype="float64")
    reference = atoms.get_potential_energy() * EV_TO_KJ_PER_MOL
    potential = MLPotential("nnpcalc", model=str(model_file), dtype="float32", kind="python")

    def energy(**args):
        system = potential.createSystem(topology, **args)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    double, single, default = energy(precision="double"), energy(precision="single"), energy()
    assert abs(double - reference) < 1e-8 * abs(reference)
    assert single == default and abs(single - reference) > abs(double - reference)


# ---------------------------------------------------------------------------------------------
# random input: a finite, FD-consistent answer or a typed error, never NaN or a crash

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

finite = st.floats(-1.0, 1.0)
charges = st.one_of(st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), 1e6]), st.floats(-3, 3))


@st.composite
def structures(draw):
    n = draw(st.integers(0, 5))
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    scale = draw(st.sampled_from([0.0, 2.5, 6.0]))  # 0: a cell without volume
    cell = scale * np.eye(3) + draw(st.lists(st.lists(finite, min_size=3, max_size=3), min_size=3, max_size=3))
    frac = draw(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=n, max_size=n))
    spread = draw(st.sampled_from([1.0, 1e3]))  # sparse molecules too
    numbers = draw(st.lists(st.sampled_from([1, 6, 8, 13, 29]), min_size=n, max_size=n))
    positions = np.asarray(frac).reshape(n, 3) @ (cell if scale else spread * np.eye(3))
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    atoms.info["charge"] = draw(charges)
    return atoms


@pytest.fixture(scope="module")
def calc64(model_file):
    return NNPCalculator(model_file, dtype="float64")


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(atoms=structures(), component=st.integers(0, 2))
def test_random_structures_give_a_finite_consistent_answer_or_a_typed_error(calc64, atoms, component):
    atoms.calc = calc64
    try:
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    except NNPError:
        return
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    if len(atoms) == 0:
        assert energy == 0.0
        return
    delta, moved = 1e-5, atoms.copy()
    moved.calc = calc64
    try:  # a displaced atom may cross the 0.1 Å overlap limit: a typed error is fine there too
        moved.positions[0, component] += delta
        up = moved.get_potential_energy()
        moved.positions[0, component] -= 2 * delta
        down = moved.get_potential_energy()
    except NNPError:
        return
    assert -(up - down) / (2 * delta) == pytest.approx(forces[0, component], abs=1e-5 + 1e-4 * abs(forces[0, component]))
