"""Bad input of the Python API, model files, checkpoints and OpenMM: one typed error each, whose
message names the fix; no file runs code (crafted pickles must not write their marker).

The CLI and MD-resume catalogue lives in ``tests/test_bad_cli_inputs.py``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule, nanotube

from nnpcalc import NNPCalculator, modelfile
from nnpcalc.errors import (
    DeviceError, InvalidChargeError, InvalidStructureError, ModelFileError, NNPError, StressUnavailableError,
    UnknownElementError, UnknownModelError, UnknownOptionError,
)
from nnpcalc.runtime import Model

# ---------------------------------------------------------------------------------------------
# crafted files that would run code when unpickled


class Marker:
    """Unpickling this writes a marker file: the proof that a reader ran code from a file."""

    path = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def marker(tmp_path):
    Marker.path = str(tmp_path / "MARKER")
    yield tmp_path / "MARKER"
    assert not (tmp_path / "MARKER").exists(), "a reader ran code from a file"


# ---------------------------------------------------------------------------------------------
# structures the model refuses: (make atoms, property, error type, words of the fix)


def _water(**info):
    atoms = molecule("H2O")
    atoms.info.update(info)
    return atoms


def _overlap():
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[0]
    return atoms


def _overlap_across_boundary():
    return Atoms("H2", positions=[[0.01, 1, 1], [5.96, 1, 1]], cell=[6, 6, 6], pbc=True)


def _own_image():
    return Atoms("H", positions=[[0, 0, 0]], cell=[0.05, 4, 4], pbc=True)


def _numbers(*z):
    return Atoms(numbers=list(z), positions=[[1.5 * k, 0, 0] for k in range(len(z))])


def _positions(value):
    atoms = molecule("H2O")
    atoms.positions[1, 0] = value
    return atoms


def _pymatgen_conflict():
    atoms = _water(charge=0)
    atoms.charge = 1
    return atoms


def _slab_without_c():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.cell[2] = 0.0
    atoms.pbc = [True, True, False]
    return atoms


def _tube():
    tube = nanotube(6, 0, length=2)
    tube.numbers[:] = 6
    return tube


STRUCTURES = {
    "overlapping atoms": (_overlap, "energy", InvalidStructureError, "atoms 0 and 2"),
    "overlap across the boundary": (_overlap_across_boundary, "energy", InvalidStructureError, "Remove duplicated"),
    "atom on its own image": (_own_image, "energy", InvalidStructureError, "periodic image"),
    "NaN position": (lambda: _positions(np.nan), "energy", InvalidStructureError, "Restore a finite"),
    "inf position": (lambda: _positions(np.inf), "forces", InvalidStructureError, "Restore a finite"),
    "far atoms in float32": (lambda: _positions(1e6), "energy", InvalidStructureError, "float64"),
    "beyond a centimetre": (lambda: _positions(1e9), "energy", InvalidStructureError, "near the origin"),
    "NaN charge": (lambda: _water(charge=float("nan")), "energy", InvalidChargeError, "finite"),
    "inf charge": (lambda: _water(charge=float("inf")), "energy", InvalidChargeError, "finite"),
    "absurd charge": (lambda: _water(charge=1e9), "energy", InvalidChargeError, "per structure"),
    "charge beyond the electrons": (lambda: _water(charge=-11), "energy", InvalidChargeError, "|charge| ≤ 10"),
    "charge not a number": (lambda: _water(charge="plus one"), "energy", InvalidChargeError, "float in e"),
    "charge stated twice": (_pymatgen_conflict, "energy", InvalidChargeError, "keep one"),
    "Z = 150": (lambda: _numbers(150, 1), "energy", InvalidStructureError, "periodic table"),
    "Z = 0": (lambda: _numbers(0, 1), "energy", InvalidStructureError, "set real elements"),
    "Z = -3": (lambda: _numbers(-3, 1), "energy", InvalidStructureError, "periodic table"),
    "element not in the model": (lambda: _numbers(26, 1), "energy", UnknownElementError, "Use a model trained"),
    "periodic cell without volume": (lambda: Atoms("H", cell=np.zeros((3, 3)), pbc=True), "energy",
                                     InvalidStructureError, "set_cell"),
    "cell denser than matter": (lambda: Atoms("H2", positions=[[0, 0, 0], [0.1, 0.1, 0.1]], cell=[[1.1, 0, 0], [0.3, 0.17, 0], [0.2, 0.1, 1.4]], pbc=True),
                                "energy", InvalidStructureError, "Check the cell's units"),
    "stress of a molecule": (_water, "stress", StressUnavailableError, "energy and forces only"),
    "stress of a nanotube with zero open axes": (_tube, "stress", StressUnavailableError, "cell with a volume"),
    "stress of a slab without a c vector": (_slab_without_c, "stress", StressUnavailableError, "cell with a volume"),
}


@pytest.fixture(scope="module")
def calc(model_file):
    return NNPCalculator(model_file)


@pytest.mark.parametrize("case", STRUCTURES)
def test_structure_is_refused(calc, case):
    make, prop, error, fix = STRUCTURES[case]
    atoms = make()
    atoms.calc = calc
    with pytest.raises(error, match=_words(fix)):
        atoms.calc.get_property(prop, atoms)


def _words(text: str) -> str:
    import re

    return re.escape(text)


def test_stress_refusal_is_ase_s_own_error(calc):
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = _water()
    atoms.calc = calc
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    assert np.isfinite(atoms.get_potential_energy())  # energy and forces still work


# ---------------------------------------------------------------------------------------------
# API options: (call, error type, words of the fix)

API = {
    "unknown calculator keyword": (lambda f: NNPCalculator(f, dtyp="float64"), UnknownOptionError, "dtyp"),
    "bad dtype": (lambda f: NNPCalculator(f, dtype="float16"), ValueError, "float32, float64"),
    "unknown fidelity": (lambda f: NNPCalculator(f, fidelity="ccsd"), ValueError, "this model has default"),
    "cuda without CUDA": (lambda f: Model(f, device="cuda"), DeviceError, "device='cpu'"),
    "cuda:7": (lambda f: Model(f, device="cuda:7"), DeviceError, "device"),
    "not a device": (lambda f: Model(f, device="banana"), DeviceError, "'cpu', 'cuda'"),
    "unknown neighbour back-end": (lambda f: Model(f, neighbors="octree"), ValueError, "auto, vesin, torch"),
    "NaN total_charge to compute": (lambda f: Model(f).compute([_water()], [float("nan")]), InvalidChargeError, "finite"),
    "charges not one per structure": (lambda f: Model(f).compute([_water()], [0.0, 1.0]), ValueError, "one per structure"),
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")
@pytest.mark.parametrize("case", API)
def test_api_option_is_refused(model_file, case):
    call, error, fix = API[case]
    with pytest.raises(error, match=_words(fix)):
        call(model_file)


# ---------------------------------------------------------------------------------------------
# model files: every malformed variant is one ModelFileError naming the file and the key


def _rewrite(source, target, edit):
    """A copy of model file ``source`` whose metadata.json is ``edit(text) -> text``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("extra/metadata.json"):
                data = edit(data.decode()).encode()
            dst.writestr(item, data)
    return target


