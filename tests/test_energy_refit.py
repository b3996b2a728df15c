"""Per-element energy zero refitted on the train split (nnpcalc.training.energy_refit)."""

import numpy as np
import pytest
import torch
from ase.io import write

from nnpcalc import NNPCalculator
from nnpcalc.runtime import Model
from nnpcalc.training import reference
from nnpcalc.training.energy_refit import ATOMREF_KEY, main, refit_energy_zero

pytest.importorskip("lightning")

SUBSETS = ("bulk", "md")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny EMT data file (two subsets, one alloy frame), its recipe, and a 1-epoch checkpoint."""
    from ase.calculators.emt import EMT

    from nnpcalc.training.train import train

    frames = reference.emt_dataset(0, per_cell=1, md_frames_per_metal=2)[::3]
    for k, f in enumerate(frames):
        f.info["subset"] = SUBSETS[k % 2]
        f.info["group"] = k
    alloy = next(f for f in frames if len(f) > 1).copy()
    alloy.numbers[0] = 28 if alloy.numbers[0] != 28 else 29
    assert len(set(alloy.numbers)) == 2
    alloy = reference.label(alloy, EMT(), "EMT")
    alloy.info.update(subset="bulk", group=len(frames))
    folder = tmp_path_factory.mktemp("refit")
    write(folder / "emt.extxyz", frames + [alloy], format="extxyz")
    recipe = {
        "name": "t", "seed": 0,
        "data": {"files": [str(folder / "emt.extxyz")], "group_by": "group", "split": {"val": 0.2, "test": 0.2},
                 "labels": {"energy": "ref_energy", "forces": "ref_forces"}},
        "architecture": {"elements": sorted({s for f in frames for s in f.get_chemical_symbols()}),
                         "backbone_kwargs": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0},
                         "head_hidden": 8},
        "tasks": [{"output": "energy", "weight": 1}, {"output": "forces", "weight": 10}],
        "trainer": {"max_epochs": 1, "batch_size": 8, "progress": False},
        "run_dir": str(folder / "run"), "output": str(folder / "model.pt"),
    }
    train(dict(recipe))
    return recipe, folder / "run" / "checkpoints" / "best.ckpt", folder


def _export(ckpt, path):
    from nnpcalc.nn.build import export
    from nnpcalc.training.module import PotentialModule

    module = PotentialModule.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    return export(module.potential, module.architecture, path)


def _train_frames(recipe):
    from nnpcalc.training.data import DataSpec, read_frames, split_indices

    spec = DataSpec(**recipe["data"])
    frames = read_frames(spec, recipe["seed"])
    split = split_indices(frames, spec, recipe["seed"])
    return [frames[i] for i in split["train"]], frames


def _per_atom_residuals(model, frames):
    calc = NNPCalculator(Model(str(model), artifact="torchscript"))
    out = {}
    for f in frames:
        if len(set(f.numbers)) != 1:
            continue
        a = f.copy()
        a.calc = calc
        out.setdefault(f.get_chemical_symbols()[0], []).append((f.info["ref_energy"] - a.get_potential_energy()) / len(f))
    return out


def test_shift_is_the_mean_train_residual_of_single_element_frames(run, tmp_path):
    recipe, ckpt, _ = run
    report = refit_energy_zero(recipe, ckpt, tmp_path / "out.ckpt", subsets=["bulk"])
    train, everything = _train_frames(recipe)
    assert len(train) < len(everything)  # the split holds val/test frames the refit must not see
    expected = _per_atom_residuals(_export(ckpt, tmp_path / "in.pt"),
                                   [f for f in train if f.info["subset"] == "bulk"])
    assert set(report) == set(expected)
    for symbol, values in expected.items():
        assert report[symbol]["frames"] == len(values)
        assert report[symbol]["shift_eV"] == pytest.approx(np.mean(values), abs=1e-12)
    old = torch.load(ckpt, weights_only=True, map_location="cpu")["state_dict"]
    new = torch.load(tmp_path / "out.ckpt", weights_only=True, map_location="cpu")["state_dict"]
    assert old.keys() == new.keys()
    for key in old:
        if key != ATOMREF_KEY:
            assert torch.equal(old[key], new[key]), key
    from ase.data import atomic_numbers

    delta = (new[ATOMREF_KEY] - old[ATOMREF_KEY]).double()
    for symbol, r in report.items():
        assert delta[0, atomic_numbers[symbol]].item() == pytest.approx(r["shift_eV"], abs=1e-6)
    others = [z for z in range(delta.shape[1]) if z not in {atomic_numbers[s] for s in report}]
    assert not delta[:, others].any()


def test_forces_unchanged_bitwise_energies_shift_per_element(run, tmp_path):
    recipe, ckpt, _ = run
    report = refit_energy_zero(recipe, ckpt, tmp_path / "out.ckpt")
    before, after = _export(ckpt, tmp_path / "a.pt"), _export(tmp_path / "out.ckpt", tmp_path / "b.pt")
    _, frames = _train_frames(recipe)
    ca, cb = (NNPCalculator(Model(str(p), artifact="torchscript")) for p in (before, after))
    for f in frames[:4] + [g for g in frames if len(set(g.numbers)) > 1]:
        a, b = f.copy(), f.copy()
        a.calc, b.calc = ca, cb
        assert np.array_equal(a.get_forces(), b.get_forces())
        expected = sum(report[s]["shift_eV"] for s in f.get_chemical_symbols())
        assert b.get_potential_energy() - a.get_potential_energy() == pytest.approx(expected, abs=1e-4)


def test_only_train_frames_of_the_chosen_subset_and_file(run, tmp_path, capsys):
    recipe, ckpt, folder = run
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = sorted(p.name for p in tmp_path.iterdir())
    main([str(path), str(ckpt), str(tmp_path / "out.ckpt"), "--subsets", "md",
          "--data-file", recipe["data"]["files"][0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["out.ckpt"])  # nothing else written
    train, _ = _train_frames(recipe)
    md = [f for f in train if f.info["subset"] == "md" and len(set(f.numbers)) == 1]
    printed = capsys.readouterr().out
    counts = {line.split(":")[0]: int(line.split()[1]) for line in printed.splitlines() if "train frames" in line}
    expected = {}
    for f in md:
        expected[f.get_chemical_symbols()[0]] = expected.get(f.get_chemical_symbols()[0], 0) + 1
    assert counts == expected
    with pytest.raises(ValueError, match="no single-element"):
        refit_energy_zero(recipe, ckpt, tmp_path / "x.ckpt", data_file="elsewhere.extxyz")
    alloys = [f for f in _train_frames(recipe)[1] if len(set(f.numbers)) > 1]
    assert len(alloys) == 1
    with pytest.raises(ValueError, match="no single-element"):  # an alloy frame never counts
        refit_energy_zero(recipe, ckpt, tmp_path / "x.ckpt", frames=alloys)
    assert not (tmp_path / "x.ckpt").exists()
