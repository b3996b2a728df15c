"""`check`: the physics self-check of a model, reusing nnpcalc.testing."""

import pytest
from ase.build import bulk

from nnpcalc import Model
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.workflows import check as check_module
from nnpcalc.workflows.check import check, default_structures


@pytest.fixture(scope="module")
def model(model_file):
    return Model(model_file, dtype="float64")


def test_a_small_periodic_cell_passes_every_check(model):
    cell = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    cell.rattle(0.05, seed=1)
    rows = check(model, {"al2": cell}, nve_steps=20)
    names = [r.check.name for r in rows]
    assert len(rows) == 8 and all(r.passed for r in rows), "\n".join(f"{r.structure} {r.check}" for r in rows)
    assert any("supercell" in n for n in names) and any("NVE" in n for n in names)


def test_failures_are_reported_not_raised(model, monkeypatch):
    monkeypatch.setitem(check_module.NVE_TOLERANCE, "float64", 0.0)
    rows = check(model, bulk("Al", "fcc", a=4.05).repeat((2, 1, 1)), nve_steps=5)
    assert [r.passed for r in rows if "NVE" in r.check.name] == [False]


def test_default_structures_fit_the_model_and_include_a_periodic_cell(tmp_path):
    arch = Architecture(elements=["H", "C", "N", "O"], backbone="tensornet",
                        backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "cutoff_upper": 4.0},
                        heads=["energy"], fidelities=["default"], head_hidden=8)
    export(build_potential(arch), arch, tmp_path / "hcno.pt")
    named = default_structures(Model(tmp_path / "hcno.pt"))
    assert "ethanol" in named and "periodic-probe" in named and "cu-1atom" not in named
    assert set(named["periodic-probe"].get_chemical_symbols()) == {"H", "C", "N", "O"}
