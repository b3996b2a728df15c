"""janus-core's calculations on an attached NNPCalculator (the route janus-core takes for any ASE
calculator): the same numbers as the calculator called directly and as plain ASE runs."""

import numpy as np
import pytest
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import LBFGS
from ase.units import fs

from nnpcalc import Model, NNPCalculator

pytest.importorskip("janus_core")
from janus_core.calculations.geom_opt import GeomOpt  # noqa: E402
from janus_core.calculations.md import NVE  # noqa: E402
from janus_core.calculations.single_point import SinglePoint  # noqa: E402


@pytest.fixture(scope="module")
def model():
    """metals-emt, loaded once (its first calls, TorchScript's warm-up, are the slow ones)."""
    return Model("metals-emt", dtype="float64")


@pytest.fixture
def calculator(model):
    """A fresh calculator per path, so that no result is served from another path's cache."""
    return lambda: NNPCalculator(model)


def rattled_cu(seed=0):
    atoms = bulk("Cu", "fcc", a=3.66, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_single_point_equals_the_calculator(calculator, tmp_path):
    direct = rattled_cu()
    direct.calc = calculator()
    atoms = rattled_cu()
    atoms.calc = calculator()
    results = SinglePoint(struct=atoms, file_prefix=tmp_path / "cu", properties=("energy", "forces", "stress")).run()
    assert results["energy"] == pytest.approx(direct.get_potential_energy(), rel=0, abs=1e-12)
    np.testing.assert_allclose(results["forces"], direct.get_forces(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(results["stress"], direct.get_stress(), rtol=0, atol=1e-12)
    assert np.abs(direct.get_forces()).max() > 0.05  # a structure with forces to compare


def test_geometry_optimisation_finds_ases_lattice_constant(calculator, tmp_path):
    """janus-core's GeomOpt (LBFGS + FrechetCellFilter) lands where plain ASE's does."""
    start = bulk("Cu", "fcc", a=3.70)  # 1-atom cell: only the cell relaxes
    plain = start.copy()
    plain.calc = calculator()
    LBFGS(FrechetCellFilter(plain), logfile=None).run(fmax=1e-4, steps=200)
    atoms = start.copy()
    atoms.calc = calculator()
    GeomOpt(struct=atoms, fmax=1e-4, steps=200, filter_class="FrechetCellFilter", file_prefix=tmp_path / "cu",
            opt_kwargs={"logfile": None}).run()
    a_plain, a_janus = ((4 * x.get_volume()) ** (1 / 3) for x in (plain, atoms))  # V = a³/4
    assert abs(a_plain - 3.70) > 0.05  # it relaxed
    assert a_janus == pytest.approx(a_plain, rel=1e-6)
    assert np.abs(atoms.get_stress()).max() < 1e-4


def test_nve_follows_ases_velocity_verlet(calculator, tmp_path):
    """janus-core's NVE keeps the velocities it is given and integrates as VelocityVerlet does."""
    start = rattled_cu(seed=1)
    MaxwellBoltzmannDistribution(start, temperature_K=600, rng=np.random.default_rng(2))
    plain = start.copy()
    plain.calc = calculator()
    VelocityVerlet(plain, timestep=2.0 * fs).run(10)
    atoms = start.copy()
    atoms.calc = calculator()
    NVE(struct=atoms, steps=10, timestep=2.0, stats_every=5, traj_every=5, file_prefix=tmp_path / "md").run()
    np.testing.assert_allclose(atoms.positions, plain.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(atoms.get_momenta(), plain.get_momenta(), rtol=0, atol=1e-10)
    assert np.abs(atoms.positions - start.positions).max() > 1e-3  # they moved
    assert (tmp_path / "md-stats.dat").is_file()  # janus-core wrote where it was told


@pytest.mark.slow  # the example's relaxation and MD (~60 s on the busy 2 cores)
def test_the_example_runs(tmp_path):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "janus_relax.py"))
    point, lattice, crystal = example["main"](steps=4, outdir=tmp_path)
    assert lattice == pytest.approx(3.590, abs=1e-2) and len(crystal) == 32  # EMT's Cu a0; the model within 0.3 %
    assert (tmp_path / "cu-opt.extxyz").is_file() and (tmp_path / "cu-md-stats.dat").is_file()
