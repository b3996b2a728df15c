"""`evaluate`: MAE/RMSE per property against labelled data, parity plot."""

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule

from nnpcalc import Model
from nnpcalc.workflows.evaluate import evaluate


@pytest.fixture(scope="module")
def labelled(model_file):
    """Frames labelled by the model itself, then shifted by known errors."""
    model = Model(model_file, dtype="float64")
    frames = [molecule("H2O"), molecule("CH4"), bulk("Cu", "fcc", a=3.6, cubic=True)]
    for atoms, out in zip(frames, model.compute(frames)):
        atoms.info["ref_energy"] = float(out["energy"]) + 0.1 * len(atoms)  # 0.1 eV/atom off
        atoms.arrays["ref_forces"] = out["forces"] + 0.2  # every component 0.2 eV/Å off
        atoms.arrays["ref_charges"] = out["charges"]
    return model, frames


def test_known_errors_are_measured(labelled):
    model, frames = labelled
    metrics = {m.name: m for m in evaluate(model, frames).metrics}
    assert metrics["energy_per_atom"].mae == pytest.approx(0.1) and metrics["energy_per_atom"].unit == "eV/atom"
    assert metrics["forces"].rmse == pytest.approx(0.2) and metrics["forces"].count == 3 * (3 + 5 + 4)
    assert metrics["charges"].mae == pytest.approx(0.0, abs=1e-12)
    assert "stress" not in metrics and "dipole" not in metrics  # no labels for them


def test_reads_a_file_with_stored_results_and_plots(labelled, tmp_path):
    pytest.importorskip("matplotlib")
    from ase.calculators.singlepoint import SinglePointCalculator

    model, frames = labelled
    stored = []
    for atoms in frames:
        plain = atoms.copy()
        plain.calc = SinglePointCalculator(plain, energy=atoms.info["ref_energy"], forces=atoms.arrays["ref_forces"])
        stored.append(plain)
    ase.io.write(tmp_path / "data.extxyz", stored)
    result = evaluate(model, tmp_path / "data.extxyz", batch_size=2)
    assert result.frames == 3 and {m.name for m in result.metrics} >= {"energy_per_atom", "forces"}
    assert result.plot_parity(tmp_path / "parity.png").read_bytes()[:4] == b"\x89PNG"
    assert np.isfinite([m.rmse for m in result.metrics]).all()
