"""The non-equivariant backbone (cartesian-mpnn), rotation augmentation and the equivariance error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from nnpcalc import NNPCalculator, modelfile, testing
from nnpcalc.equivariance import equivariance_error, rotated
from nnpcalc.nn.build import rebuild
from nnpcalc.training.augment import random_orthogonal, rotate_batch
from nnpcalc.training.data import collate, to_item


@pytest.fixture(scope="module")
def cartesian(tmp_path_factory, model_factory):
    return model_factory(tmp_path_factory.mktemp("ne") / "cartesian.pt", backbone="cartesian-mpnn",
                         heads=("energy",), seed=3)[0]


def _cell():
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    atoms.set_cell(atoms.cell.array + [[0.0, 0.2, 0.1], [0.1, 0.0, -0.2], [0.3, 0.1, 0.0]], scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def test_full_path_on_a_periodic_cell(cartesian):
    """Energy, forces and stress through the model file: conservative, translation and image invariant."""
    calc = NNPCalculator(cartesian, dtype="float64")
    atoms = _cell()
    for check in (testing.check_forces(calc, atoms, 1e-6), testing.check_stress(calc, atoms, 1e-6),
                  testing.check_translation(calc, atoms, testing.TOLERANCES["float64"]),
                  testing.check_lattice_image(calc, atoms, testing.TOLERANCES["float64"]),
                  testing.check_supercell(calc, atoms, testing.TOLERANCES["float64"])):
        assert check.passed, check


def test_bare_torch_jit_load_and_rebuild_agree(cartesian):
    """The file loads with bare torch.jit.load and equals the eager module rebuilt from its weights."""
    atoms = _cell()
    args = (torch.tensor(atoms.positions), torch.tensor(atoms.numbers), torch.tensor(atoms.cell.array),
            torch.tensor(atoms.pbc), torch.tensor(0.0))
    bare = torch.jit.load(str(cartesian))
    assert modelfile.read_metadata(cartesian)["backbone"] == "cartesian-mpnn"
    scripted = bare(*args)
    eager = rebuild(cartesian)(*args)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(scripted[key], eager[key], rtol=1e-5, atol=1e-6)


def test_equivariance_error_detects_the_non_equivariant_model(cartesian, model_file):
    atoms = [_cell(), testing.reference_structures()["ethanol"]]
    bad = equivariance_error(NNPCalculator(cartesian, dtype="float64"), atoms, rotations=3)
    good = equivariance_error(NNPCalculator(model_file, dtype="float64"), atoms, rotations=3)
    assert bad.forces_relative > 1e-3 and bad.energy_spread > 1e-7, bad
    assert good.forces_relative < 1e-9 and good.energy_spread < 1e-10, good


def _batch():
    from ase.build import molecule

    frames = [_cell(), molecule("H2O")]
    rng = np.random.default_rng(0)
    labels = [{"energy": np.array(-1.0), "forces": rng.normal(size=(len(f), 3)), "stress": rng.normal(size=(3, 3)),
               "dipole": rng.normal(size=3)} for f in frames]
    return collate([to_item(f, lab, 4.0, 0) for f, lab in zip(frames, labels)])


def test_augmentation_turns_labels_with_their_structure():
    batch = _batch()
    rot = random_orthogonal(2)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3, dtype=rot.dtype).expand(2, 3, 3), atol=1e-12)
    out = rotate_batch(batch, rot)
    per_atom = rot[batch["batch"]]
    for b in range(2):
        atoms = batch["batch"] == b
        R = rot[b]
        torch.testing.assert_close(out["positions"][atoms], batch["positions"][atoms] @ R.T)
        torch.testing.assert_close(out["labels"]["forces"][atoms], batch["labels"]["forces"][atoms] @ R.T)
        torch.testing.assert_close(out["cell"][b], batch["cell"][b] @ R.T)
        torch.testing.assert_close(out["labels"]["stress"][b], R @ batch["labels"]["stress"][b] @ R.T)
        torch.testing.assert_close(out["labels"]["dipole"][b], R @ batch["labels"]["dipole"][b])
    torch.testing.assert_close(out["labels"]["energy"], batch["labels"]["energy"])
    assert not torch.equal(out["positions"], batch["positions"])  # a copy: the input batch is kept
    assert per_atom.shape == (len(batch["numbers"]), 3, 3)


def test_augmented_labels_are_what_an_equivariant_model_predicts(model_file):
    """The rotated frame's forces and stress as a TensorNet computes them on the rotated frame."""
    atoms = _cell()
    calc = NNPCalculator(model_file, dtype="float64")
    frame = atoms.copy()
    frame.calc = calc
    labels = {"energy": np.array(frame.get_potential_energy()), "forces": frame.get_forces(),
              "stress": frame.get_stress(voigt=False)}
    batch = collate([to_item(atoms, labels, 4.0, 0)])
    rot = random_orthogonal(1, reflections=False)
    out = rotate_batch(batch, rot)
    turned = rotated(atoms, rot[0].numpy())
    turned.calc = calc
    np.testing.assert_allclose(out["positions"].numpy(), turned.positions, atol=1e-12)
    np.testing.assert_allclose(out["labels"]["forces"].numpy(), turned.get_forces(), atol=1e-9)
    np.testing.assert_allclose(out["labels"]["stress"][0].numpy(), turned.get_stress(voigt=False), atol=1e-9)


