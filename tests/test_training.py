"""The compact trainer: reference energies, a short fit, export with provenance."""

import numpy as np
import pytest
import yaml
from ase.build import molecule

from nnpcalc import NNPCalculator, modelfile
from nnpcalc.training import fit, reference

pytest.importorskip("tblite")


@pytest.fixture(scope="module")
def frames():
    calc = reference.gfn2()
    geometries = reference.md_frames(molecule("CH3CH2OH"), calc, 16, 4, 500.0, seed=0)
    geometries += reference.md_frames(molecule("H2O"), calc, 8, 4, 500.0, seed=1)
    return [reference.label(g, calc, "GFN2-xTB") for g in geometries]


def test_reference_labels_are_consistent(frames):
    f = frames[0]
    assert f.arrays["ref_forces"].shape == (len(f), 3)
    assert f.arrays["ref_charges"].sum() == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(f.info["ref_dipole"], f.arrays["ref_charges"] @ f.positions, atol=0.5)


def test_atomrefs_recover_a_linear_model(frames):
    truth = {1: -10.0, 6: -40.0, 8: -70.0}
    synthetic = [f.copy() for f in frames]
    for f in synthetic:
        f.info["ref_energy"] = sum(truth[z] for z in f.numbers)
    refs = fit.fit_atomrefs(synthetic, ["H", "C", "O"])
    assert refs == pytest.approx(truth)


def test_short_fit_exports_a_model_with_provenance(frames, tmp_path):
    from ase.io import write

    data = tmp_path / "tiny.extxyz"
    write(data, frames, format="extxyz")
    recipe = {
        "name": "tiny", "data": str(data), "output": str(tmp_path / "tiny.pt"), "minutes": 0.05,
        "architecture": {"elements": ["H", "C", "O"], "backbone_kwargs": {"hidden_channels": 8, "num_layers": 1,
                                                                            "num_rbf": 8, "cutoff_upper": 4.0},
                         "head_hidden": 8},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    model = fit.run(str(path))
    meta = modelfile.read_metadata(model)
    assert meta["provenance"]["data"][0]["sha256"] == fit.sha256(data)
    assert set(meta["provenance"]["split"]) == {"train", "val", "test", "seed"}
    assert "forces_mae" in meta["provenance"]["test_metrics"]
    atoms = frames[0].copy()
    atoms.calc = NNPCalculator(model)
    assert np.isfinite(atoms.get_forces()).all()
