"""The model file contract: metadata, every form of the model agrees, bad files are refused."""

import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch

from nnpcalc import modelfile
from nnpcalc.errors import ModelFileError
from nnpcalc.nn.build import rebuild
from nnpcalc.testing import reference_structures

BARE_SCRIPT = """
import json, sys, torch
extra = {"metadata.json": ""}
model = torch.jit.load(sys.argv[1], _extra_files=extra).to(torch.float64)
data = json.loads(sys.argv[2])
t = lambda x, **k: torch.tensor(x, **k)
out = model(t(data["positions"], dtype=torch.float64), t(data["numbers"]), t(data["cell"], dtype=torch.float64),
            t(data["pbc"]), t(0.0, dtype=torch.float64))
assert not any(m.split(".")[0] in ("nnpcalc", "torchmdnet", "warp", "vesin_torch") for m in sys.modules), "imported a helper package"
print(json.dumps({"energy": out["energy"].item(), "forces": out["forces"].tolist(),
                  "stress": out["stress"].tolist(), "kind": json.loads(extra["metadata.json"])["kind"]}))
"""


def tensors(atoms, dtype=torch.float64):
    t = torch.tensor
    return (t(atoms.positions, dtype=dtype), t(atoms.numbers), t(atoms.cell.array, dtype=dtype),
            t(atoms.pbc), t(0.0, dtype=dtype))


def test_metadata_describes_the_model(model_file):
    meta = modelfile.read_metadata(model_file)
    assert meta["format_version"] == modelfile.FORMAT_VERSION
    assert meta["elements"] == ["H", "C", "N", "O", "Al", "Cu"]
    assert meta["cutoff"] == 4.0
    assert meta["outputs"]["forces"] == {"shape": "N,3", "unit": "eV/Angstrom", "per_atom": True}
    assert meta["units"]["energy"] == "eV" and meta["dtype"] == "float32"
    assert meta["backbone"] == "tensornet" and meta["architecture"]["backbone_kwargs"]["num_layers"] == 2
    assert meta["heads"] == ["energy", "charges", "dipole"] and meta["fidelities"] == ["default"]
    assert meta["torch_version"] == torch.__version__.split("+")[0]


def test_eager_scripted_reloaded_and_bare_agree(model_file, tmp_path):
    atoms = reference_structures()["al-skewed"]
    eager = rebuild(model_file).double()
    scripted = modelfile.script(eager)
    resaved = modelfile.save(scripted, tmp_path / "again.pt", modelfile.read_metadata(model_file))
    reloaded, _ = modelfile.load(resaved)
    outs = [m(*tensors(atoms)) for m in (eager, scripted, reloaded.double())]
    data = {"positions": atoms.positions.tolist(), "numbers": atoms.numbers.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}
    bare = subprocess.run([sys.executable, "-c", BARE_SCRIPT, str(model_file), json.dumps(data)],
                          capture_output=True, text=True, check=True)
    bare = json.loads(bare.stdout)
    assert bare["kind"] == modelfile.KIND
    for out in outs[1:]:
        for key in ("energy", "forces", "stress", "charges"):
            torch.testing.assert_close(out[key], outs[0][key], rtol=0, atol=1e-12)
    assert bare["energy"] == pytest.approx(outs[0]["energy"].item(), abs=1e-10)
    np.testing.assert_allclose(bare["forces"], outs[0]["forces"].numpy(), atol=1e-10)
    np.testing.assert_allclose(bare["stress"], outs[0]["stress"].numpy(), atol=1e-10)


def test_batch_equals_single_structures(model_file):
    from nnpcalc.runtime import Model

    model = Model(model_file, dtype="float64")
    systems = list(reference_structures().values())
    batched = model.compute(systems)
    for atoms, result in zip(systems, batched):
        (single,) = model.compute([atoms])
        for key in single:
            np.testing.assert_allclose(result[key], single[key], atol=1e-10, err_msg=key)


def test_saving_and_loading_do_not_warn_about_torchscript(model_file, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module, metadata = modelfile.load(model_file)
        modelfile.save(module, tmp_path / "copy.pt", metadata)


def test_torchscript_warning_filter_is_local(model_file):
    before = list(warnings.filters)
    modelfile.load(model_file)
    assert warnings.filters == before


def test_global_default_dtype_is_untouched(model_file):
    from nnpcalc import NNPCalculator
    from ase.build import molecule

    before = torch.get_default_dtype()
    atoms = molecule("H2O")
    atoms.calc = NNPCalculator(model_file, dtype="float64")
    atoms.get_forces()
    assert torch.get_default_dtype() == before


def test_model_refuses_to_run_without_autograd(model_file):
    module, _ = modelfile.load(model_file)
    atoms = reference_structures()["ethanol"]
    with torch.no_grad(), pytest.raises(torch.jit.Error, match="gradients enabled"):
        module(*tensors(atoms, torch.float32))


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ModelFileError, match="not a TorchScript model file"):
        modelfile.load(junk)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file_without_metadata(tmp_path):
    path = tmp_path / "plain.pt"
    torch.jit.save(modelfile.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ModelFileError, match="not an nnpcalc model"):
        modelfile.load(path)


def test_truncated_file(model_file, tmp_path):
    path = tmp_path / "cut.pt"
    path.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        modelfile.load(path)


def test_newer_format_version_is_refused(model_file, tmp_path):
    module, meta = modelfile.load(model_file)
    path = modelfile.save(module, tmp_path / "future.pt", {**meta, "format_version": 99})
    with pytest.raises(ModelFileError, match="Upgrade nnpcalc"):
        modelfile.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        modelfile.load(tmp_path / "nope.pt")


def test_metadata_is_stored_in_the_archive(model_file):
    with zipfile.ZipFile(model_file) as archive:
        assert any(n.endswith("extra/metadata.json") for n in archive.namelist())