def _edit_key(key, value, drop_digest=False):
    def edit(text):
        meta = json.loads(text)
        if value is KeyError:
            meta.pop(key)
        else:
            meta[key] = value
        if drop_digest:
            meta.pop("digest", None)
        return json.dumps(meta)
    return edit


METADATA = {
    "bad JSON": (lambda t: t[:-5], "not valid JSON"),
    "a list, not an object": (lambda t: "[1, 2]", "not an object"),
    "kind": (_edit_key("kind", "other-model"), "metadata kind"),
    "newer format": (_edit_key("format_version", 99), "pip install -U nnpcalc"),
    "format as text": (_edit_key("format_version", "1"), "'format_version'"),
    "no elements": (_edit_key("elements", KeyError), "'elements' is missing"),
    "no cutoff": (_edit_key("cutoff", KeyError), "'cutoff' is missing"),
    "no outputs": (_edit_key("outputs", KeyError), "'outputs' is missing"),
    "no fidelities": (_edit_key("fidelities", KeyError), "'fidelities' is missing"),
    "no architecture": (_edit_key("architecture", KeyError), "'architecture' is missing"),
    "cutoff as text": (_edit_key("cutoff", "4 A"), "'cutoff' must be a positive number"),
    "negative cutoff": (_edit_key("cutoff", -4.0), "'cutoff' must be a positive number"),
    "NaN cutoff": (_edit_key("cutoff", float("nan")), "'cutoff' must be a positive number"),
    "element not a symbol": (_edit_key("elements", ["H", "Xx"]), "'elements' must be"),
    "elements as text": (_edit_key("elements", "HCNO"), "'elements' must be"),
    "outputs without energy": (_edit_key("outputs", {"forces": {"per_atom": True}}), "'outputs'"),
    "output without per_atom": (_edit_key("outputs", {"energy": {"shape": ""}}), "'outputs.energy'"),
    "empty fidelities": (_edit_key("fidelities", []), "'fidelities'"),
    "architecture as text": (_edit_key("architecture", "tensornet"), "'architecture'"),
    "dtype float16": (_edit_key("dtype", "float16"), "'dtype'"),
    "cutoff edited (digest)": (_edit_key("cutoff", 2.0), "digest does not match"),
    "cutoff edited, old format": (_edit_key("cutoff", 2.0, drop_digest=True), "'cutoff' says 2.0"),
    "elements edited, old format": (_edit_key("elements", ["H", "C"], drop_digest=True), "'elements' lists"),
    "fidelities edited, old format": (_edit_key("fidelities", ["a", "b"], drop_digest=True), "'fidelities' lists 2"),
}


