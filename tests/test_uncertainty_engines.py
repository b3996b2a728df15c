"""The ensemble head's uncertainty served by torch-sim, LAMMPS, i-PI and OpenMM: each engine's value
equals the ASE calculator's at the same geometry; OpenMM MD flags, saves and stops as the ASE engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import read, write

from nnpcalc import NNPCalculator
from nnpcalc.errors import OptionError
from nnpcalc.nn.build import Architecture, build_potential, export

TINY = {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0}
TOL = 1e-10  # float64 everywhere


@pytest.fixture(scope="module")
def ensemble_path(tmp_path_factory):
    """A random-weight model file with a 4-member ensemble head (calibrations 3 and 2)."""
    torch.manual_seed(0)
    arch = Architecture(elements=["Cu", "Al"], backbone_kwargs=TINY, head_hidden=8, fidelities=["EMT"],
                        heads=[{"kind": "energy_ensemble", "members": 4}])
    potential = build_potential(arch)
    with torch.no_grad():
        potential.heads[0].atomref.uniform_(-4.0, -3.0)
        potential.heads[0].energy_calibration.fill_(3.0)
        potential.heads[0].forces_calibration.fill_(2.0)
    return export(potential, arch, tmp_path_factory.mktemp("engines") / "ens.pt")


def cu_cell(seed=1, repeat=(1, 1, 1)):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=seed)
    return atoms


def ase_uncertainty(path, atoms):
    """(energy_uncertainty eV, forces_uncertainty [N] eV/Å) from the ASE calculator."""
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(path, dtype="float64", uncertainty=True, warn_uncertainty=0)
    atoms.get_forces()
    return atoms.calc.results["energy_uncertainty"], atoms.calc.results["forces_uncertainty"]


# -- torch-sim ---------------------------------------------------------------------------------------

def test_torchsim_outputs_carry_the_uncertainty_per_system(ensemble_path):
    ts = pytest.importorskip("torch_sim")
    from nnpcalc.torchsim import NNPModel

    structures = [cu_cell(1), cu_cell(2, (1, 1, 2))]
    state = ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64)
    out = NNPModel(ensemble_path, uncertainty=True)(state)
    assert out["energy_uncertainty"].shape == (2,) and out["forces_uncertainty"].shape == (12,)
    start = 0
    for index, atoms in enumerate(structures):
        energy_sigma, forces_sigma = ase_uncertainty(ensemble_path, atoms)
        assert out["energy_uncertainty"][index].item() == pytest.approx(energy_sigma, abs=TOL)
        np.testing.assert_allclose(out["forces_uncertainty"][start:start + len(atoms)].numpy(), forces_sigma, atol=TOL)
        start += len(atoms)
    plain = NNPModel(ensemble_path)(state)  # the energy's is free; the forces' only when asked
    assert "forces_uncertainty" not in plain
    torch.testing.assert_close(plain["energy_uncertainty"], out["energy_uncertainty"], rtol=0, atol=TOL)


def test_torchsim_refuses_uncertainty_of_a_model_without_it(model_file):
    pytest.importorskip("torch_sim")
    from nnpcalc.torchsim import NNPModel

    with pytest.raises(OptionError, match="no uncertainty outputs"):
        NNPModel(model_file, uncertainty=True)


# -- LAMMPS ------------------------------------------------------------------------------------------

def lammps_module():
    nnp_lammps = pytest.importorskip("nnpcalc.lammps")
    try:
        nnp_lammps.start_lammps().close()
    except (ImportError, OSError) as err:
        pytest.skip(f"LAMMPS cannot start here: {err}")
    return nnp_lammps


def test_lammps_serves_the_energy_uncertainty_as_f_nnp_1_and_per_atom_forces_uncertainty(ensemble_path):
    import lammps

    nnp_lammps = lammps_module()
    atoms = cu_cell(3, (2, 1, 1))
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, atoms, ["Cu"])
    potential = nnp_lammps.attach(lmp, ensemble_path, ["Cu"], uncertainty=True)
    lmp.commands_string("variable sigma equal f_nnp[1]\ncompute sig all property/atom d_forces_uncertainty\n"
                        "compute sigmax all reduce max c_sig\nthermo_style custom step pe v_sigma c_sigmax\nrun 0")
    energy_sigma, forces_sigma = ase_uncertainty(ensemble_path, atoms)
    assert lmp.extract_variable("sigma") == pytest.approx(energy_sigma, abs=TOL)
    assert potential.energy_uncertainty == pytest.approx(energy_sigma, abs=TOL)
    n = len(atoms)
    order = np.argsort(lmp.numpy.extract_atom("id")[:n])
    np.testing.assert_allclose(lmp.numpy.extract_atom("d_forces_uncertainty")[:n][order], forces_sigma, atol=TOL)
    largest = lmp.extract_compute("sigmax", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_SCALAR)
    assert largest == pytest.approx(forces_sigma.max(), abs=TOL)
    lmp.close()


def test_lammps_without_the_per_atom_option_and_with_a_plain_model(ensemble_path, model_file):
    nnp_lammps = lammps_module()
    atoms = cu_cell(4)
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, atoms, ["Cu"])
    nnp_lammps.attach(lmp, ensemble_path, ["Cu"])
    lmp.commands_string("variable sigma equal f_nnp[1]\nrun 0")
    assert lmp.extract_variable("sigma") == pytest.approx(ase_uncertainty(ensemble_path, atoms)[0], abs=TOL)
    assert lmp.numpy.extract_atom("d_forces_uncertainty") is None  # no property defined
    lmp.close()
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, atoms, ["Cu"])
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        nnp_lammps.attach(lmp, model_file, ["Cu"], uncertainty=True)
    lmp.close()


# -- i-PI --------------------------------------------------------------------------------------------

def ipi_extras(path, atoms, tmp_path, **options):
    pytest.importorskip("ipi")
    from ipi.utils.units import unit_to_internal

    from nnpcalc import ipi_driver

    write(tmp_path / "template.xyz", atoms)
    driver = ipi_driver.NNPDriver(str(tmp_path / "template.xyz"), model=str(path), **options)
    bohr = lambda x: unit_to_internal("length", "angstrom", np.asarray(x))  # noqa: E731
    extras = driver.compute(bohr(atoms.cell.array.T), bohr(atoms.positions))[3]
    return json.loads(extras) if extras else {}


def test_ipi_extras_carry_the_uncertainty(ensemble_path, model_file, tmp_path):
    atoms = cu_cell(5)
    energy_sigma, forces_sigma = ase_uncertainty(ensemble_path, atoms)
    extras = ipi_extras(ensemble_path, atoms, tmp_path, uncertainty=True)
    assert extras["energy_uncertainty"] == pytest.approx(energy_sigma, abs=TOL)
    np.testing.assert_allclose(extras["forces_uncertainty"], forces_sigma, atol=TOL)
    extras = ipi_extras(ensemble_path, atoms, tmp_path)
    assert extras["energy_uncertainty"] == pytest.approx(energy_sigma, abs=TOL) and "forces_uncertainty" not in extras
    assert "energy_uncertainty" not in ipi_extras(model_file, atoms, tmp_path)
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        ipi_extras(model_file, atoms, tmp_path, uncertainty=True)


# -- OpenMM ------------------------------------------------------------------------------------------

def test_openmm_python_force_exposes_the_last_energy_uncertainty(ensemble_path):
    openmm = pytest.importorskip("openmm")
    from nnpcalc.openmm import create_system

    atoms = cu_cell(6)
    setup = create_system(atoms, ensemble_path, kind="python", dtype="float64")
    computation = setup.force.computation
    assert np.isnan(computation.energy_uncertainty)  # nothing evaluated yet
    reference = openmm.Platform.getPlatformByName("Reference")
    context = openmm.Context(setup.system, openmm.VerletIntegrator(0.001), reference)
    context.setPositions(setup.positions)
    context.getState(getEnergy=True)
    assert computation.energy_uncertainty == pytest.approx(ase_uncertainty(ensemble_path, atoms)[0], abs=TOL)
    context.getIntegrator().step(2)  # it follows the positions; getState(getEnergy) evaluates the current ones
    state = context.getState(getPositions=True, getEnergy=True)
    moved = atoms.copy()
    moved.positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom) @ setup.rotation
    assert computation.energy_uncertainty == pytest.approx(ase_uncertainty(ensemble_path, moved)[0], abs=TOL)


def test_openmm_md_max_uncertainty_saves_flags_and_stops_as_the_ase_engine(ensemble_path, model_file, tmp_path):
    pytest.importorskip("openmm")
    from nnpcalc.errors import SimulationError
    from nnpcalc.workflows.md import run_md

    common = {"steps": 4, "trajectory_interval": 2, "max_uncertainty": 1e-9, "engine": "openmm"}
    with pytest.warns(UserWarning, match="largest force uncertainty"):  # as the ASE engine, save warns too
        run_md(cu_cell(), ensemble_path, outdir=tmp_path / "save", **common)
    saved = read(tmp_path / "save" / "uncertain.extxyz", ":")
    assert [f.info["step"] for f in saved] == [2, 4] and "energy" not in saved[0].info
    trajectory = read(tmp_path / "save" / "trajectory.extxyz", ":")  # frames at steps 0, 2, 4
    np.testing.assert_allclose(saved[0].positions, trajectory[1].positions, atol=1e-12)
    largest = ase_uncertainty(ensemble_path, saved[0])[1].max()
    assert saved[0].info["max_forces_uncertainty"] == pytest.approx(largest, rel=1e-6)  # extxyz rounds positions

    with pytest.raises(SimulationError, match="MD stopped at step 2.*force uncertainty"):
        run_md(cu_cell(), ensemble_path, outdir=tmp_path / "stop", uncertainty_action="stop", **common)
    assert len(read(tmp_path / "stop" / "uncertain.extxyz", ":")) == 1
    with pytest.warns(UserWarning, match="force uncertainty"):
        run_md(cu_cell(), ensemble_path, outdir=tmp_path / "flag", uncertainty_action="flag", **common)
    assert not (tmp_path / "flag" / "uncertain.extxyz").exists()
    run_md(cu_cell(), ensemble_path, outdir=tmp_path / "calm", **common | {"max_uncertainty": 1e9})
    assert not (tmp_path / "calm" / "uncertain.extxyz").exists()
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        run_md(cu_cell(), model_file, outdir=tmp_path / "plain", **common)
    assert not (tmp_path / "plain").exists()  # refused before the run directory


def test_nnp_md_engine_openmm_max_uncertainty_stops(ensemble_path, tmp_path):
    pytest.importorskip("openmm")
    from click.testing import CliRunner

    from nnpcalc.cli.main import main

    write(tmp_path / "cu.extxyz", cu_cell())
    result = CliRunner().invoke(main, ["md", str(tmp_path / "cu.extxyz"), "-m", str(ensemble_path), "--engine",
                                       "openmm", "--steps", "4", "--trajectory-interval", "2", "-o",
                                       str(tmp_path / "run"), "--max-uncertainty", "1e-9",
                                       "--uncertainty-action", "stop", "-q"])
    assert result.exit_code != 0 and "force uncertainty" in result.output, result.output
    assert [f.info["step"] for f in read(tmp_path / "run" / "uncertain.extxyz", ":")] == [2]


def test_ase_get_properties_works_with_uncertainty_outputs(ensemble_path):
    """``atoms.get_properties`` (what i-PI's ASEDriver calls) keeps to ASE's names (a KeyError before)."""
    atoms = cu_cell()
    atoms.calc = NNPCalculator(ensemble_path, dtype="float64", uncertainty=True, warn_uncertainty=0)
    properties = atoms.get_properties(["energy", "forces"])
    assert "energy_uncertainty" not in properties and atoms.calc.results["energy_uncertainty"] > 0
