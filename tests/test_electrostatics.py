"""Long-range electrostatics (nnpcalc.nn.electrostatics): Ewald against pymatgen, finite
differences, the damping, and the term inside a model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from nnpcalc import NNPCalculator, modelfile, testing
from nnpcalc.errors import InvalidStructureError
from nnpcalc.nn import electrostatics as es
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.units import COULOMB_EV_ANGSTROM

K = COULOMB_EV_ANGSTROM
TRICLINIC = np.array([[5.1, 0.0, 0.0], [1.3, 4.7, 0.0], [0.9, -1.1, 6.2]])
TINY = {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0}


def random_ions(n=8, total=0.0, seed=0):
    """Positions in the triclinic cell and random charges summing to ``total``."""
    rng = np.random.default_rng(seed)
    charges = rng.normal(size=n)
    return rng.random((n, 3)) @ TRICLINIC, charges - charges.mean() + total / n


def ewald(positions, charges, cell, accuracy=1e-12, cutoff=9.0, radius=0.0):
    """Total Ewald energy (eV) of fixed charges, float64 tensors in, a 0-d tensor out."""
    return K * es.ewald_energies(positions, charges, cell, accuracy, cutoff, radius).sum()


def tensors(*arrays):
    return [torch.tensor(a, dtype=torch.float64) for a in arrays]


@pytest.mark.parametrize("total", [0.0, 1.5])
def test_ewald_matches_pymatgen(total):
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    positions, charges = random_ions(total=total)
    structure = Structure(Lattice(TRICLINIC), ["H"] * len(charges), positions,
                          coords_are_cartesian=True, site_properties={"charge": charges})
    reference = EwaldSummation(structure, acc_factor=14.0, compute_forces=True)
    pos, q, cell = tensors(positions, charges, TRICLINIC)
    pos.requires_grad_(True)
    energy = ewald(pos, q, cell)
    (grad,) = torch.autograd.grad(energy, pos)
    # pymatgen's Coulomb constant differs from ASE's CODATA one by 8e-9 relative
    assert float(energy.detach()) == pytest.approx(reference.total_energy, rel=1e-6)
    assert np.abs(-grad.numpy() - reference.forces).max() < 1e-6 * np.abs(reference.forces).max()


def test_ewald_does_not_depend_on_the_real_reciprocal_split():
    pos, q, cell = tensors(*random_ions(total=1.0), TRICLINIC)
    energies = [float(ewald(pos, q, cell, cutoff=c)) for c in (5.0, 8.0, 12.0, 0.0)]  # 0: automatic
    assert np.ptp(energies) < 1e-9 * abs(energies[0])


def strained_energy(positions, charges, cell, radius):
    """E(r, ε) with the model's symmetric strain, for autograd forces and stress."""
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    positions = positions.clone().requires_grad_(True)
    sym = 0.5 * (strain + strain.T)
    energy = ewald(positions + positions @ sym, charges, cell + cell @ sym, cutoff=7.0, radius=radius)
    forces, virial = torch.autograd.grad(energy, [positions, strain])
    return energy, -forces, virial / torch.linalg.det(cell).abs()


@pytest.mark.parametrize("radius", [0.0, 3.0])
def test_ewald_forces_and_stress_equal_finite_differences(radius):
    pos, q, cell = tensors(*random_ions(n=6, total=0.5, seed=1), TRICLINIC)
    _, forces, stress = strained_energy(pos, q, cell, radius)
    h, volume = 1e-5, torch.linalg.det(cell).abs()

    def energy(step_pos, step_cell):
        return ewald(pos + step_pos, q, cell + step_cell, cutoff=7.0, radius=radius)

    for i, k in [(0, 0), (1, 2), (4, 1)]:
        step = torch.zeros_like(pos)
        step[i, k] = h
        fd = -(energy(step, 0.0) - energy(-step, 0.0)) / (2 * h)
        assert float(forces[i, k]) == pytest.approx(float(fd), rel=1e-6, abs=1e-6 * float(forces.abs().max()))
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        e = torch.zeros(3, 3, dtype=torch.float64)
        e[a, b] += 0.5 * h
        e[b, a] += 0.5 * h
        fd = (energy(pos @ e, cell @ e) - energy(-pos @ e, -cell @ e)) / (2 * h) / volume
        assert float(stress[a, b]) == pytest.approx(float(fd), rel=1e-6, abs=1e-6 * float(stress.abs().max()))