def test_augment_rotations_is_a_trainer_option():
    from nnpcalc.training.train import TRAINER_DEFAULTS, load_config

    assert TRAINER_DEFAULTS["augment_rotations"] is False
    config = load_config({"name": "x", "data": {"files": []}, "tasks": [], "trainer": {"augment_rotations": True}})
    assert config["trainer"]["augment_rotations"] is True


def test_a_batch_without_the_label_needs_no_output():
    """A batch of clusters has no stress label and the model writes no stress: no loss term, no error."""
    from nnpcalc.training.tasks import Task

    out = {"energy": torch.zeros(2, requires_grad=True)}
    batch = {"mask": {"stress": torch.tensor([False, False])}, "labels": {"stress": torch.zeros(2, 3, 3)}}
    assert float(Task(output="stress").loss(out, batch)) == 0.0
    batch["mask"]["stress"] = torch.tensor([True, False])
    with pytest.raises(Exception, match="writes no such output"):
        Task(output="stress").loss(out, batch)


def test_denoise_pretrain_then_augmented_fine_tune_end_to_end(tmp_path):
    """Two recipes: denoising on unlabelled frames, then a rotation-augmented fine-tune of that
    backbone (init_from parts) whose model file and card carry the equivariance error."""
    pytest.importorskip("lightning")
    from ase.io import write

    from ase.calculators.emt import EMT

    from nnpcalc.training.train import train

    frames = []
    for k in range(10):  # rattled, strained 4-atom Cu cells with EMT labels
        atoms = bulk("Cu", "fcc", a=3.55 + 0.02 * k, cubic=True)
        atoms.rattle(0.1, seed=k)
        atoms.calc = EMT()
        atoms.info["ref_energy"], atoms.info["ref_stress"] = atoms.get_potential_energy(), atoms.get_stress()
        atoms.arrays["ref_forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    path = tmp_path / "emt.extxyz"
    write(path, frames, format="extxyz")
    arch = {"backbone": "cartesian-mpnn", "head_hidden": 8,
            "backbone_kwargs": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "cutoff_upper": 4.0}}
    common = {"seed": 0, "architecture": arch, "trainer": {"max_epochs": 1, "batch_size": 8, "progress": False}}
    pre = train(common | {
        "name": "pre", "run_dir": str(tmp_path / "pre"), "output": str(tmp_path / "pre.pt"),
        "data": {"files": [str(path)], "labels": {}, "split": {"val": 0.2, "test": 0.0}},
        "tasks": [{"output": "noise", "head": "denoise", "noise_std": 0.05}]})
    tune = train(common | {
        "name": "tune", "run_dir": str(tmp_path / "tune"), "output": str(tmp_path / "tune.pt"), "summary": "t",
        "data": {"files": [str(path)], "labels": {"energy": "ref_energy", "forces": "ref_forces", "stress": "ref_stress"}},
        "tasks": [{"output": "energy"}, {"output": "forces", "weight": 10}, {"output": "stress", "weight": 10}],
        "init_from": {"path": pre["model"], "parts": ["backbone"]},
        "trainer": common["trainer"] | {"augment_rotations": True}})
    assert np.isfinite(tune["test_metrics"]["test_forces_mae"])
    error = modelfile.read_metadata(tune["model"])["provenance"]["equivariance"]
    assert error["forces_relative"] > 1e-4 and error["rotations"] == 8, error
    assert "not rotation-equivariant" in (tmp_path / "tune.md").read_text()
