"""The exported and compiled programs (nnpcalc.exported, nnpcalc.artifacts): same numbers as the
TorchScript file and the eager module, loud fallback, a cache that never unpickles.

Building a program takes tens of seconds (exported) to minutes (compiled): those tests are
marked slow and share one module-scoped build of a tiny model; the rest run in seconds.
"""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from nnpcalc import artifacts, exported, modelfile
from nnpcalc.calculator import NNPCalculator
from nnpcalc.errors import ArtifactWarning, ModelFileError
from nnpcalc.nn.build import rebuild
from nnpcalc.runtime import Model
from nnpcalc.testing import TOLERANCES, check_forces, check_stress, program_inputs

F64 = torch.float64
EXACT = 1e-10  # every path agrees to this in float64 (eV, eV/Å, eV/Å³, e)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def structures():
    """A molecule, a charged molecule and a periodic triclinic cell of the tiny model's elements."""
    ethanol = molecule("CH3CH2OH")
    ion = molecule("H2O")
    ion.info["charge"] = -1.0
    metal = bulk("Cu", "fcc", a=3.6, cubic=True)
    metal.numbers[:2] = 13
    metal.set_cell(metal.cell.array + [[0, 0.3, 0], [0.2, 0, 0], [0, 0, 0]], scale_atoms=True)
    for k, atoms in enumerate((ethanol, ion, metal)):
        atoms.rattle(0.05, seed=k)
    return {"ethanol": ethanol, "ion": ion, "metal": metal}


def max_difference(out: dict, reference: dict) -> float:
    """Largest deviation over ``reference``'s outputs (a program also gives stress without a volume)."""
    assert set(reference) <= set(out)
    return max(float((out[k].double() - reference[k].double()).abs().max()) for k in reference)


def assert_program_matches_file(program, path) -> None:
    """``program`` gives the model file's float64 numbers (to EXACT) on every test structure."""
    scripted, metadata = modelfile.load(path)
    scripted = scripted.to(F64)
    for name, atoms in structures().items():
        args = program_inputs(atoms, metadata["cutoff"])
        with modelfile.calling():
            reference = scripted.forward_batch(*args)
        assert max_difference(program(*args), reference) < EXACT, name


# ---- fast: no program is built --------------------------------------------------------------


def test_eager_evaluate_matches_torchscript(model_file):
    """What is traced (``Potential.evaluate`` of the rebuilt module) is the file's computation."""
    scripted, metadata = modelfile.load(model_file)
    scripted = scripted.to(F64)
    eager = rebuild(model_file, (scripted, metadata)).to(F64).eval()
    for name, atoms in structures().items():
        args = program_inputs(atoms, metadata["cutoff"])
        with modelfile.calling():
            reference = scripted.forward_batch(*args)
            out = eager.evaluate(*args)
        assert max_difference(out, reference) < EXACT, name


def test_auto_without_a_cached_program_serves_torchscript(model_file, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArtifactWarning)
        model = Model(model_file, dtype="float64")
    assert model.program is None
    assert not cache.exists()  # "auto" never builds, and writes nothing


def test_unknown_artifact_is_refused(model_file):
    with pytest.raises(ValueError, match="torchscript"):
        Model(model_file, artifact="onnx")


def test_a_broken_cached_program_warns_and_torchscript_serves(model_file, cache):
    info = artifacts.artifact_info(model_file, F64, "cpu")
    path = artifacts.cache_path(model_file, "compiled", info)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a package")
    path.with_name(path.name + ".json").write_text(json.dumps(info | {"kind": "compiled", "keys": ["energy"]}))
    with pytest.warns(ArtifactWarning, match="TorchScript file serves"):
        model = Model(model_file, dtype="float64")
    assert model.program is None
    reference = Model(model_file, dtype="float64", artifact="torchscript")
    atoms = structures()["ethanol"]
    assert model.compute([atoms])[0]["energy"] == reference.compute([atoms])[0]["energy"]


def test_a_program_failing_on_a_call_warns_and_torchscript_serves(model_file):
    model = Model(model_file, dtype="float64", artifact="torchscript")
    reference = model.compute([structures()["ethanol"]])[0]

    def broken(*inputs):
        raise RuntimeError("the package does not run here")
    model.program = artifacts.Program("compiled", broken, ["energy"], model.path)
    with pytest.warns(ArtifactWarning, match="does not run here"):
        out = model.compute([structures()["ethanol"]])[0]
    assert model.program is None
    assert all(np.array_equal(out[k], reference[k]) for k in reference)


def test_a_stale_cached_program_is_refused(model_file, cache):
    info = artifacts.artifact_info(model_file, F64, "cpu")
    path = artifacts.cache_path(model_file, "exported", info)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".json").write_text(json.dumps(info | {"torch_version": "0.0", "kind": "exported"}))
    with pytest.raises(ModelFileError, match="another model file, torch"):
        artifacts.load(path, info)


