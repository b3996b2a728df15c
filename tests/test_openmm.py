"""OpenMM: the same numbers as the ASE calculator from every path (PythonForce, the
TorchForce module called bare, openmm-ml), energy conservation, errors before a Context."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
import ase.io  # noqa: E402
import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402
from ase.build import molecule  # noqa: E402

from nnpcalc import NNPCalculator, modelfile, systems  # noqa: E402
from nnpcalc.errors import InvalidStructureError, ModelFileError, RunDirectoryError, UnknownElementError  # noqa: E402
from nnpcalc.openmm import create_force, create_system, from_atoms, run_openmm_md, save_torchforce_module  # noqa: E402
from nnpcalc.openmm.topology import water_topology  # noqa: E402
from nnpcalc.testing import TOLERANCES  # noqa: E402
from nnpcalc.units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM  # noqa: E402

PLATFORMS = ("Reference", "CPU")
KJ_PER_MOL_NM = unit.kilojoule_per_mole / unit.nanometer


def water_box(n=2, spacing=3.1, triclinic=False, seed=0):
    """8 waters in a 6.2 Å cell by default (cutoff 4 Å), optionally sheared."""
    atoms = systems.water_box(n, spacing, seed)
    if triclinic:  # sheared past OpenMM's reduced form, so the box gets reduced
        atoms.set_cell(atoms.cell.array + [[0, 0, 0], [4.0, 0, 0], [0.8, -4.0, 0]], scale_atoms=True)
    return atoms


def structures():
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.02, seed=4)
    rotated = water_box(triclinic=True)  # not lower-triangular: OpenMM's frame is rotated
    rotated.rotate(40, (1, 2, 3), rotate_cell=True)
    return {"water-box": water_box(), "water-box-triclinic": water_box(triclinic=True),
            "water-box-rotated": rotated, "ethanol": ethanol}


def ase_results(model_file, atoms, dtype="float64"):
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(model_file, dtype=dtype)
    return atoms.get_potential_energy(), atoms.get_forces()


def openmm_results(system, positions, platform="Reference", groups=-1):
    """(energy eV, forces eV/Å) of a System at positions, in OpenMM's frame."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_PER_MOL_NM) / (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)
    return energy, np.asarray(forces)


@pytest.mark.parametrize("name", list(structures()))
def test_python_force_matches_ase(model_file, name):
    atoms = structures()[name]
    energy, forces = ase_results(model_file, atoms)
    setup = create_system(atoms, model_file, dtype="float64", kind="python")
    assert isinstance(setup.force, openmm.PythonForce)
    assert setup.force.usesPeriodicBoundaryConditions() == atoms.pbc.all()
    tol = TOLERANCES["float64"]
    for platform in PLATFORMS:
        e, f = openmm_results(setup.system, setup.positions, platform)
        assert abs(e - energy) < tol["energy"], platform
        np.testing.assert_allclose(f @ setup.rotation, forces, atol=tol["forces"], err_msg=platform)


def test_float32_matches_ase_float32(model_file):
    atoms = water_box(triclinic=True)
    energy, forces = ase_results(model_file, atoms, "float32")
    setup = create_system(atoms, model_file, kind="python")  # float32, the default
    e, f = openmm_results(setup.system, setup.positions, "CPU")
    assert abs(e - energy) < TOLERANCES["float32"]["energy"]
    np.testing.assert_allclose(f @ setup.rotation, forces, atol=TOLERANCES["float32"]["forces"])


BARE_TORCHFORCE = """
import json, sys, torch
# what OpenMM-Torch's TorchForce does: load, eval, freeze, call with float64 [N,3] positions
# (requires_grad) and the [3,3] box in nm, outputs (energy, forces) with setOutputsForces(True)
module = torch.jit.freeze(torch.jit.load(sys.argv[1]).eval())
data = json.loads(sys.argv[2])
positions = torch.tensor(data["positions"], dtype=torch.float64).requires_grad_(True)
inputs = [positions] + ([torch.tensor(data["box"], dtype=torch.float64)] if data["box"] else [])
energy, forces = module(*inputs)
assert not any(m.split(".")[0] == "nnpcalc" for m in sys.modules), "imported nnpcalc"
print(json.dumps({"energy": energy.item(), "forces": forces.to(torch.float64).contiguous().tolist()}))
"""


def call_bare(path, positions_nm, box_nm):
    data = json.dumps({"positions": positions_nm.tolist(), "box": None if box_nm is None else box_nm.tolist()})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", BARE_TORCHFORCE, str(path), data],
                          capture_output=True, text=True, env=env, check=True)
    out = json.loads(done.stdout)
    return out["energy"] / EV_TO_KJ_PER_MOL, np.array(out["forces"]) / (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)


