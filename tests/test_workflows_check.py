"""`check`: the physics self-check of a model, reusing nnpcalc.testing."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from nnpcalc import Model
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.calculator import NNPCalculator
from nnpcalc.workflows import check as check_module
from nnpcalc.workflows import scans
from nnpcalc.workflows.check import check, default_structures
from nnpcalc.workflows.scans import wall_check


@pytest.fixture(scope="module")
def model(model_file):
    return Model(model_file, dtype="float64")


def test_a_small_periodic_cell_passes_every_check(model):
    cell = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    cell.rattle(0.05, seed=1)
    rows = check(model, {"al2": cell}, nve_steps=20, scans=False, md_steps=0)
    names = [r.check.name for r in rows]
    assert len(rows) == 8 and all(r.passed for r in rows), "\n".join(f"{r.structure} {r.check}" for r in rows)
    assert any("supercell" in n for n in names) and any("NVE" in n for n in names)


def test_failures_are_reported_not_raised(model, monkeypatch):
    monkeypatch.setitem(check_module.NVE_TOLERANCE, "float64", 0.0)
    rows = check(model, bulk("Al", "fcc", a=4.05).repeat((2, 1, 1)), nve_steps=5, scans=False, md_steps=0)
    assert [r.passed for r in rows if "NVE" in r.check.name] == [False]


def test_default_structures_fit_the_model_and_include_a_periodic_cell(tmp_path):
    arch = Architecture(elements=["H", "C", "N", "O"], backbone="tensornet",
                        backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "cutoff_upper": 4.0},
                        heads=["energy"], fidelities=["default"], head_hidden=8)
    export(build_potential(arch), arch, tmp_path / "hcno.pt")
    named = default_structures(Model(tmp_path / "hcno.pt"))
    assert "ethanol" in named and "periodic-probe" in named and "cu-1atom" not in named
    assert set(named["periodic-probe"].get_chemical_symbols()) == {"H", "C", "N", "O"}


def test_wall_check_wants_a_monotonic_rise():
    r = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    assert wall_check("dimer", r, [8.0, 3.0, 0.5, -1.0, -0.8, -0.2]).passed  # minimum at 1.25, 9 eV wall
    dent = wall_check("dimer", r, [2.7, 3.0, 0.5, -1.0, -0.8, -0.2])  # falls again at 0.5 Å: a hole
    assert not dent.passed and dent.error == pytest.approx(0.3)
    shallow = wall_check("dimer", r, [0.2, 0.1, 0.0, -0.3, -0.2, 0.0])  # rises only 0.5 eV
    assert not shallow.passed and shallow.error == pytest.approx(0.5) and "minimum at 1.25" in shallow.name


def test_scans_and_fused_md_rows(model, monkeypatch):
    dimer_checks = scans.dimer_checks
    monkeypatch.setattr(scans, "dimer_checks", lambda calc, elements: dimer_checks(calc, ["H", "O"], points=4))
    rows = check(model, {"water": molecule("H2O")}, nve_steps=0, scans=True, md_steps=5)
    names = [r.check.name for r in rows]
    assert sum(n.startswith("bond O0-H") for n in names) == 2 and sum(n.startswith("dimer") for n in names) == 3
    md = [r for r in rows if r.check.name.startswith("MD 5")]
    assert len(md) == 1 and md[0].passed  # a 5-step MD of water fuses nothing, even with random weights


def test_fused_md_check_catches_fused_atoms(model):
    """Two H atoms started 0.1 Å apart count as fused from the first step."""
    atoms = Atoms("H2O", [[0, 0, 0], [0.1, 0, 0], [3.0, 0, 0]])
    result = scans.fused_md_check(NNPCalculator(model), atoms, steps=2, temperature_K=0.0)
    assert not result.passed and result.error == 2.0