def test_cache_entries_differ_by_dtype_and_file(model_file, model_factory, tmp_path, cache):
    other = model_factory(tmp_path / "other.pt", seed=1)[0]
    paths = {
        artifacts.cache_path(f, "compiled", artifacts.artifact_info(f, dtype, "cpu"))
        for f in (model_file, other) for dtype in (torch.float32, F64)
    }
    assert len(paths) == 4
    assert all(p.parent == cache.resolve() / "artifacts" for p in paths)


def test_a_molecule_program_never_serves_a_periodic_cell(model_file):
    """Models with electrostatics export as molecule programs (built in tests/test_exported_electrostatics.py)."""
    model = Model(model_file, dtype="float64", artifact="torchscript")
    called = []

    def program(*inputs):
        called.append(bool(inputs[3].any()))
        raise RuntimeError("called")
    model.program = artifacts.Program("exported", program, ["energy"], model.path, molecules_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArtifactWarning)
        model.compute([structures()["metal"]])
    assert called == []
    with pytest.warns(ArtifactWarning, match="called"):
        model.compute([structures()["ethanol"]])
    assert called == [False]


def test_nnp_compile_names_proxied_ops(model_file, tmp_path, monkeypatch):
    """``nnp compile`` says which ops of a package run outside its kernels (and says nothing when none)."""
    from click.testing import CliRunner

    from nnpcalc.cli.main import main

    def fake_build(path, kind, dtype, device, threads=1):
        package = tmp_path / f"{dtype}-{threads}.compiled.pt2"
        nodes = [{"node": {"target": "aten::bincount"}}] if dtype == torch.float32 else []
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("p/data/aotinductor/model/x.wrapper.json", json.dumps({"nodes": nodes}))
        return package
    monkeypatch.setattr(artifacts, "build", fake_build)
    result = CliRunner().invoke(main, ["compile", str(model_file), "--dtype", "float32", "--dtype", "float64"])
    assert result.exit_code == 0, result.output
    assert result.output.count("proxy executor") == 1 and "aten::bincount" in result.output


def test_an_archive_with_pickles_is_refused(tmp_path):
    path = tmp_path / "evil.exported.pt2"
    config = {"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data/weights/model_weights_config.json", json.dumps(config))
    with pytest.raises(ModelFileError, match="pickled"):
        artifacts._refuse_pickles(path)


def test_traced_determinant_and_count_match_torch():
    """What the programs trace instead of ``linalg.det`` and ``bincount`` (no proxied ops)."""
    generator = torch.Generator().manual_seed(0)
    cells = torch.randn(50, 3, 3, generator=generator, dtype=F64) * 4.0
    cells[0] = torch.eye(3, dtype=F64) * 17.0
    cells[1, 2] = cells[1, 0] + cells[1, 1]  # singular
    reference = torch.linalg.det(cells)
    assert float((exported.det3(cells) - reference).abs().max()) < 1e-12
    assert float(exported.det3(cells[1:2]).abs().max()) < 1e-12
    for length in (1, 2, 5):
        values = torch.randint(0, length, (40,), generator=generator)
        assert torch.equal(exported.count(values, length), torch.bincount(values, minlength=length))
    assert torch.equal(exported.count(torch.zeros(7, dtype=torch.long), 1), torch.tensor([7]))


def test_tracing_replaces_only_what_it_can():
    """``_ShimmedOps`` replaces 3 × 3 determinants and counts with a ``minlength``, nothing else."""
    matrices, values = torch.randn(4, 4, dtype=F64), torch.tensor([0, 2, 2])
    with exported._ShimmedOps():
        assert torch.equal(torch.linalg.det(matrices), torch.linalg.det(matrices.clone()))  # 4 × 4: the op
        assert torch.equal(torch.bincount(values), torch.tensor([1, 0, 2]))  # no minlength: the op
        assert torch.equal(torch.bincount(values, minlength=4), torch.tensor([1, 0, 2, 0]))
        weighted = torch.bincount(values, torch.ones(3, dtype=F64), 3)
    assert torch.equal(weighted, torch.tensor([1.0, 0.0, 2.0], dtype=F64))


# ---- slow: one exported program of the tiny model, float64 ------------------------------------


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory, model_factory):
    root = tmp_path_factory.mktemp("cache")
    path = model_factory(tmp_path_factory.mktemp("models") / "tiny.pt")[0]
    return path, artifacts.load(artifacts.build(path, "exported", F64, "cpu", root)), root


@pytest.mark.slow
def test_exported_matches_torchscript_and_eager(exported_model):
    path, program, _ = exported_model
    scripted, metadata = modelfile.load(path)
    scripted = scripted.to(F64)
    eager = rebuild(path, (scripted, metadata)).to(F64).eval()
    for name, atoms in structures().items():
        args = program_inputs(atoms, metadata["cutoff"])
        with modelfile.calling():
            reference = scripted.forward_batch(*args)
            out = eager.evaluate(*args)
        assert max_difference(program(*args), reference) < EXACT, name
        assert max_difference(out, reference) < EXACT, name


