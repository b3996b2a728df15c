"""Dispersion corrections (nnpcalc.dispersion): additive in ASE and OpenMM, refused where they
would count dispersion twice."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from nnpcalc import NNPCalculator, testing
from nnpcalc.dispersion import dispersion_calculator, with_dispersion
from nnpcalc.errors import DispersionError
from nnpcalc.units import EV_TO_KJ_PER_MOL

pytest.importorskip("dftd3")


def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.02, seed=1)
    return atoms


def separate(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.parametrize("method", ["d3bj", "d4"])
def test_dispersion_adds_to_the_model(model_file, method):
    pytest.importorskip("dftd4" if method == "d4" else "dftd3")
    atoms = ethanol()
    atoms.calc = with_dispersion(NNPCalculator(model_file, dtype="float64"), "pbe", method)
    e_model, f_model = separate(atoms, NNPCalculator(model_file, dtype="float64"))
    e_disp, f_disp = separate(atoms, dispersion_calculator("pbe", method))
    assert e_disp < -0.05  # ethanol's D3/D4 energy with PBE parameters: ~ -0.1 eV
    assert atoms.get_potential_energy() == pytest.approx(e_model + e_disp, abs=1e-10)
    assert np.allclose(atoms.get_forces(), f_model + f_disp, atol=1e-10)
    assert atoms.get_charges().sum() == pytest.approx(0.0, abs=1e-10)  # the model's charges stay


def test_corrected_forces_equal_finite_differences(model_file):
    calc = with_dispersion(NNPCalculator(model_file, dtype="float64"), "pbe")
    water = molecule("H2O")
    water.rattle(0.02, seed=3)
    assert testing.check_forces(calc, water, 1e-6).passed


@pytest.mark.slow
def test_corrected_stress_equals_finite_differences(model_file):
    from ase.build import bulk

    calc = with_dispersion(NNPCalculator(model_file, dtype="float64"), "pbe")
    cell = bulk("Al", "fcc", a=4.05) * (1, 1, 2)
    cell.rattle(0.05, seed=2)
    assert testing.check_stress(calc, cell, 1e-6).passed


def test_gfn2_model_is_refused_unless_asked():
    with pytest.raises(DispersionError, match="GFN2-xTB already contains dispersion"):
        with_dispersion(NNPCalculator("hcno-gfn2"), "pbe")
    assert with_dispersion(NNPCalculator("hcno-gfn2"), "pbe", allow_double_counting=True) is not None
    with pytest.raises(DispersionError, match="unknown dispersion method"):
        dispersion_calculator("pbe", "d2")


def test_openmm_dispersion_force_adds_the_same_energy_and_forces(model_file):
    pytest.importorskip("openmm")
    import openmm
    import openmm.unit as unit

    from nnpcalc.dispersion import add_to_openmm_system
    from nnpcalc.openmm import create_force, from_atoms

    atoms = ethanol()
    topology, positions = from_atoms(atoms)[:2]
    system = openmm.System()
    for a in atoms:
        system.addParticle(a.mass)
    system.addForce(create_force(model_file, topology, kind="python", dtype="float64"))
    add_to_openmm_system(system, topology, "pbe", force_group=1)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    state = context.getState(getEnergy=True, groups={1})
    atoms.calc = with_dispersion(NNPCalculator(model_file, dtype="float64"), "pbe")
    e_disp, _ = separate(atoms, dispersion_calculator("pbe"))
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        e_disp * EV_TO_KJ_PER_MOL, rel=1e-9)
    total = context.getState(getEnergy=True, getForces=True)
    assert total.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        atoms.get_potential_energy() * EV_TO_KJ_PER_MOL, rel=1e-6)
    forces = total.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.angstrom)
    assert np.allclose(forces, atoms.get_forces() * EV_TO_KJ_PER_MOL, atol=1e-4)
