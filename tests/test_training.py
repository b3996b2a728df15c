"""Training: reference data, validation before training, composable tasks, resume, export."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.io import write

from nnpcalc import NNPCalculator, modelfile
from nnpcalc.errors import DataError
from nnpcalc.training import reference
from nnpcalc.training.train import fit_atomrefs, train

pytest.importorskip("tblite")
pytest.importorskip("lightning")

TINY_ARCH = {"backbone_kwargs": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0},
             "head_hidden": 8}
QUIET = {"max_epochs": 2, "batch_size": 8, "progress": False}


@pytest.fixture(scope="module")
def molecules(tmp_path_factory):
    """GFN2 ethanol and water frames, and GFN1 labels of the same geometries."""
    calc = reference.gfn2()
    geometries = reference.md_frames(molecule("CH3CH2OH"), calc, 12, 4, 500.0, seed=0)
    geometries += reference.md_frames(molecule("H2O"), calc, 8, 4, 500.0, seed=1)
    gfn2 = [reference.label(g, calc, "GFN2-xTB") for g in geometries]
    gfn1 = [reference.label(g, reference.gfn1(), "GFN1-xTB") for g in geometries]
    folder = tmp_path_factory.mktemp("data")
    write(folder / "gfn2.extxyz", gfn2, format="extxyz")
    write(folder / "both.extxyz", gfn2 + gfn1, format="extxyz")
    return folder


@pytest.fixture(scope="module")
def metals(tmp_path_factory):
    frames = reference.emt_dataset(0, per_cell=1, md_frames_per_metal=2)[::3]
    path = tmp_path_factory.mktemp("emt") / "emt.extxyz"
    write(path, frames, format="extxyz")
    return path


def config(path, tmp_path, tasks=None, data=None, **extra):
    labels = {"energy": "ref_energy", "forces": "ref_forces", "charges": "ref_charges", "dipole": "ref_dipole"}
    return {
        "name": "t", "seed": 0, "data": {"files": [str(path)], "labels": labels} | (data or {}),
        "architecture": dict(TINY_ARCH), "run_dir": str(tmp_path / "run"),
        "tasks": tasks or [{"output": "energy", "weight": 1}, {"output": "forces", "weight": 10},
                           {"output": "charges", "weight": 1}],
        "trainer": dict(QUIET), **extra,
    }


def test_reference_labels_are_consistent(molecules):
    from ase.io import read

    f = read(molecules / "gfn2.extxyz", 0)
    assert f.arrays["ref_forces"].shape == (len(f), 3)
    assert f.arrays["ref_charges"].sum() == pytest.approx(0.0, abs=1e-6)


def test_atomrefs_recover_a_linear_model():
    frames = [molecule(name) for name in ("CH4", "H2O", "CO", "CH3CH2OH", "H2")]
    truth = {1: -10.0, 6: -40.0, 8: -70.0}
    energies = [sum(truth[z] for z in f.numbers) for f in frames]
    assert fit_atomrefs(frames, energies, ["H", "C", "O"]) == pytest.approx(truth)


def test_train_exports_a_model_that_reproduces_the_checkpoint(molecules, tmp_path):
    from nnpcalc.training.module import PotentialModule

    summary = train(config(molecules / "gfn2.extxyz", tmp_path, output=str(tmp_path / "m.pt"), summary="A test model."))
    card = (tmp_path / "m.md").read_text()
    assert "A test model." in card and "| forces |" in card and "nnp train" in card
    meta = modelfile.read_metadata(summary["model"])
    prov = meta["provenance"]
    assert prov["data"][0]["sha256"] and prov["split"]["train"] == 16
    assert "forces_mae" in prov["test_metrics"] and "charges_rmse" in prov["test_metrics"]
    assert (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").is_file()
    module = PotentialModule.load_from_checkpoint(str(tmp_path / "run" / "checkpoints" / "best.ckpt"))
    atoms = molecule("CH3CH2OH")
    atoms.calc = NNPCalculator(summary["model"], dtype="float32")
    t = torch.tensor
    ref = module.potential.eval()(t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(np.zeros((3, 3))),
                                  t([False] * 3), t(0.0))
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"].item(), abs=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"].detach().numpy(), atol=1e-5)


@pytest.mark.slow  # three training runs (119 s measured on a busy 2-core machine)
def test_resume_reproduces_an_uninterrupted_run(molecules, tmp_path):
    whole = train(config(molecules / "gfn2.extxyz", tmp_path / "a", trainer=QUIET | {"max_epochs": 4}))
    train(config(molecules / "gfn2.extxyz", tmp_path / "b", trainer=QUIET | {"max_epochs": 2}))
    resumed = train(config(molecules / "gfn2.extxyz", tmp_path / "b", trainer=QUIET | {"max_epochs": 4}))
    a = torch.load(f"{whole['run_dir']}/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(f"{resumed['run_dir']}/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-7, msg=key)


def test_missing_labels_are_masked(molecules, tmp_path):
    from ase.io import read

    frames = read(molecules / "gfn2.extxyz", ":")
    for f in frames[::2]:
        del f.arrays["ref_forces"]
        del f.arrays["ref_charges"]
    path = tmp_path / "partial.extxyz"
    write(path, frames, format="extxyz")
    summary = train(config(path, tmp_path))
    assert np.isfinite(summary["test_metrics"]["test_forces_mae"])


def test_every_seed_task_trains(metals, tmp_path):
    from ase.io import read

    frames = read(metals, ":")
    for k, f in enumerate(frames):
        f.info["gap"] = float(len(f)) * 0.1
        f.info["big"] = int(len(f) > 4)
    path = tmp_path / "tasks.extxyz"
    write(path, frames, format="extxyz")
    tasks = [
        {"output": "energy"}, {"output": "forces", "weight": 10}, {"output": "stress", "weight": 100},
        {"output": "gap", "head": "scalar"}, {"output": "big", "head": "classifier", "metric": "bce"},
        {"output": "spacegroup", "head": "classifier", "num_classes": 230, "metric": "ce"},
        {"output": "forces_direct", "head": "direct_forces", "label": "forces"},
        {"output": "noise", "head": "denoise", "noise_std": 0.05},
    ]
    data = {"labels": {"energy": "ref_energy", "forces": "ref_forces", "stress": "ref_stress", "gap": "gap", "big": "big"},
            "spacegroup": True}
    summary = train(config(path, tmp_path, tasks=tasks, data=data, output=str(tmp_path / "all.pt")))
    metrics = summary["test_metrics"]
    for key in ("test_stress_mae", "test_gap_mae", "test_big_accuracy", "test_spacegroup_accuracy",
                "test_forces_direct_mae", "test_noise_mae"):
        assert np.isfinite(metrics[key]), key
    assert set(modelfile.read_metadata(summary["model"])["outputs"]) >= {"gap", "big", "spacegroup", "noise"}


def test_multi_fidelity_model_is_selectable(molecules, tmp_path):
    cfg = config(molecules / "both.extxyz", tmp_path, output=str(tmp_path / "mf.pt"), data={"fidelity_key": "method"})
    cfg["architecture"]["context_channels"] = 4
    summary = train(cfg)
    assert modelfile.read_metadata(summary["model"])["fidelities"] == ["GFN1-xTB", "GFN2-xTB"]
    energies = []
    for fidelity in ("GFN1-xTB", "GFN2-xTB"):
        atoms = molecule("CH3CH2OH")
        atoms.calc = NNPCalculator(summary["model"], fidelity=fidelity)
        energies.append(atoms.get_potential_energy())
    assert abs(energies[0] - energies[1]) > 1.0  # each method keeps its own energy zero


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.update(colour="red"), "unknown config key"),
    (lambda c: c["trainer"].update(epochs=3), "unknown trainer option"),
    (lambda c: c["data"].update(energy_unit="Rydberg"), "unknown energy_unit"),
    (lambda c: c["data"]["labels"].update(energy="no_such_key"), "no frame carries label 'energy'"),
    (lambda c: c["architecture"].update(elements=["H", "C"]), "lacks"),
])
def test_bad_config_is_refused_before_training(molecules, tmp_path, edit, match):
    cfg = config(molecules / "gfn2.extxyz", tmp_path)
    edit(cfg)
    with pytest.raises(DataError, match=match):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_nan_and_misshapen_labels_are_refused(molecules, tmp_path):
    from ase.io import read

    frames = read(molecules / "gfn2.extxyz", ":")
    frames[3].info["ref_energy"] = float("nan")
    write(tmp_path / "nan.extxyz", frames, format="extxyz")
    with pytest.raises(DataError, match=r"frame 3: label 'energy'.*NaN"):
        train(config(tmp_path / "nan.extxyz", tmp_path))
    frames = read(molecules / "gfn2.extxyz", ":")
    frames[2].info["ref_dipole"] = [1.0, 2.0]
    write(tmp_path / "shape.extxyz", frames, format="extxyz")
    with pytest.raises(DataError, match=r"label 'dipole'.*shape \(2,\)"):
        train(config(tmp_path / "shape.extxyz", tmp_path))


def test_empty_dataset(tmp_path):
    (tmp_path / "empty.extxyz").write_text("")
    with pytest.raises(DataError):
        train(config(tmp_path / "empty.extxyz", tmp_path))


@pytest.mark.slow  # two processes, each starts Python, torch and Lightning (60 s, busy 2 cores)
def test_ddp_with_two_cpu_processes(molecules, tmp_path):
    import yaml

    cfg = config(molecules / "gfn2.extxyz", tmp_path, trainer=QUIET | {"max_epochs": 1, "strategy": "ddp"})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "nnpcalc", "train", str(path), "--devices", "2"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size=2" in result.stderr or "GLOBAL_RANK: 1" in result.stderr or "MEMBER: 2/2" in result.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 1


def test_labels_from_an_ase_database_and_calculator_results(tmp_path):
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read

    from nnpcalc.training.data import DataSpec, validate

    frames = []
    for k, atoms in enumerate(reference.metal_cells("Cu", np.random.default_rng(0))[:4]):
        atoms.calc = EMT()
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                           stress=atoms.get_stress())
        frames.append(atoms)
    write(tmp_path / "cu.db", frames)
    spec = DataSpec(files=[str(tmp_path / "cu.db")], labels={"energy": "energy", "forces": "forces", "stress": "stress"})
    labels = validate(read(tmp_path / "cu.db", ":"), spec)
    assert labels[1]["stress"].shape == (3, 3) and labels[0]["energy"] == pytest.approx(frames[0].get_potential_energy())


def test_grouped_split_keeps_each_group_in_one_part(molecules):
    from ase.io import read

    from nnpcalc.training.data import DataSpec, split_indices

    frames = read(molecules / "gfn2.extxyz", ":")
    spec = DataSpec(files=[], group_by="formula", split={"val": 0.5, "test": 0.0})
    parts = split_indices(frames, spec, seed=0)
    formulas = {name: {frames[i].get_chemical_formula() for i in idx} for name, idx in parts.items()}
    assert not formulas["train"] & formulas["val"]


def test_periodic_water_box_labels_have_stress():
    frames = reference.water_box_dataset(seed=0, frames=1, n=1)
    assert frames[0].info["ref_stress"].shape == (3, 3) and frames[0].pbc.all()
    assert frames[0].arrays["ref_charges"].sum() == pytest.approx(0.0, abs=1e-6)


def test_card_cost_line_for_a_checkpoint_of_an_unfinished_run():
    from nnpcalc.training.card import cost_line

    unfinished = {"epochs": None, "seconds": None, "machine": "x86_64", "threads": 1, "torch": "2.13.0"}
    assert "unfinished run" in cost_line(unfinished)
    done = dict(unfinished, epochs=12, seconds=90.0)
    assert cost_line(done).startswith("12 epochs in 1.5 min on x86_64, 1 torch threads")


def _epoch_column(run, name):
    import csv

    with open(run / "logs" / "version_0" / "metrics.csv") as handle:
        return [float(row[name]) for row in csv.DictReader(handle) if row.get(name)]


@pytest.mark.parametrize("monitor,logged", [
    ("val_forces_mae", "val_forces_mae"),
    ({"val_energy_mae": 1.0, "val_forces_mae": 10.0}, "val_monitor"),
])
def test_monitor_drives_best_checkpoint(molecules, tmp_path, monitor, logged):
    cfg = config(molecules / "gfn2.extxyz", tmp_path)
    cfg["trainer"].update(max_epochs=4, monitor=monitor)
    train(cfg)
    run = tmp_path / "run"
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    (best,) = [v for k, v in state["callbacks"].items()
               if k.startswith("ModelCheckpoint") and v["best_model_path"].endswith("best.ckpt")]
    assert best["monitor"] == logged and state["callbacks"][f"EarlyStopping{{'monitor': '{logged}', 'mode': 'min'}}"]
    assert state["lr_schedulers"] and state["hyper_parameters"]["config"]["trainer"]["monitor"] == monitor
    scores = _epoch_column(run, logged)
    assert len(scores) == 4 and float(best["best_model_score"]) == pytest.approx(min(scores), rel=1e-5)
    if isinstance(monitor, dict):  # the logged sum is the weighted sum of its parts
        parts = {name: _epoch_column(run, name) for name in monitor}
        expected = [sum(w * parts[n][i] for n, w in monitor.items()) for i in range(4)]
        assert scores == pytest.approx(expected, rel=1e-5)
    assert state["epoch"] == int(np.argmin(scores))  # best.ckpt holds the weights of that epoch
    from nnpcalc.training.module import PotentialModule

    module = PotentialModule.load_from_checkpoint(str(run / "checkpoints" / "best.ckpt"))
    assert module.configure_optimizers()["lr_scheduler"]["monitor"] == logged


@pytest.mark.parametrize("monitor", ["val_force_mae", {"val_forces_mae": -1.0}, {"val_loss": 1.0}, 3])
def test_unknown_monitor_is_refused_before_training(molecules, tmp_path, monitor):
    cfg = config(molecules / "gfn2.extxyz", tmp_path)
    cfg["trainer"]["monitor"] = monitor
    with pytest.raises(DataError, match=r"trainer.monitor.*val_forces_mae"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_adding_a_data_file_never_moves_a_frame_of_the_files_before_it(molecules, tmp_path):
    """Each file is split on its own: fine-tuning on [a, b] keeps a's test frames unseen."""
    import shutil

    from nnpcalc.training.data import DataSpec, read_frames, split_indices

    first = molecules / "gfn2.extxyz"
    second = tmp_path / "more.extxyz"
    shutil.copy(first, second)
    split = {"val": 0.2, "test": 0.2}
    alone = DataSpec(files=[str(first)], split=split)
    both = DataSpec(files=[str(first), str(second)], split=split)
    before = split_indices(read_frames(alone), alone, seed=3)
    frames = read_frames(both)
    after = split_indices(frames, both, seed=3)
    n = len(read_frames(alone))
    for name in ("train", "val", "test"):
        assert [i for i in after[name] if i < n] == before[name]
        # the copy is split with the same seed, so it lands the same way (shifted by n)
        assert [i - n for i in after[name] if i >= n] == before[name]
    assert {frames[0].info["data_file"], frames[-1].info["data_file"]} == {str(first), str(second)}