@pytest.mark.parametrize("case", METADATA)
def test_malformed_metadata_is_one_typed_error(model_file, tmp_path, case):
    edit, words = METADATA[case]
    path = _rewrite(model_file, tmp_path / "edited.pt", edit)
    with pytest.raises(ModelFileError, match=_words(words)) as info:
        Model(path)
    assert str(path) in str(info.value)


def test_edited_weights_fail_the_digest(model_file, tmp_path):
    module, metadata = modelfile.load(model_file)
    with torch.no_grad():
        next(module.parameters()).add_(0.01)
    with modelfile._torchscript_quiet():
        torch.jit.save(module, str(tmp_path / "w.pt"), _extra_files={"metadata.json": json.dumps(metadata)})
    with pytest.raises(ModelFileError, match="digest does not match"):
        Model(tmp_path / "w.pt")


def test_old_files_without_a_digest_still_load(model_file, tmp_path):
    path = _rewrite(model_file, tmp_path / "old.pt", _edit_key("digest", KeyError))
    atoms = _water()
    assert Model(path).compute([atoms])[0]["energy"] == Model(model_file).compute([atoms])[0]["energy"]
    assert modelfile.read_metadata(model_file)["digest"].startswith("sha256:")


FILES = {
    "missing": (lambda p, f: p / "none.pt", "none.pt does not exist"),
    "a directory": (lambda p, f: p, "is a directory"),
    "not a zip": (lambda p, f: _write(p / "x.pt", b"hello, not a model"), "Re-export it"),
    "truncated": (lambda p, f: _write(p / "t.pt", f.read_bytes()[: f.stat().st_size // 2]), "truncated"),
    "zip without metadata": (lambda p, f: _zip(p / "z.pt", {"a/data.pkl": b"x"}), "no metadata.json"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("case", FILES)
def test_bad_model_file(model_file, tmp_path, case):
    make, words = FILES[case]
    with pytest.raises((ModelFileError, UnknownModelError), match=_words(words)):
        Model(make(tmp_path, model_file))


# ---------------------------------------------------------------------------------------------
# no reader runs code from a file


def test_model_file_with_a_malicious_pickle(model_file, tmp_path, marker):
    with zipfile.ZipFile(model_file) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    root = next(n for n in entries if n.endswith("data.pkl")).rsplit("/", 1)[0]
    entries[f"{root}/data.pkl"] = pickle.dumps(Marker(), protocol=2)
    with pytest.raises(ModelFileError):
        Model(_zip(tmp_path / "evil.pt", entries))


def _evil_checkpoint(path, hparams):
    torch.save({"state_dict": {}, "hyper_parameters": hparams, "evil": Marker()}, path)
    return path


@pytest.mark.parametrize("hparams", [{"config": {}}, {"model": "tensornet", "embedding_dimension": 8}, {}],
                         ids=["nnpcalc", "torchmd-net", "unknown"])
def test_export_of_a_malicious_checkpoint(tmp_path, marker, hparams):
    from nnpcalc.training.export import export_any

    with pytest.raises(ModelFileError, match="runs no code"):
        export_any(_evil_checkpoint(tmp_path / "evil.ckpt", hparams), tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_torchmdnet_reader_refuses_a_malicious_checkpoint(tmp_path, marker):
    from nnpcalc.training.torchmdnet import load_checkpoint

    with pytest.raises(ModelFileError, match="runs no code"):
        load_checkpoint(_evil_checkpoint(tmp_path / "evil.ckpt", {"model": "tensornet"}))


@pytest.mark.parametrize("content", [b"not a checkpoint", b""], ids=["text", "empty"])
def test_export_of_a_file_that_is_no_checkpoint(tmp_path, content):
    from nnpcalc.training.export import export_any

    with pytest.raises(ModelFileError, match="nnp train"):
        export_any(_write(tmp_path / "x.ckpt", content), tmp_path / "out.pt")


def test_md_checkpoint_with_a_pickled_array(tmp_path, marker):
    from nnpcalc.errors import CheckpointError
    from nnpcalc.workflows.md_state import CHECKPOINT, load_checkpoint

    np.savez(tmp_path / CHECKPOINT, meta=np.array("{}"), positions=np.array([Marker()], dtype=object))
    with pytest.raises(CheckpointError, match="Restore the file"):
        load_checkpoint(tmp_path)


def test_yaml_recipe_with_a_python_tag(tmp_path, marker):
    from nnpcalc.errors import DataError
    from nnpcalc.training.train import load_config

    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"name: x\nseed: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DataError, match="no !!python tags"):
        load_config(recipe)


STRUCTURE_FILES = {
    "pickle as .traj": ("evil.traj", lambda: pickle.dumps(Marker())),
    "pickle as .pckl": ("evil.pckl", lambda: pickle.dumps(Marker())),
    "pickle as .xyz": ("evil.xyz", lambda: pickle.dumps(Marker())),
    "monty JSON naming os.system": ("evil.json", lambda: json.dumps(
        {"@module": "os", "@class": "system", "command": "touch MARKER"}).encode()),
}


@pytest.mark.parametrize("case", STRUCTURE_FILES)
def test_structure_file_runs_no_code(tmp_path, marker, case):
    from nnpcalc.workflows.io import read_file

    name, content = STRUCTURE_FILES[case]
    with pytest.raises(InvalidStructureError, match="could not read|holds no structure"):
        read_file(_write(tmp_path / name, content()))


# ---------------------------------------------------------------------------------------------
# OpenMM and openmm-ml


@pytest.fixture
def mlpotential():
    pytest.importorskip("openmmml")
    from openmmml import MLPotential

    from nnpcalc.openmm.plugin import NNPCalcPotentialImplFactory

    MLPotential.registerImplFactory("nnpcalc", NNPCalcPotentialImplFactory())
    return MLPotential


def _topology(atoms):
    from nnpcalc.openmm import from_atoms

    return from_atoms(atoms)[0]


OPENMM = {
    "unknown MLPotential keyword": (lambda P, f: P("nnpcalc", model=f, precison="double"), UnknownOptionError,
                                    "precison"),
    "unknown createSystem keyword": (lambda P, f: P("nnpcalc", model=f).createSystem(_topology(_water()), temprature=3),
                                     UnknownOptionError, "temprature"),
    "precision quad": (lambda P, f: P("nnpcalc", model=f).createSystem(_topology(_water()), precision="quad"),
                       ValueError, "'single' or 'double'"),
    "NaN total_charge": (lambda P, f: P("nnpcalc", model=f).createSystem(_topology(_water()), total_charge=math.nan),
                         InvalidChargeError, "finite"),
    "two charges": (lambda P, f: P("nnpcalc", model=f).createSystem(_topology(_water()), total_charge=1, charge=0),
                    InvalidChargeError, "give one"),
    "unknown force kind": (lambda P, f: P("nnpcalc", model=f, kind="gpu"), ValueError, "auto, python, torch"),
    "ML atoms as floats": (lambda P, f: _force(f, atoms=[0.0, 1.0]), ValueError, "whole particle indices"),
    "ML atoms as bools": (lambda P, f: _force(f, atoms=[True, False, True]), ValueError, "boolean mask"),
    "ML atoms out of range": (lambda P, f: _force(f, atoms=[0, 99]), ValueError, "indices in 0..2"),
    "ML atoms repeated": (lambda P, f: _force(f, atoms=[0, 0]), ValueError, "more than once"),
    "force kind gpu": (lambda P, f: _force(f, kind="gpu"), ValueError, "auto, python, torch"),
}


def _force(model, **options):
    from nnpcalc.openmm import create_force

    return create_force(model, _topology(_water()), **{"kind": "python", **options})


@pytest.mark.parametrize("case", OPENMM)
def test_openmm_option_is_refused(mlpotential, model_file, case):
    call, error, words = OPENMM[case]
    with pytest.raises(error, match=_words(words)):
        call(mlpotential, str(model_file))


def test_openmm_system_refuses_a_nan_charge(model_file):
    pytest.importorskip("openmm")
    from nnpcalc.openmm import create_system

    with pytest.raises(InvalidChargeError, match="finite"):
        create_system(_water(charge=float("nan")), model_file, kind="python")


def test_every_error_here_is_an_nnpcalc_error():
    for error in (DeviceError, InvalidChargeError, StressUnavailableError, UnknownOptionError, ModelFileError):
        assert issubclass(error, NNPError)


@pytest.mark.slow  # imports torchmd-net and Warp: ~10 s
def test_a_checkpoint_written_by_lightning_for_torchmdnet_needs_no_code(tmp_path):
    """What torchmd-train's Lightning Trainer writes (LNNP, torchmd-net 3.1) holds only weights
    and plain data: the weights-only reader takes it with no class allowed beyond torch's."""
    pytest.importorskip("torchmdnet")
    import importlib.util
    import sys

    import lightning
    from torchmdnet.module import LNNP

    from nnpcalc.training.export import export_any

    spec = importlib.util.spec_from_file_location("tmd_import", __file__.replace("test_bad_inputs", "test_torchmdnet_import"))
    tmd = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tmd_import", tmd)
    spec.loader.exec_module(tmd)
    hparams = {**tmd.TRAIN_DEFAULTS, **tmd.SMALL, "model": "tensornet"}
    trainer = lightning.Trainer(max_epochs=0, logger=False, enable_checkpointing=False, accelerator="cpu",
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(LNNP(hparams, mean=torch.tensor([-3.7]), std=torch.tensor([0.8])))
    trainer.save_checkpoint(tmp_path / "lnnp.ckpt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / "lnnp.ckpt")) == []
    assert modelfile.read_metadata(export_any(tmp_path / "lnnp.ckpt", tmp_path / "m.pt"))["backbone"] == "tensornet"


# ---------------------------------------------------------------------------------------------
# a model reading per-atom charges (torchmd-net's Coulomb prior) in engines that cannot pass them

COULOMB_PRIOR = {"kind": "torchmd_coulomb", "lower_switch_distance": 0.1, "upper_switch_distance": 0.3,
                 "max_num_neighbors": 32, "distance_scale": 1e-10, "energy_scale": 1.602176634e-19}


@pytest.fixture(scope="module")
def coulomb_prior_file(tmp_path_factory):
    """A tiny random-weight H/O file with the head `nnp export` gives a torchmd-net Coulomb prior
    (metadata inputs: ['atom_charges']), built directly: no torchmd-net import (~6 s)."""
    from nnpcalc.nn.build import Architecture, build_potential, export

    torch.manual_seed(0)
    arch = Architecture(elements=["H", "O"], backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 8,
                                                              "cutoff_upper": 4.0},
                        head_hidden=8, heads=[{"kind": "energy"}, COULOMB_PRIOR])
    path = export(build_potential(arch), arch, tmp_path_factory.mktemp("coulomb") / "coulomb.pt")
    assert modelfile.read_metadata(path)["inputs"] == ["atom_charges"]
    return path


def _boxed_water():
    atoms = _water()
    atoms.cell = [8.0, 8.0, 8.0]
    atoms.center()
    return atoms


def _torchsim(path, tmp_path):
    pytest.importorskip("torch_sim")
    from nnpcalc.torchsim import NNPModel

    return NNPModel(path)


def _openmm_force(kind):
    def make(path, tmp_path):
        pytest.importorskip("openmm")
        return _force(path, kind=kind)
    return make


def _openmm_md(path, tmp_path):
    pytest.importorskip("openmm")
    from nnpcalc.openmm import run_openmm_md

    try:
        return run_openmm_md(_water(), path, outdir=tmp_path / "run", steps=2)
    finally:
        assert not (tmp_path / "run").exists()  # refused before the run directory is made


def _lammps(path, tmp_path):
    nnp_lammps = pytest.importorskip("nnpcalc.lammps")
    lmp = nnp_lammps.start_lammps()
    nnp_lammps.create_atoms(lmp, _boxed_water(), ["H", "O"])
    try:
        return nnp_lammps.attach(lmp, path, ["H", "O"])
    finally:
        lmp.close()


def _ipi(path, tmp_path):
    pytest.importorskip("ipi")
    from ase.io import write

    from nnpcalc import ipi_driver

    write(tmp_path / "template.xyz", _water())  # no initial charges
    return ipi_driver.NNPDriver(str(tmp_path / "template.xyz"), model=str(path))


ENGINES_WITHOUT_CHARGES = {
    "torch-sim": _torchsim,
    "openmm PythonForce": _openmm_force("python"),
    "openmm TorchForce": _openmm_force("torch"),  # refused before openmmtorch is imported
    "openmm run_openmm_md": _openmm_md,
    "lammps attach": _lammps,
    "i-pi driver": _ipi,
}


@pytest.mark.parametrize("case", ENGINES_WITHOUT_CHARGES)
def test_engine_refuses_a_model_reading_atom_charges_at_setup(coulomb_prior_file, tmp_path, case):
    with pytest.raises(InvalidStructureError, match=r"atom_charges.*Coulomb prior.*NNPCalculator.*set_initial_charges"):
        ENGINES_WITHOUT_CHARGES[case](coulomb_prior_file, tmp_path)