@pytest.mark.parametrize("selection", [None, [3, 4, 5, 9, 10, 11]], ids=["all", "ml-subset"])
def test_torchforce_module_runs_bare_in_fresh_process(model_file, tmp_path, selection):
    atoms = water_box(triclinic=True)
    topology, positions, rotation = from_atoms(atoms)
    path = save_torchforce_module(model_file, topology, tmp_path / "openmm.pt", atoms=selection, dtype="float64")
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    e, f = call_bare(path, positions.value_in_unit(unit.nanometer), box)
    subset = slice(None) if selection is None else selection
    sub_atoms = atoms[subset] if selection is not None else atoms
    energy, forces = ase_results(model_file, sub_atoms)
    tol = TOLERANCES["float64"]
    assert abs(e - energy) < tol["energy"]
    np.testing.assert_allclose((f @ rotation)[subset], forces, atol=tol["forces"])
    others = np.setdiff1d(np.arange(len(atoms)), np.arange(len(atoms))[subset])
    assert np.all(f[others] == 0.0)
    with pytest.raises(ModelFileError, match="not an nnpcalc model"):  # another forward: not a model file
        modelfile.read_metadata(path)


def test_lattice_translations_change_nothing(model_file):
    atoms = water_box(triclinic=True)
    setup = create_system(atoms, model_file, dtype="float64", kind="python")
    box = np.array(setup.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    positions = setup.positions.value_in_unit(unit.nanometer)
    moved = positions + np.array([0.13, -0.41, 0.27])  # a rigid translation
    moved[0] += box.T @ [1, -2, 1]  # and one atom by lattice vectors
    moved[5] -= box[2]
    e0, f0 = openmm_results(setup.system, positions * unit.nanometer)
    e1, f1 = openmm_results(setup.system, moved * unit.nanometer)
    assert abs(e1 - e0) < TOLERANCES["float64"]["energy"]
    np.testing.assert_allclose(f1, f0, atol=TOLERANCES["float64"]["forces"])


def test_ml_subset_sees_only_its_particles(model_file):
    """ML/MM: the force covers atoms=[...]; the other particles get nothing from it."""
    atoms = molecule("CH3CH2OH") + molecule("H2O")
    atoms.positions[-3:] += [4.0, 0.0, 0.0]
    ml = list(range(9))
    topology, positions, _ = from_atoms(atoms)
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    system.addForce(create_force(model_file, topology, atoms=ml, dtype="float64", kind="python"))
    e, f = openmm_results(system, positions)
    energy, forces = ase_results(model_file, atoms[ml])
    assert abs(e - energy) < TOLERANCES["float64"]["energy"]
    np.testing.assert_allclose(f[ml], forces, atol=TOLERANCES["float64"]["forces"])
    assert np.all(f[9:] == 0.0)


def test_nve_conserves_energy_and_writes_outputs(model_file, tmp_path):
    summary = run_openmm_md(water_box(), model_file, ensemble="nve", temperature_K=300, timestep_fs=0.5,
                            steps=200, outdir=tmp_path, log_interval=10, trajectory_interval=50, dtype="float64",
                            fused_distance_factor=0.0)  # the random-weight model lets water fuse
    log = np.loadtxt(tmp_path / "md.log")  # the ASE engine's columns (md_rundir.LOG_COLUMNS)
    step, epot, ekin, etot, econserved, volume = log[:, 0], log[:, 2], log[:, 3], log[:, 4], log[:, 5], log[:, 8]
    assert len(log) == 21 and step[-1] == 200
    drift = np.abs(etot - etot[0]).max()
    assert drift < 1e-3 and drift < 0.01 * (ekin.max() - ekin.min()), (drift, ekin)
    assert summary["max_total_energy_drift_eV"] == pytest.approx(drift, abs=1e-7)
    assert np.array_equal(econserved, etot) and np.allclose(volume, water_box().get_volume())
    frames = ase.io.read(tmp_path / "trajectory.extxyz", ":")  # ASE's frame and units, as the ASE engine
    assert len(frames) == 5 and frames[-1].get_potential_energy() == pytest.approx(epot[-1], abs=1e-7)
    energy, forces = ase_results(model_file, frames[-1])
    assert abs(energy - epot[-1]) < 1e-6 and np.abs(frames[-1].get_forces() - forces).max() < 1e-6
    assert summary["force"] == "PythonForce" or summary["force"] == "TorchForce"


def test_npt_with_xtc_trajectory(model_file, tmp_path):
    progress = []
    summary = run_openmm_md(water_box(), model_file, ensemble="npt", pressure_GPa=1e-4, steps=30, seed=1,
                            outdir=tmp_path, log_interval=10, trajectory_interval=10, trajectory="trajectory.xtc",
                            barostat_interval=5, fused_distance_factor=0.0,
                            progress=lambda done, total: progress.append((done, total)))
    assert progress == [(0, 30), (10, 30), (20, 30), (30, 30)]
    assert (tmp_path / "trajectory.xtc").stat().st_size > 0
    assert "max_total_energy_drift_eV" not in summary and np.isfinite(summary["mean_temperature_K"])


def test_md_option_errors(model_file, tmp_path):
    with pytest.raises(ValueError, match="choose one of nve, nvt-langevin"):
        run_openmm_md(water_box(), model_file, ensemble="nvt-berendsen", outdir=tmp_path)
    with pytest.raises(ValueError, match="periodic"):
        run_openmm_md(molecule("H2O"), model_file, ensemble="npt", pressure_GPa=1e-4, outdir=tmp_path)
    with pytest.raises(ValueError, match="engine openmm does not offer ensemble nvt-bussi"):
        run_openmm_md(water_box(), model_file, ensemble="nvt-bussi", outdir=tmp_path)
    run_openmm_md(molecule("H2O"), model_file, steps=2, outdir=tmp_path / "run")
    with pytest.raises(RunDirectoryError, match="already holds files"):  # as the ASE engine: --overwrite
        run_openmm_md(molecule("H2O"), model_file, steps=2, outdir=tmp_path / "run")


def test_pdb_source_and_serialization(model_file, tmp_path):
    atoms = water_box()
    topology, positions, _ = from_atoms(atoms)
    with open(tmp_path / "water.pdb", "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle)
    setup = create_system(tmp_path / "water.pdb", model_file, dtype="float64", kind="python")
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(setup.system))  # pickles the callback
    atoms.positions = setup.positions.value_in_unit(unit.nanometer) * NM_TO_ANGSTROM  # 3 decimals, as read
    energy, _ = ase_results(model_file, atoms)
    for system in (setup.system, copy):
        e, _ = openmm_results(system, setup.positions)
        assert abs(e - energy) < TOLERANCES["float64"]["energy"]


def test_openmmml_mixed_system(model_file):
    """Mechanical embedding: one ML water among TIP3P waters in a PME box."""
    pytest.importorskip("openmmml")
    from openmmml import MLPotential

    from nnpcalc.openmm.plugin import NNPCalcPotentialImplFactory

    MLPotential.registerImplFactory("nnpcalc", NNPCalcPotentialImplFactory())
    atoms = water_box(n=3)
    topology = water_topology(atoms)
    mm = app.ForceField("tip3p.xml").createSystem(topology, nonbondedMethod=app.PME,
                                                  nonbondedCutoff=0.45 * unit.nanometer, rigidWater=False)
    potential = MLPotential("nnpcalc", model=str(model_file), dtype="float64")
    mixed = potential.createMixedSystem(topology, mm, [0, 1, 2], forceGroup=1)
    e, f = openmm_results(mixed, atoms.positions / NM_TO_ANGSTROM * unit.nanometer, groups={1})
    energy, forces = ase_results(model_file, atoms[:3])
    assert abs(e - energy) < TOLERANCES["float64"]["energy"]
    np.testing.assert_allclose(f[:3], forces, atol=TOLERANCES["float64"]["forces"])
    assert np.all(f[3:] == 0.0)
    assert np.isfinite(openmm_results(mixed, atoms.positions / NM_TO_ANGSTROM * unit.nanometer)[0])


OPENMMML_DISCOVERY = """
import json, sys
import openmmml
heavy = [m for m in ("torch", "nnpcalc.runtime") if m in sys.modules]
from openmm import Context, Platform, VerletIntegrator, unit
from openmmml import MLPotential
from nnpcalc.openmm import from_atoms
from ase.io import read
atoms = read(sys.argv[2])
topology, positions, _ = from_atoms(atoms)
system = MLPotential("nnpcalc", model=sys.argv[1], dtype="float64").createSystem(topology, total_charge=0)
context = Context(system, VerletIntegrator(0.001), Platform.getPlatformByName("Reference"))
context.setPositions(positions)
energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
print(json.dumps({"heavy": heavy, "energy": energy}))
"""


def test_openmmml_discovers_the_entry_point(model_file, tmp_path):
    """A dist-info on sys.path declares the entry point, as `pip install nnpcalc[openmm]` does."""
    pytest.importorskip("openmmml")
    info = tmp_path / "site" / "nnpcalc_plugin_test-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nnpcalc-plugin-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[openmmml.potentials]\nnnpcalc = nnpcalc.openmm.plugin:NNPCalcPotentialImplFactory\n")
    atoms = water_box()
    atoms.write(tmp_path / "water.extxyz")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    done = subprocess.run([sys.executable, "-c", OPENMMML_DISCOVERY, str(model_file), str(tmp_path / "water.extxyz")],
                          capture_output=True, text=True, env=env, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["heavy"] == [], "the plugin module imported torch or the runtime at `import openmmml`"
    energy, _ = ase_results(model_file, atoms)
    assert abs(out["energy"] / EV_TO_KJ_PER_MOL - energy) < TOLERANCES["float64"]["energy"]


def test_torchforce_matches_ase(model_file):
    pytest.importorskip("openmmtorch")
    atoms = water_box(triclinic=True)
    energy, forces = ase_results(model_file, atoms)
    setup = create_system(atoms, model_file, dtype="float64", kind="torch")
    assert type(setup.force).__name__ == "TorchForce"
    for platform in PLATFORMS:
        e, f = openmm_results(setup.system, setup.positions, platform)
        assert abs(e - energy) < TOLERANCES["float64"]["energy"]
        np.testing.assert_allclose(f @ setup.rotation, forces, atol=TOLERANCES["float64"]["forces"])


# --- errors, all raised before a Context exists -------------------------------------------


def test_particles_without_elements_are_named(model_file):
    topology = app.Topology()
    residue = topology.addResidue("LIG", topology.addChain())
    topology.addAtom("C1", app.Element.getBySymbol("C"), residue)
    topology.addAtom("DUM", None, residue)
    with pytest.raises(InvalidStructureError, match=r"no element.*1 \(DUM in LIG"):
        create_force(model_file, topology)


def test_unknown_element_lists_known_ones(model_file):
    atoms = molecule("H2O")
    atoms[0].symbol = "Xe"
    with pytest.raises(UnknownElementError, match="Xe.*H, C, N, O"):
        create_force(model_file, atoms)


def test_non_periodic_model_in_periodic_system(model_file, tmp_path):
    module, metadata = modelfile.load(model_file)
    path = modelfile.save(module, tmp_path / "molecules-only.pt", {**metadata, "periodic": False})
    create_force(path, molecule("H2O"))  # fine without a box
    with pytest.raises(InvalidStructureError, match="non-periodic"):
        create_force(path, water_box())


def test_box_and_selection_errors(model_file):
    flat = water_box()
    flat.pbc = [True, True, False]
    with pytest.raises(InvalidStructureError, match="all three directions"):
        create_force(model_file, flat)
    flat.pbc = True
    flat.cell[2] = 0.0
    with pytest.raises(InvalidStructureError, match="no volume"):
        create_force(model_file, flat)
    mirrored = water_box()
    mirrored.set_cell(mirrored.cell[[1, 0, 2]])
    with pytest.raises(InvalidStructureError, match="left-handed"):
        create_force(model_file, mirrored)
    with pytest.raises(ValueError, match="0..23"):
        create_force(model_file, water_box(), atoms=[0, 24])
    with pytest.raises(ValueError, match="auto, python, torch"):
        create_force(model_file, water_box(), kind="tensorflow")


def test_torch_kind_without_openmmtorch_says_what_to_install(model_file, monkeypatch):
    from nnpcalc.openmm import forces

    monkeypatch.setattr(forces, "_openmmtorch", lambda: None)
    with pytest.raises(ImportError, match="openmm-torch"):
        create_force(model_file, molecule("H2O"), kind="torch")
    assert isinstance(create_force(model_file, molecule("H2O"), kind="auto"), openmm.PythonForce)


def test_plugin_module_imports_nothing():
    code = "import sys, nnpcalc.openmm.plugin; print([m for m in ('torch', 'openmm', 'openmmml') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_missing_openmm_names_the_extra():
    code = ("import sys; sys.modules['openmm'] = None\n"
            "import nnpcalc.openmm\n"
            "try:\n    nnpcalc.openmm.create_force\nexcept ImportError as err:\n    print(err)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'nnpcalc[openmm]'" in done.stdout


def test_water_topology_bonds_each_water_and_refuses_other_orders():
    atoms = water_box(n=2)
    topology = water_topology(atoms)
    assert topology.getNumResidues() == len(atoms) // 3 and topology.getNumBonds() == 2 * len(atoms) // 3
    assert topology.getPeriodicBoxVectors() is not None
    assert water_topology(atoms, periodic=False).getPeriodicBoxVectors() is None
    with pytest.raises(InvalidStructureError, match="O, H, H order"):
        water_topology(molecule("CH3OH"))
