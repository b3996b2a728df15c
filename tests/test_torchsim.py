"""torch-sim: the ModelInterface adapter passes torch-sim's own checker and equals the ASE calculator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from nnpcalc import NNPCalculator
from nnpcalc.errors import UnknownElementError
from nnpcalc.nn.build import Architecture, build_potential, export

ts = pytest.importorskip("torch_sim", reason="torch-sim is in the test extra (nnpcalc[torchsim])")
from nnpcalc.torchsim import NNPModel  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def si_fe_model(tmp_path_factory):
    """A random-weight model file for Si and Fe, the elements torch-sim's checker builds."""
    torch.manual_seed(0)
    arch = Architecture(elements=["Si", "Fe"], backbone="tensornet", heads=["energy"], head_hidden=8,
                        backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0})
    path = tmp_path_factory.mktemp("torchsim") / "si-fe.pt"
    export(build_potential(arch), arch, path)
    return path


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_validate_model_outputs(si_fe_model, dtype):
    from torch_sim.models.interface import validate_model_outputs

    validate_model_outputs(NNPModel(si_fe_model, dtype=dtype, compute_stress=False), CPU, dtype)


def sheared_cu(seed):
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    strain = np.random.default_rng(seed).uniform(-0.05, 0.05, (3, 3))  # not symmetric: rows != columns
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_batch_equals_ase_per_structure():
    """Two triclinic cells smaller than the cutoff in one call: energies, forces, stress as ASE."""
    structures = [sheared_cu(0), bulk("Cu", "fcc", a=3.5) * (1, 1, 2), sheared_cu(1)]
    out = NNPModel("metals-emt")(ts.io.atoms_to_state(structures, CPU, torch.float64))
    assert all(not value.requires_grad for value in out.values())
    start = 0
    for index, atoms in enumerate(structures):
        atoms.calc = NNPCalculator("metals-emt", dtype="float64")
        stop = start + len(atoms)
        assert out["energy"][index].item() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(out["forces"][start:stop].numpy(), atoms.get_forces(), atol=1e-10)
        np.testing.assert_allclose(out["stress"][index].numpy(), atoms.get_stress(voigt=False), atol=1e-12)
        start = stop


def test_total_charge_per_system():
    """hcno-gfn2 has charges: a neutral and a cation in one batch, each as ASE with its charge."""
    neutral, cation = molecule("H2O"), molecule("CH3OH")
    model = NNPModel("hcno-gfn2", total_charge=[0.0, 1.0], compute_stress=False)
    out = model(ts.io.atoms_to_state([neutral, cation], CPU, torch.float64))
    cation.info["charge"] = 1.0
    for index, atoms in enumerate([neutral, cation]):
        atoms.calc = NNPCalculator("hcno-gfn2", dtype="float64")
        assert out["energy"][index].item() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    assert out["charges"][len(neutral):].sum().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="one per system"):
        NNPModel("hcno-gfn2", total_charge=[0.0, 1.0, 0.0])(ts.io.atoms_to_state([neutral, cation], CPU, torch.float64))


def test_refuses_unknown_elements():
    with pytest.raises(UnknownElementError, match="Si"):
        NNPModel("metals-emt")(ts.io.atoms_to_state([bulk("Si", "diamond", a=5.43)], CPU, torch.float64))


def test_optimize_relaxes_positions_and_cell():
    """ts.optimize with a cell filter: forces and stress reach torch-sim's tolerance; the volume
    matches ASE's BFGS + FrechetCellFilter on the same model."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    start = bulk("Cu", "fcc", a=3.65)  # ~30 steps of torch-sim's FIRE; 4 of ASE's BFGS
    model = NNPModel("metals-emt")
    state = ts.optimize(start, model, optimizer=ts.frechet_cell_fire, max_steps=200,
                        convergence_fn=ts.generate_force_convergence_fn(force_tol=1e-3, include_cell_forces=True))
    atoms = start.copy()
    atoms.calc = NNPCalculator("metals-emt", dtype="float64")
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=100)
    assert abs(torch.linalg.det(state.cell[0]).item()) == pytest.approx(atoms.get_volume(), rel=1e-3)
    assert model(state)["stress"].abs().max().item() < 1e-3


def test_nve_conserves_energy_and_integrate_runs():
    """torch-sim's velocity Verlet on two systems at once conserves each one's energy; ts.integrate runs."""
    from torch_sim.units import MetalUnits

    model = NNPModel("metals-emt")
    state = ts.io.atoms_to_state([bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Cu", "fcc", a=3.65) * 2],
                                 CPU, torch.float64)
    kT = torch.tensor(600 * MetalUnits.temperature, dtype=torch.float64)
    init, step = ts.nve(model=model, dt=torch.tensor(0.001 * MetalUnits.time, dtype=torch.float64), kT=kT, seed=0)
    md = init(state)
    energies = []
    for _ in range(20):
        md = step(md)
        kinetic = ts.calc_kinetic_energy(masses=md.masses, momenta=md.momenta, system_idx=md.system_idx)
        energies.append((md.energy + kinetic).numpy())
    drift = np.ptp(np.array(energies), axis=0)
    assert np.all(drift < 1e-3), drift
    final = ts.integrate(state, model, integrator=ts.nvt_langevin, n_steps=5, temperature=300, timestep=0.001)
    assert final.n_systems == 2 and torch.isfinite(final.positions).all()


@pytest.mark.slow  # 7-50 s on busy 2 cores; `make examples` runs it too
def test_example_relaxes_four_metals():
    """examples/torchsim_metals.py: four metals relaxed in one batch, then NVT."""
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "torchsim_metals.py"))
    lattice, final = example["main"]("metals-emt", steps=2)
    assert lattice["Cu"] == pytest.approx(3.590, abs=0.01) and final.n_systems == 4  # EMT: 3.590 Å