@pytest.mark.slow
def test_exported_program_holds_no_op_without_a_c_shim(exported_model):
    """``aten.bincount`` and ``aten._linalg_det`` would run through AOTInductor's proxy executor."""
    _, program, _ = exported_model
    targets = {str(node.target) for node in program.module.graph.nodes if node.op == "call_function"}
    assert not {t for t in targets if "bincount" in t or "linalg_det" in t or "lu_factor" in t}


@pytest.mark.slow
def test_exported_passes_finite_differences(exported_model, monkeypatch):
    path, _, root = exported_model
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(root))
    model = Model(path, dtype="float64", artifact="exported")
    assert model.program is not None and model.program.kind == "exported"
    calc = NNPCalculator(model)
    tolerance = TOLERANCES["float64"]
    atoms = structures()["metal"]
    assert check_forces(calc, atoms, tolerance["forces"]).passed
    assert check_stress(calc, atoms, tolerance["stress"]).passed
    assert check_forces(calc, structures()["ethanol"], tolerance["forces"]).passed


@pytest.mark.slow
def test_runtime_serves_in_range_calls_from_the_program(exported_model, monkeypatch):
    path, _, root = exported_model
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(root))
    model = Model(path, dtype="float64", artifact="exported")
    reference = Model(path, dtype="float64", artifact="torchscript")
    calls = []
    program = model.program
    model.program = artifacts.Program(program.kind, lambda *a: calls.append(1) or program.module(*a), program.keys, program.path)
    batch = list(structures().values()) + [bulk("Cu", "fcc", a=3.6)]  # a batch and a 1-atom cell: TorchScript
    for atoms in batch:
        out, ref = model.compute([atoms])[0], reference.compute([atoms])[0]
        assert max(np.abs(out[k] - ref[k]).max() for k in ref) < EXACT
    assert len(calls) == 3  # the 1-atom cell is below the program's range
    together = model.compute(batch)
    assert len(calls) == 3  # batches are TorchScript's
    assert abs(together[0]["energy"] - reference.compute(batch[:1])[0]["energy"]) < EXACT


@pytest.fixture(scope="module")
def compiled_model(exported_model, tmp_path_factory):
    """AOTInductor on this CPU (minutes)."""
    path, _, _ = exported_model
    root = tmp_path_factory.mktemp("compiled")
    return path, artifacts.build(path, "compiled", F64, "cpu", root), root


@pytest.mark.slow
def test_compiled_matches_torchscript(compiled_model):
    """The same numbers to rounding (a molecule, an anion, a periodic triclinic cell), and every op
    in the package's kernels or C shims: none through the proxy executor."""
    path, package, _ = compiled_model
    assert_program_matches_file(artifacts.load(package), path)
    assert artifacts.proxied_ops(package) == []
    assert json.loads(package.with_name(package.name + ".json").read_text())["proxied_ops"] == []


@pytest.mark.slow
def test_compiled_passes_finite_differences(compiled_model, monkeypatch):
    path, _, root = compiled_model
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(root))
    model = Model(path, dtype="float64", artifact="auto")
    program, calls = model.program, []
    assert program is not None and program.kind == "compiled"
    model.program = artifacts.Program(program.kind, lambda *a: calls.append(1) or program.module(*a), program.keys,
                                      program.path)
    calc = NNPCalculator(model)
    tolerance = TOLERANCES["float64"]
    assert check_forces(calc, structures()["metal"], tolerance["forces"]).passed
    assert check_stress(calc, structures()["metal"], tolerance["stress"]).passed
    assert check_forces(calc, structures()["ethanol"], tolerance["forces"]).passed
    # every call served by the program, none fell back: 1 + 6 N per force check (N = 4, 9), 1 + 18 for the stress
    assert len(calls) == 25 + 19 + 55 and model.program is not None


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["et", "graph-network"])
def test_other_backbones_export_exactly(backbone, model_factory, tmp_path):
    path = model_factory(tmp_path / f"{backbone}.pt", backbone=backbone)[0]
    program = artifacts.load(artifacts.build(path, "exported", F64, "cpu", tmp_path / "cache"))
    assert_program_matches_file(program, path)


def test_a_program_made_stale_by_an_upgrade_is_named_once_and_the_file_serves(model_file, cache):
    """After an upgrade (new network code, torch, ...), `nnp compile`'s program misses: say so once."""
    from nnpcalc import artifacts as arts

    info = arts.artifact_info(model_file, F64, "cpu")
    old = info | {"code_sha256": "0" * 64, "torch_version": "2.12.0"}
    path = arts.cache_path(model_file, "compiled", old)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".json").write_text(json.dumps(old | {"kind": "compiled", "keys": ["energy"]}))
    arts._noticed.clear()
    with pytest.warns(ArtifactWarning, match=r"built for another torch_version, code_sha256.*nnp compile"):
        assert arts.for_model(model_file, F64, "cpu", "auto") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert arts.for_model(model_file, F64, "cpu", "auto") is None  # said once per process
        assert arts.for_model(model_file, torch.float32, "cpu", "auto") is None  # another dtype: no entry, no word
