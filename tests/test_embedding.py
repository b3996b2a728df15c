"""ML/MM electrostatic embedding (nnpcalc.openmm.embedding): one ML water among TIP3P waters."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("openmmml")

import openmm  # noqa: E402
import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402

from nnpcalc import NNPCalculator, systems  # noqa: E402
from nnpcalc.openmm.topology import water_topology  # noqa: E402
from nnpcalc.units import COULOMB_EV_ANGSTROM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM  # noqa: E402

ML = [0, 1, 2]
TIP3P = {8: -0.834, 1: 0.417}


def mixed_system(model_file, atoms, periodic):
    from openmmml import MLPotential

    from nnpcalc.openmm.plugin import NNPCalcPotentialImplFactory

    MLPotential.registerImplFactory("nnpcalc", NNPCalcPotentialImplFactory())
    topology = water_topology(atoms, periodic)
    method = dict(nonbondedMethod=app.PME, nonbondedCutoff=0.3 * unit.nanometer) if periodic else dict(
        nonbondedMethod=app.NoCutoff)
    mm = app.ForceField("tip3p.xml").createSystem(topology, rigidWater=False, **method)
    for force in mm.getForces():
        if isinstance(force, openmm.NonbondedForce) and periodic:
            force.setEwaldErrorTolerance(1e-6)
    potential = MLPotential("nnpcalc", model=str(model_file), dtype="float64")
    assert "electrostatic" in potential.getSupportedEmbeddings()
    return potential.createMixedSystem(topology, mm, ML, forceGroup=1, embedding="electrostatic"), mm


def context_of(system, atoms):
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    if system.usesPeriodicBoundaryConditions():
        context.setPeriodicBoxVectors(*(atoms.cell.array / NM_TO_ANGSTROM))
    context.setPositions(atoms.positions / NM_TO_ANGSTROM)
    return context


def energy_kj(context, groups=-1):
    state = context.getState(getEnergy=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def ml_part(model_file, atoms):
    """(energy eV, charges e) of the ML water from the ASE calculator."""
    water = atoms[ML]
    water.pbc = False
    water.calc = NNPCalculator(model_file, dtype="float64")
    return water.get_potential_energy(), water.get_charges()


def droplet():
    atoms = systems.water_box(2)
    atoms.rattle(0.02, seed=4)
    return atoms


def test_embedding_energy_is_the_model_plus_coulomb_with_mm_charges(model_file):
    atoms = droplet()
    system, mm = mixed_system(model_file, atoms, periodic=False)
    energy, charges = ml_part(model_file, atoms)
    mm_q = np.array([TIP3P[z] for z in atoms.numbers])
    r = np.linalg.norm(atoms.positions[:3, None] - atoms.positions[None, 3:], axis=-1)
    coupling = COULOMB_EV_ANGSTROM * (charges[:, None] * mm_q[None, 3:] / r).sum()
    context = context_of(system, atoms)
    assert energy_kj(context, {1}) == pytest.approx((energy + coupling) * EV_TO_KJ_PER_MOL, rel=1e-9)
    # the rest: the MM waters alone, plus O(ML)–O(MM) Lennard-Jones (TIP3P hydrogens have none)
    rest = atoms[3:]
    alone = app.ForceField("tip3p.xml").createSystem(water_topology(rest, False), nonbondedMethod=app.NoCutoff,
                                                     rigidWater=False)
    nonbonded = next(f for f in mm.getForces() if isinstance(f, openmm.NonbondedForce))
    _, sigma, epsilon = nonbonded.getParticleParameters(0)  # the oxygen's
    sigma, epsilon = sigma.value_in_unit(unit.angstrom), epsilon.value_in_unit(unit.kilojoule_per_mole)
    d = r[0, ::3]  # ML oxygen to every MM oxygen
    lj = (4 * epsilon * ((sigma / d) ** 12 - (sigma / d) ** 6)).sum()
    others = {g for g in range(32) if g != 1}
    assert energy_kj(context, others) == pytest.approx(energy_kj(context_of(alone, rest)) + lj, rel=1e-6, abs=1e-6)


def test_embedding_forces_include_the_charge_response(model_file):
    atoms = droplet()
    system, _ = mixed_system(model_file, atoms, periodic=False)
    context = context_of(system, atoms)
    forces = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)
    h = 1e-5  # nm
    for i, k in [(0, 0), (1, 2), (4, 1)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.positions / NM_TO_ANGSTROM
            moved[i, k] += sign * h
            context.setPositions(moved)
            energies.append(energy_kj(context))
        assert forces[i, k] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), rel=1e-5, abs=1e-3)


def test_periodic_embedding_coupling_equals_pymatgen_ewald(model_file):
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    atoms = droplet()
    system, _ = mixed_system(model_file, atoms, periodic=True)
    energy, charges = ml_part(model_file, atoms)
    q = np.array([TIP3P[z] for z in atoms.numbers])
    q[:3] = charges

    def ewald(values):
        structure = Structure(Lattice(atoms.cell.array), atoms.get_chemical_symbols(), atoms.positions,
                              coords_are_cartesian=True, site_properties={"charge": values})
        return EwaldSummation(structure, acc_factor=12.0).total_energy

    ml_only, mm_only = np.where(np.arange(len(q)) < 3, q, 0.0), np.where(np.arange(len(q)) < 3, 0.0, q)
    coupling = ewald(q) - ewald(ml_only) - ewald(mm_only)
    got = energy_kj(context_of(system, atoms), {1}) / EV_TO_KJ_PER_MOL
    assert got == pytest.approx(energy + coupling, abs=2e-5)  # Ewald tolerances 1e-6 and pymatgen's


@pytest.mark.slow
def test_embedded_water_conserves_energy_under_nve(model_file):
    atoms = droplet()
    system, _ = mixed_system(model_file, atoms, periodic=True)
    context = context_of(system, atoms)
    context.setVelocitiesToTemperature(200 * unit.kelvin, 1)
    integrator = context.getIntegrator()
    integrator.setStepSize(0.25 * unit.femtoseconds)
    totals = []
    for _ in range(40):
        integrator.step(5)
        state = context.getState(getEnergy=True)
        totals.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    drift = abs(np.polyfit(np.arange(len(totals)), totals, 1)[0]) * len(totals)
    assert drift < 0.02 * kinetic and np.ptp(totals) < 0.05 * kinetic


def test_embedding_refuses_cut_bonds_and_interpolation(model_file):
    from openmmml import MLPotential

    from nnpcalc.errors import EngineSetupError

    atoms = droplet()
    topology = water_topology(atoms, False)
    mm = app.ForceField("tip3p.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, rigidWater=False)
    mixed_system(model_file, atoms, periodic=False)  # registers the plugin
    potential = MLPotential("nnpcalc", model=str(model_file), dtype="float64")
    with pytest.raises(EngineSetupError, match="whole molecules"):
        potential.createMixedSystem(topology, mm, [0, 1], embedding="electrostatic")
    with pytest.raises(EngineSetupError, match="interpolate"):
        potential.createMixedSystem(topology, mm, ML, interpolate=True, embedding="electrostatic")
