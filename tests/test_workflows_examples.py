"""The workflow examples run (shortened) on a tiny model, so CI keeps them working."""

import runpy
import warnings
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def test_relax_crystal(model_file):
    script = example("relax_crystal")
    result = script["main"](model_file, steps=5, assert_physics=False)  # random weights: no physics to check
    assert result.volume > 0 and len(result.atoms) == 31
    start = script["copper_vacancy"]()
    reference = script["emt_reference"](start, fmax=0.01, steps=300)  # EMT: instant
    assert script["check"](reference, reference)["volume"] == 0
    expanded = reference.copy()
    expanded.set_cell(reference.cell * 3 ** (1 / 3), scale_atoms=True)  # the old example: 3x the volume
    with pytest.raises(AssertionError, match="volume per atom"):
        script["check"](expanded, reference)


def test_md_water_box(model_file, tmp_path):
    result = example("md_water_box")["main"](model_file, steps=10, outdir=tmp_path)
    assert result.steps == 10 and (tmp_path / "md-run" / "md.log").is_file()


@pytest.mark.slow  # phonopy bands and DOS on a 2x2x2 supercell (60 s, busy 2 cores)
def test_phonons_cu(tmp_path):
    pytest.importorskip("phonopy")
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():  # the demo model's random weights may give imaginary modes
        warnings.simplefilter("ignore", RuntimeWarning)
        result = example("phonons_cu")["main"](outdir=tmp_path, supercell=(2, 2, 2))
    assert (tmp_path / "band.png").is_file() and result.band["labels"][0] == "Γ"


@pytest.mark.slow  # tblite labels, training, export (38 s, busy 2 cores); test_training covers each part
def test_train_and_export(tmp_path):
    pytest.importorskip("tblite")
    pytest.importorskip("lightning")
    summary = example("train_and_export")["main"](epochs=1, outdir=str(tmp_path))
    assert Path(summary["model"]).is_file()
