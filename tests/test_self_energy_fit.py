"""The least-squares start of the charge self-energy (nnpcalc.training.self_energy_fit): on
noise-free synthetic charged frames it recovers the χ, J and energy shifts that made them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from nnpcalc import modelfile
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.runtime import Model
from nnpcalc.training.self_energy_fit import fit_self_energy_start, solve

TINY = {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0}
ELEMENTS, Z = ["H", "C", "N", "O"], [1, 6, 7, 8]
CHI, J, SHIFT = [3.0, 7.0, 6.0, 12.0], [25.0, 20.0, 9.0, 40.0], [0.1, -0.3, 0.8, 5.0]


def arch(self_energy: bool) -> Architecture:
    return Architecture(elements=ELEMENTS, backbone_kwargs=TINY, heads=["energy", "charges"], head_hidden=8,
                        electrostatics="coulomb", electrostatics_kwargs={"self_energy": True} if self_energy else {})


def frames():
    """Rattled small molecules with total charge −1, 0, +1 (the charge head spreads it unevenly)."""
    out = []
    for i, name in enumerate(["CH4", "NH3", "H2O", "CH3OH", "HCOOH", "HCN", "H2CO", "C2H6", "CH3CN", "N2H4"]):
        for charge in (-1.0, 0.0, 1.0):
            atoms = molecule(name)
            atoms.rattle(0.1, seed=10 * i + int(charge) + 1)
            atoms.info["charge"] = charge
            out.append(atoms)
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(source model without the term, frames labelled by the same weights + known term and shifts)."""
    tmp = tmp_path_factory.mktemp("sefit")
    torch.manual_seed(0)
    source = build_potential(arch(False))
    with torch.no_grad():  # charges that vary from atom to atom: the columns of the fit are independent
        for p in source.heads[1].parameters():
            p.mul_(5.0)
    source_path = export(source, arch(False), tmp / "source.pt", dtype=torch.float64)
    truth = build_potential(arch(True))
    fresh = {k: v for k, v in truth.state_dict().items() if k.startswith("heads.3.")}  # the self-energy
    truth.load_state_dict(source.state_dict() | fresh)
    term = truth.heads[-1]
    with torch.no_grad():
        for k, z in enumerate(Z):
            term.electronegativity[z] = CHI[k] / term.chi_scale
            term.hardness[z] = float(np.log(np.expm1(J[k] / term.hardness_scale)))
            truth.heads[0].atomref[:, z] += SHIFT[k]
    model = Model(export(truth, arch(True), tmp / "truth.pt", dtype=torch.float64), dtype="float64")
    data = frames()
    for atoms in data:
        (out,) = model.compute([atoms], total_charge=[atoms.info["charge"]], forces=False, stress=False)
        atoms.info["ref_energy"] = float(out["energy"])
    return tmp, source_path, data


def recipe() -> dict:
    return {"name": "t", "data": {"files": ["unused.extxyz"]}, "architecture": arch(True).to_dict(),
            "tasks": [{"output": "energy"}]}


def test_fit_recovers_known_chi_hardness_and_shifts(case):
    tmp, source, data = case
    report = fit_self_energy_start(recipe(), source, tmp / "start.pt", frames=data)
    fit = report["fit"]
    np.testing.assert_allclose(fit["chi"], CHI, atol=1e-6)
    np.testing.assert_allclose(fit["J"], J, atol=1e-6)
    np.testing.assert_allclose(fit["shift"], SHIFT, atol=1e-6)
    assert report["frames"] == len(data) and report["train MAE eV/frame, charge +1"][1] < 1e-6
    # the written start (float32) serves the reference energies and says where it came from
    start = Model(tmp / "start.pt", dtype="float64")
    for atoms in data[::7]:
        (out,) = start.compute([atoms], total_charge=[atoms.info["charge"]], forces=False, stress=False)
        assert float(out["energy"]) == pytest.approx(atoms.info["ref_energy"], abs=2e-3)
    assert "self-energy fitted by least squares" in modelfile.read_metadata(tmp / "start.pt")["provenance"]["init"]


def test_hardness_is_clamped_and_a_recipe_without_the_term_is_refused(case):
    tmp, source, _ = case
    X = np.array([[1.0, 0.3, 0.045], [2.0, -0.5, 0.5], [1.0, 0.9, 0.2], [3.0, 0.1, 0.3]])
    shift, chi, hardness = solve(X, X @ np.array([0.2, 4.0, -3.0]))
    assert shift == pytest.approx([0.2]) and chi == pytest.approx([4.0]) and hardness == pytest.approx([0.5])
    plain = recipe() | {"architecture": arch(False).to_dict()}
    with pytest.raises(ValueError, match="no charge self-energy"):
        fit_self_energy_start(plain, source, tmp / "never.pt", frames=[])
