"""Physics of the calculator: finite differences and invariances, via nnpcalc.testing."""

import numpy as np
import pytest

from nnpcalc import NNPCalculator, testing

STRUCTURES = testing.reference_structures()
PERIODIC = [name for name, atoms in STRUCTURES.items() if atoms.pbc.any()]
FULLY_PERIODIC = [name for name, atoms in STRUCTURES.items() if atoms.pbc.all()]
TOL64 = testing.TOLERANCES["float64"]


@pytest.fixture(scope="module")
def calc64(model_file):
    return NNPCalculator(model_file, dtype="float64")


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_forces_are_minus_energy_gradient(calc64, name):
    check = testing.check_forces(calc64, STRUCTURES[name], tolerance=1e-6)
    assert check.passed, check


@pytest.mark.parametrize("name", PERIODIC)
def test_stress_is_strain_derivative(calc64, name):
    check = testing.check_stress(calc64, STRUCTURES[name], tolerance=1e-6)
    assert check.passed, check


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_rotation_invariance(calc64, name):
    check = testing.check_rotation(calc64, STRUCTURES[name], TOL64)
    assert check.passed, check


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_translation_invariance(calc64, name):
    check = testing.check_translation(calc64, STRUCTURES[name], TOL64)
    assert check.passed, check


@pytest.mark.parametrize("name", PERIODIC)
def test_lattice_image_invariance(calc64, name):
    check = testing.check_lattice_image(calc64, STRUCTURES[name], TOL64)
    assert check.passed, check


@pytest.mark.parametrize("name", FULLY_PERIODIC)
def test_supercell_is_extensive(calc64, name):
    check = testing.check_supercell(calc64, STRUCTURES[name], TOL64)
    assert check.passed, check


@pytest.mark.parametrize("total", [0.0, 1.0, -2.0])
def test_charges_sum_to_total_charge(calc64, total):
    check = testing.check_charge_sum(calc64, STRUCTURES["ethanol"], 1e-10, total)
    assert check.passed, check


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_float32_agrees_with_float64(model_file, calc64, name):
    atoms = STRUCTURES[name]
    a, b = atoms.copy(), atoms.copy()
    a.calc, b.calc = NNPCalculator(model_file, dtype="float32"), calc64
    tol = testing.TOLERANCES["float32"]
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=tol["energy"] * len(atoms))
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=tol["forces"])
    if atoms.pbc.any():
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=tol["stress"])


def test_dipole_is_sum_of_charge_times_position(calc64):
    atoms = STRUCTURES["ethanol"].copy()
    atoms.calc = calc64
    np.testing.assert_allclose(atoms.get_dipole_moment(), atoms.get_charges() @ atoms.positions, atol=1e-12)


@pytest.mark.parametrize("backbone", ["tensornet", "et", "graph-network"])
@pytest.mark.parametrize("name", ["al-skewed", "ethanol", "cu-1atom"])
def test_every_backbone_is_conservative_and_invariant(model_factory, tmp_path, backbone, name):
    path = model_factory(tmp_path / f"{backbone}.pt", backbone=backbone, seed=3)[0]
    calc = NNPCalculator(path, dtype="float64")
    atoms = STRUCTURES[name]
    for check in (testing.check_forces(calc, atoms, 1e-6), testing.check_rotation(calc, atoms, TOL64)):
        assert check.passed, check
    if atoms.pbc.all():
        check = testing.check_supercell(calc, atoms, TOL64)
        assert check.passed, check
