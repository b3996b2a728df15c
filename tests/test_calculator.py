"""The ASE calculator as a user meets it."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError

from nnpcalc import NNPCalculator
from nnpcalc.errors import InvalidStructureError, ModelFileError, UnknownElementError, UnknownModelError


def test_user_story_one_atom_cell(model_file):
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = NNPCalculator(model_file, dtype="float64")
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (1, 3)
    np.testing.assert_allclose(atoms.get_forces(), 0.0, atol=1e-10)  # symmetry
    assert atoms.get_stress().shape == (6,)
    assert atoms.get_charges().sum() == pytest.approx(0.0, abs=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy())


def test_molecule_has_no_stress_but_dipole(model_file):
    atoms = molecule("H2O")
    atoms.calc = NNPCalculator(model_file)
    assert atoms.get_dipole_moment().shape == (3,)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_changing_total_charge_recomputes(model_file):
    atoms = molecule("H2O")
    atoms.calc = NNPCalculator(model_file, dtype="float64")
    neutral = atoms.get_potential_energy()
    atoms.info["charge"] = 1.0
    assert atoms.get_charges().sum() == pytest.approx(1.0, abs=1e-12)
    assert atoms.get_potential_energy() != neutral


def test_unknown_element_lists_known_ones(model_file):
    atoms = molecule("H2O")
    atoms[0].symbol = "Xe"
    atoms.calc = NNPCalculator(model_file)
    with pytest.raises(UnknownElementError, match=r"Xe.*H, C, N, O, Al, Cu"):
        atoms.get_potential_energy()


def test_nan_positions(model_file):
    atoms = molecule("H2O")
    atoms.positions[1, 0] = np.nan
    atoms.calc = NNPCalculator(model_file)
    with pytest.raises(InvalidStructureError, match=r"atom\(s\) \[1\].*NaN"):
        atoms.get_potential_energy()


def test_periodic_cell_without_volume(model_file):
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 0, 0]], cell=[[3.6, 0, 0], [7.2, 0, 0], [0, 0, 3.6]], pbc=True)
    atoms.calc = NNPCalculator(model_file)
    with pytest.raises(InvalidStructureError, match="no volume"):
        atoms.get_potential_energy()


def test_slab_without_vacuum_vector_is_fine(model_file):
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 1.0]], cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]],
                  pbc=[True, True, False])
    atoms.calc = NNPCalculator(model_file)
    assert np.isfinite(atoms.get_forces()).all()


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="neither a model file nor a shipped model"):
        NNPCalculator("no-such-model")


def test_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "x.pt"
    path.write_text("hello")
    with pytest.raises(ModelFileError):
        NNPCalculator(path)


def test_bad_dtype(model_file):
    with pytest.raises(ValueError, match="float32, float64"):
        NNPCalculator(model_file, dtype="float16")


def test_fidelity_selects_a_different_prediction(model_factory, tmp_path):
    path = model_factory(tmp_path / "multi.pt", fidelities=("gfn2", "gfn1"))[0]
    energies = []
    for fidelity in ("gfn2", "gfn1"):
        atoms = molecule("CH4")
        atoms.calc = NNPCalculator(path, dtype="float64", fidelity=fidelity)
        energies.append(atoms.get_potential_energy())
    assert energies[0] != pytest.approx(energies[1])
    with pytest.raises(ValueError, match="gfn2, gfn1"):
        NNPCalculator(path, fidelity="dft")


def test_neighbour_backends_give_the_same_numbers(model_file):
    from nnpcalc.testing import reference_structures

    for atoms in reference_structures().values():
        results = []
        for backend in ("torch", "vesin"):
            a = atoms.copy()
            a.calc = NNPCalculator(model_file, dtype="float64", neighbors=backend)
            results.append((a.get_potential_energy(), a.get_forces()))
        assert results[0][0] == pytest.approx(results[1][0], abs=1e-10)
        np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-10)


def test_calculate_batch_equals_one_by_one(model_file):
    from nnpcalc.calculator import calculate_batch
    from nnpcalc.runtime import Model
    from nnpcalc.testing import reference_structures

    model = Model(model_file, dtype="float64")
    batch = [a.copy() for a in reference_structures().values()]
    single = [a.copy() for a in batch]
    for atoms in batch + single:
        atoms.calc = NNPCalculator(model)
    calculate_batch(batch)
    for a, b in zip(batch, single):
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-10)
    mixed = [batch[0].copy(), batch[1].copy()]
    mixed[0].calc, mixed[1].calc = NNPCalculator(model), NNPCalculator(model_file)
    with pytest.raises(ValueError, match="sharing one Model"):
        calculate_batch(mixed)
