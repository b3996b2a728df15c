"""The ZBL repulsion prior: formula, cutoff, derivatives, scripting, and the wall it builds."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.data import covalent_radii

from nnpcalc import modelfile, testing
from nnpcalc.calculator import NNPCalculator
from nnpcalc.nn.build import rebuild
from nnpcalc.nn.priors import ZBLRepulsion
from nnpcalc.units import COULOMB_EV_ANGSTROM

HEADS = ("energy", {"kind": "zbl", "radius_factor": 1.0}, "charges", "dipole")


def zbl_numpy(z1: int, z2: int, r: float, factor: float = 1.0) -> float:
    """The ZBL pair energy written out independently (Ziegler, Biersack, Littmark 1985)."""
    a = 0.8854 * 0.52917721 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = 0.18175 * np.exp(-3.1998 * x) + 0.50986 * np.exp(-0.94229 * x) \
        + 0.28022 * np.exp(-0.4029 * x) + 0.02817 * np.exp(-0.20162 * x)
    rc = factor * (covalent_radii[z1] + covalent_radii[z2])
    switch = 0.5 * (np.cos(np.pi * r / rc) + 1.0) if r < rc else 0.0
    return COULOMB_EV_ANGSTROM * z1 * z2 / r * phi * switch


@pytest.fixture(scope="module")
def zbl_model(tmp_path_factory, model_factory):
    path, potential, _ = model_factory(tmp_path_factory.mktemp("zbl") / "zbl.pt", heads=HEADS)
    return path, potential


@pytest.mark.parametrize("z1,z2", [(8, 8), (1, 8), (29, 29), (6, 1)])
def test_pair_energy_is_zbl_and_vanishes_beyond_cutoff(z1, z2):
    prior = ZBLRepulsion(max_z=30, radius_factor=1.0)
    rc = covalent_radii[z1] + covalent_radii[z2]
    r = torch.tensor([0.3, 0.5, 0.5 * rc, 0.99 * rc, rc, 1.5 * rc, 4.0], dtype=torch.float64)
    z = torch.full_like(r, 0, dtype=torch.long)
    got = prior.pair_energy(z + z1, z + z2, r).numpy()
    want = [zbl_numpy(z1, z2, float(x)) for x in r]
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)  # Bohr to 8 digits above
    assert got[-3:].tolist() == [0.0, 0.0, 0.0]


def test_bad_radius_factor_is_refused():
    with pytest.raises(ValueError, match="radius_factor"):
        ZBLRepulsion(radius_factor=0.0)


def compressed_systems() -> dict[str, Atoms]:
    water_pair = Atoms("OHHOHH", [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                                  [1.1, 0.3, 0.2], [1.6, 1.0, 0.1], [1.5, -0.5, 0.4]])
    copper = bulk("Cu", "fcc", a=2.9).repeat((2, 1, 1))  # nearest neighbours 2.05 Å
    copper.rattle(0.05, seed=1)
    return {"water-pair": water_pair, "compressed-cu": copper}


@pytest.mark.parametrize("name", ["water-pair", "compressed-cu"])
def test_forces_and_stress_are_derivatives(zbl_model, name):
    atoms = compressed_systems()[name]
    calc = NNPCalculator(zbl_model[0], dtype="float64")
    assert testing.check_forces(calc, atoms, 1e-5, delta=1e-5).passed  # |F| ~ 100 eV/Å here
    if atoms.pbc.any():
        assert testing.check_stress(calc, atoms, 1e-6).passed


def test_scripted_file_equals_eager_module(zbl_model):
    path, potential = zbl_model
    scripted, _ = modelfile.load(path)
    atoms = compressed_systems()["water-pair"]
    t = torch.tensor
    args = (t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(atoms.cell.array, dtype=torch.float32),
            t(atoms.pbc), t(0.0))
    eager = potential.float().eval()(*args)
    loaded = scripted(*args)
    for key in ("energy", "energies", "forces"):
        torch.testing.assert_close(loaded[key], eager[key].detach(), rtol=1e-5, atol=1e-5)
    # and the file rebuilds with its prior
    assert any(isinstance(head, ZBLRepulsion) for head in rebuild(path).heads)


def test_dimer_wall_rises_steeply(zbl_model):
    """Random weights, yet O–O and Cu–Cu at 0.5 Å sit ~100 eV above 2 Å: the prior's wall."""
    calc = NNPCalculator(zbl_model[0], dtype="float64")
    for element in ("O", "Cu"):
        energies = []
        for r in (0.5, 0.8, 2.0):
            atoms = Atoms(element * 2, [[0, 0, 0], [r, 0, 0]])
            atoms.calc = calc
            energies.append(atoms.get_potential_energy())
        assert energies[0] - energies[2] > 50.0 and energies[0] > energies[1] > energies[2]