def test_damped_coulomb_is_bare_beyond_the_damping_radius_and_smooth_at_it():
    r = torch.linspace(0.05, 12.0, 2000, dtype=torch.float64)
    kernel = es.damped_kernel(r, 5.0)
    beyond = r >= 5.0
    assert torch.equal(kernel[beyond], 1.0 / r[beyond])
    assert bool((kernel[~beyond] < 1.0 / r[~beyond]).all()) and bool((kernel >= 0).all())
    x = torch.tensor([5.0 - 1e-6, 5.0 + 1e-6], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(es.damped_kernel(x, 5.0).sum(), x)
    assert float(slope[0]) == pytest.approx(float(slope[1]), rel=1e-5)  # C¹ (indeed C²) at r_d
    # forces of the damped direct sum: central differences
    pos, q = tensors([[0.0, 0.0, 0.0], [1.9, 0.4, -0.3], [-0.6, 3.8, 1.2], [5.5, 1.0, 0.2]], [0.5, -0.8, 0.6, -0.3])
    pos.requires_grad_(True)
    (grad,) = torch.autograd.grad(es.direct_energies(pos, q, 5.0).sum(), pos)
    step = torch.zeros_like(pos)
    step[1, 0] = 1e-5
    with torch.no_grad():
        fd = (es.direct_energies(pos + step, q, 5.0).sum() - es.direct_energies(pos - step, q, 5.0).sum()) / 2e-5
    assert float(grad[1, 0]) == pytest.approx(float(fd), rel=1e-6)
    # a pair far apart: the damped direct sum is the bare Coulomb energy
    pos, q = tensors([[0.0, 0.0, 0.0], [0.0, 0.0, 7.5]], [0.4, -0.7])
    assert float(K * es.direct_energies(pos, q, 5.0).sum()) == pytest.approx(K * 0.4 * -0.7 / 7.5, rel=1e-14)


def test_damped_ewald_equals_damped_direct_sum_of_the_images():
    """A big cubic cell holding a tight neutral cluster: Ewald = the molecule's direct sum + its images."""
    positions = np.array([[0.0, 0.0, 0.0], [1.2, 0.3, -0.4], [-0.5, 1.1, 0.6], [0.7, -0.9, 1.0]])
    charges = np.array([0.8, -0.5, -0.6, 0.3])
    pos, q = tensors(positions + 20.0, charges)
    direct = float(K * es.direct_energies(pos, q, 3.0).sum())
    periodic = float(ewald(pos, q, torch.eye(3, dtype=torch.float64) * 40.0, accuracy=1e-10, cutoff=12.0, radius=3.0))
    # Ewald's tin-foil boundary: the lattice of dipoles p adds -2πk|p|²/(3V) (cubic cell)
    dipole = charges @ positions
    assert periodic - direct == pytest.approx(-2 * np.pi * K * dipole @ dipole / (3 * 40.0**3), rel=2e-2)


def architecture(method, heads=("energy", "charges", "dipole"), **options):
    return Architecture(elements=["H", "C", "N", "O"], backbone_kwargs=TINY, heads=list(heads),
                        head_hidden=16, electrostatics=method, electrostatics_kwargs=options)


@pytest.fixture(scope="module")
def ewald_model(tmp_path_factory):
    torch.manual_seed(0)
    arch = architecture("ewald", ewald_cutoff=7.0)
    potential = build_potential(arch)
    path = export(potential, arch, tmp_path_factory.mktemp("electrostatics") / "ewald.pt", dtype=torch.float64)
    return path, potential


def ammonium(center):
    d = 1.03 / np.sqrt(3.0)
    tetra = d * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    return Atoms("NH4", positions=np.vstack([[0, 0, 0], tetra]) + center)


def ion_pair(distance, charge=2.0):
    atoms = ammonium([0.0, 0.0, 0.0]) + ammonium([0.0, 0.0, distance])
    atoms.info["charge"] = charge
    return atoms


def test_ion_pair_pulled_apart_loses_the_bare_coulomb_energy(ewald_model):
    calc = NNPCalculator(ewald_model[0], dtype="float64")
    near, far = ion_pair(8.0), ion_pair(20.0)
    near.calc, far.calc = calc, NNPCalculator(ewald_model[0], dtype="float64")
    charges = near.get_charges()
    assert charges[:5].sum() == pytest.approx(1.0, abs=1e-12)  # each ion carries +1
    drop = near.get_potential_energy() - far.get_potential_energy()
    assert drop == pytest.approx(K * (1 / 8.0 - 1 / 20.0), rel=2e-3)  # 1.08 eV, octupoles aside


def test_short_range_model_does_not_see_the_ion_pair(tmp_path):
    torch.manual_seed(0)
    arch = architecture("none")
    path = export(build_potential(arch), arch, tmp_path / "short.pt", dtype=torch.float64)
    near, far = ion_pair(8.0), ion_pair(20.0)
    near.calc, far.calc = NNPCalculator(path, dtype="float64"), NNPCalculator(path, dtype="float64")
    assert abs(near.get_potential_energy() - far.get_potential_energy()) < 1e-10


def water_cell():
    from nnpcalc.systems import water_box

    atoms = water_box(1)
    atoms.set_cell([[3.3, 0.0, 0.0], [0.4, 3.2, 0.0], [-0.3, 0.5, 3.4]], scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_model_with_ewald_forces_and_stress_equal_finite_differences(ewald_model):
    calc = NNPCalculator(ewald_model[0], dtype="float64")
    cell = water_cell()
    checks = [testing.check_forces(calc, cell, 1e-6), testing.check_stress(calc, cell, 1e-6)]
    assert all(c.passed for c in checks), [str(c) for c in checks]


def test_model_with_ewald_is_invariant(ewald_model):
    calc = NNPCalculator(ewald_model[0], dtype="float64")
    cell, tol = water_cell(), testing.TOLERANCES["float64"]
    checks = [
        testing.check_lattice_image(calc, cell, tol),
        testing.check_supercell(calc, cell, {"energy": 1e-6, "forces": 1e-6, "stress": 1e-7}),
        testing.check_rotation(calc, ion_pair(4.5, charge=1.0), tol),
    ]
    assert all(c.passed for c in checks), [str(c) for c in checks]


def test_model_file_runs_bare_and_states_its_physics(ewald_model):
    path, eager = ewald_model
    bare = torch.jit.load(str(path))
    atoms = water_cell()
    args = [torch.tensor(atoms.positions), torch.tensor(atoms.numbers), torch.tensor(atoms.cell.array),
            torch.tensor(atoms.pbc), torch.tensor(0.0, dtype=torch.float64)]
    out = bare(*args)
    reference = eager.to(torch.float64)(*args)
    assert float(out["energy"]) == pytest.approx(float(reference["energy"].detach()), rel=1e-12)
    args[3] = torch.tensor([True, True, False])
    with pytest.raises(torch.jit.Error, match="not slabs"):
        bare(*args)
    metadata = modelfile.read_metadata(path)
    assert metadata["architecture"]["electrostatics"] == "ewald"
    assert "electrostatics" in metadata["heads"]


def test_slabs_and_periodic_cells_without_ewald_are_refused(ewald_model, tmp_path):
    slab = water_cell()
    slab.pbc = [True, True, False]
    with pytest.raises(InvalidStructureError, match="slabs"):
        slab.calc = NNPCalculator(ewald_model[0], dtype="float64")
        slab.get_potential_energy()
    arch = architecture("coulomb")
    path = export(build_potential(arch), arch, tmp_path / "coulomb.pt")
    with pytest.raises(InvalidStructureError, match="'ewald'"):
        cell = water_cell()
        cell.calc = NNPCalculator(path)
        cell.get_potential_energy()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="one of none, coulomb, ewald"):
        build_potential(architecture("pme"))
    with pytest.raises(ValueError, match="'charges' head"):
        build_potential(architecture("coulomb", heads=("energy",)))
    with pytest.raises(ValueError, match="unknown electrostatics option"):
        build_potential(architecture("ewald", tolerance=1e-5))


def test_training_with_electrostatics_learns_charges_from_the_energy(tmp_path):
    """No charges task: the heads get a charge head anyway, and the energy loss reaches it."""
    pytest.importorskip("lightning")
    from ase.calculators.emt import EMT
    from ase.io import write

    from nnpcalc.training import reference
    from nnpcalc.training.module import PotentialModule
    from nnpcalc.training.train import train

    frames = []
    for seed, atoms in enumerate([ion_pair(6.0, charge=0.0), water_cell(), water_cell()]):
        atoms = atoms.copy()
        atoms.rattle(0.05, seed=seed)
        frames.append(reference.label(atoms, EMT(), "EMT"))
    write(tmp_path / "d.extxyz", frames, format="extxyz")
    config = {
        "name": "t", "seed": 0,
        "data": {"files": [str(tmp_path / "d.extxyz")], "labels": {"energy": "ref_energy", "forces": "ref_forces"},
                 "split": {"val": 0.34, "test": 0.0}},
        "architecture": {"backbone_kwargs": TINY, "head_hidden": 8, "electrostatics": "ewald",
                         "electrostatics_kwargs": {"ewald_cutoff": 6.0}},
        "tasks": [{"output": "energy", "weight": 1}, {"output": "forces", "weight": 1}],
        "trainer": {"max_epochs": 1, "batch_size": 2, "progress": False},
        "run_dir": str(tmp_path / "run"), "output": str(tmp_path / "m.pt"), "summary": "Test.",
    }
    summary = train(config)
    metadata = modelfile.read_metadata(summary["model"])
    assert metadata["architecture"]["electrostatics"] == "ewald" and "charges" in metadata["outputs"]
    assert "charges trained by the energy alone" in (tmp_path / "m.md").read_text()
    module = PotentialModule.load_from_checkpoint(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    charge_head = next(h for h in module.potential.heads if h.name == "charges")
    atoms = frames[1]
    t = torch.tensor
    out = module.potential.train()(t(atoms.positions, dtype=torch.float32), t(atoms.numbers),
                                   t(atoms.cell.array, dtype=torch.float32), t(atoms.pbc), t(0.0))
    out["energy"].sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in charge_head.parameters())


def test_coulomb_model_is_marked_molecules_only(tmp_path):
    arch = architecture("coulomb")
    path = export(build_potential(arch), arch, tmp_path / "coulomb.pt")
    assert modelfile.read_metadata(path)["periodic"] is False
    from nnpcalc.runtime import Model
    from nnpcalc.workflows.check import default_structures

    assert not any(a.pbc.any() for a in default_structures(Model(path)).values())  # `nnp check` skips cells
    assert modelfile.read_metadata(export(build_potential(architecture("ewald")), architecture("ewald"),
                                          tmp_path / "ewald.pt"))["periodic"] is True


# --- charge self-energy (electrostatics_kwargs: {self_energy: true}) ---------------------------


def self_energy_models(method, tmp_path):
    """(with the self-energy, the same weights without it) as float64 files; random χ and J."""
    torch.manual_seed(1)
    arch = architecture(method, ewald_cutoff=7.0, self_energy=True) if method == "ewald" else \
        architecture(method, self_energy=True)
    potential = build_potential(arch)
    term = potential.heads[-1]
    assert term.name == "self_energy"
    with torch.no_grad():  # not the initial values: χ and J of a few eV, different per element
        term.electronegativity.uniform_(0.2, 0.5)
        term.hardness.uniform_(-1.0, 1.0)
    with_term = export(potential, arch, tmp_path / "self.pt", dtype=torch.float64)
    plain_arch = architecture(method, **({"ewald_cutoff": 7.0} if method == "ewald" else {}))
    plain = build_potential(plain_arch)
    plain.load_state_dict({k: v for k, v in potential.state_dict().items() if not k.startswith("heads.4.")})
    return with_term, export(plain, plain_arch, tmp_path / "plain.pt", dtype=torch.float64), term


def test_self_energy_is_chi_q_plus_half_j_q_squared_and_depends_on_the_total_charge(tmp_path):
    with_term, plain, term = self_energy_models("coulomb", tmp_path)
    chi, hardness = (t.detach().numpy() for t in term.parameters_ev())
    energies = {}
    for charge in (0.0, 1.0):
        atoms = ammonium([0.0, 0.0, 0.0])
        atoms.rattle(0.05, seed=2)
        atoms.info["charge"] = charge
        atoms.calc = NNPCalculator(with_term, dtype="float64")
        energy, q = atoms.get_potential_energy(), atoms.get_charges()
        assert q.sum() == pytest.approx(charge, abs=1e-12)
        atoms.calc = NNPCalculator(plain, dtype="float64")
        z = atoms.numbers
        expected = (chi[z] * q + 0.5 * hardness[z] * q * q).sum()
        assert energy - atoms.get_potential_energy() == pytest.approx(expected, rel=1e-10, abs=1e-12)
        energies[charge] = energy
    assert energies[1.0] - energies[0.0] > 1.0  # the energy sees the total charge (χ 2-5 eV/e)
    assert (hardness > 0).all()


@pytest.mark.parametrize("method", ["coulomb", "ewald"])
def test_self_energy_forces_and_stress_equal_finite_differences(method, tmp_path):
    path = self_energy_models(method, tmp_path)[0]
    calc = NNPCalculator(path, dtype="float64")
    ion = ion_pair(4.5, charge=1.0)
    ion.rattle(0.05, seed=4)
    checks = [testing.check_forces(calc, ion, 1e-6)]
    if method == "ewald":
        cell = water_cell()
        cell.info["charge"] = 1.0
        checks += [testing.check_forces(calc, cell, 1e-6), testing.check_stress(calc, cell, 1e-6)]
    assert all(c.passed for c in checks), [str(c) for c in checks]


def test_self_energy_file_runs_bare_states_the_term_and_is_off_by_default(tmp_path):
    path = self_energy_models("ewald", tmp_path)[0]
    metadata = modelfile.read_metadata(path)
    assert metadata["heads"][-2:] == ["electrostatics", "self_energy"]
    assert metadata["architecture"]["electrostatics_kwargs"]["self_energy"] is True
    bare = torch.jit.load(str(path))
    atoms = water_cell()
    args = [torch.tensor(atoms.positions), torch.tensor(atoms.numbers), torch.tensor(atoms.cell.array),
            torch.tensor(atoms.pbc)]
    neutral, cation = (float(bare(*args, torch.tensor(c, dtype=torch.float64))["energy"]) for c in (0.0, 1.0))
    assert neutral != pytest.approx(cation, abs=1e-3)
    assert "self_energy" not in [h.name for h in build_potential(architecture("ewald")).heads]
    with pytest.raises(ValueError, match="self_energy must be true or false"):
        build_potential(architecture("ewald", self_energy="yes"))


def test_fine_tuning_adds_the_self_energy_to_a_file_without_it(tmp_path):
    """init_from a model without the term: every other weight loads, the term starts fresh."""
    pytest.importorskip("lightning")
    from nnpcalc.training.module import PotentialModule, initialise_from

    torch.manual_seed(0)
    arch = {"elements": ["H", "C", "N", "O"], "backbone_kwargs": TINY, "head_hidden": 8,
            "heads": ["energy", "charges"], "electrostatics": "ewald"}
    old = build_potential(Architecture(**arch))
    path = export(old, Architecture(**arch), tmp_path / "old.pt", dtype=torch.float64)
    config = {"architecture": arch | {"electrostatics_kwargs": {"self_energy": True}},
              "tasks": [{"output": "energy"}], "trainer": {"dtype": "float64"}}
    module = PotentialModule(config)
    assert initialise_from(module, str(path)) is True
    state = module.potential.state_dict()
    for key, value in old.state_dict().items():
        torch.testing.assert_close(state[key], value.to(state[key].dtype))
    chi, hardness = module.potential.heads[-1].parameters_ev()
    assert float(chi.abs().max()) == 0.0 and float(hardness[1]) == pytest.approx(es.INITIAL_HARDNESS)
