"""`nnp learn`: one tiny round end to end, resume, labelling with the charge, config errors."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT
from ase.io import read, write

from nnpcalc import modelfile
from nnpcalc.errors import OptionError

pytest.importorskip("lightning")

ELEMENTS = ["H", "C", "N", "O", "Al", "Cu"]  # conftest.make_model's
TINY = {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 4.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model_factory):
    from nnpcalc.training.reference import label

    folder = tmp_path_factory.mktemp("learn")
    model, _, _ = model_factory(folder / "m0.pt", heads=[{"kind": "energy_ensemble", "members": 4}])
    rng = np.random.default_rng(0)
    frames = []
    for cell in (bulk("Cu", "fcc", a=3.6), bulk("Cu", "fcc", a=3.6, cubic=True)) * 3:
        cell.positions += rng.normal(scale=0.05, size=cell.positions.shape)
        frames.append(label(cell, EMT(), "EMT"))
    write(folder / "bulk.extxyz", frames)
    start = fcc100("Cu", (2, 2, 2), vacuum=4.0)
    start.info = {"subset": "Cu(100)"}
    write(folder / "starts.extxyz", [start])
    test = label(start, EMT(), "EMT")
    test.info["subset"] = "Cu(100)"
    write(folder / "test.extxyz", [test])
    recipe = {"data": {"files": [], "labels": {"energy": "ref_energy", "forces": "ref_forces"},
                       "split": {"val": 0.2, "test": 0.0}},
              "architecture": {"elements": ELEMENTS, "backbone_kwargs": TINY, "head_hidden": 16,
                               "fidelities": ["default"]},
              "tasks": [{"output": "energy"}, {"output": "forces", "weight": 10},
                        {"output": "energy_ensemble", "metric": "nll", "weight": 0.1, "members": 4}],
              "trainer": {"max_epochs": 1, "batch_size": 4}}
    config = {"model": str(model), "recipe": recipe, "data": [str(folder / "bulk.extxyz")],
              "structures": [str(folder / "starts.extxyz")], "test": [str(folder / "test.extxyz")],
              "rounds": 1, "frames_per_round": 2,
              "explore": {"temperatures_K": [500.0], "steps": 10, "sample_every": 5, "relax": False}}
    return folder, config


def test_one_round_explores_labels_finetunes_and_resumes(setup):
    from nnpcalc.workflows.learn import learn, round_config, load_config

    folder, config = setup
    out = folder / "run"
    records = learn(config, out)
    assert [r["round"] for r in records] == [0, 1]
    assert records[0]["pool_frames"] == 6 and records[0]["labelled_frames"] == 2
    assert records[1]["pool_frames"] == 8 and records[1]["labelled_frames"] == 0  # the last round labels nothing
    assert records[0]["exploration"]["runs"] == 1 and records[0]["exploration"]["candidates"] == 2
    assert set(records[0]["test"]) == {"all", "Cu(100)"}
    assert "forces" in records[0]["test"]["all"]["uncertainty"]
    labelled = read(out / "round-000" / "labelled.extxyz", ":")
    for frame in labelled:  # the labels are EMT's for that geometry
        atoms = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=frame.pbc, calculator=EMT())
        assert frame.info["ref_energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        assert frame.info["max_forces_uncertainty"] > 0
    assert round_config(load_config(config), out, 1)["init_from"].endswith("round-000/model.pt")
    provenance = modelfile.read_metadata(out / "round-001" / "model.pt")["provenance"]
    assert provenance["uncertainty"]["forces"]["calibration"] > 0  # calibrated on the validation split
    assert (out / "rounds.png").stat().st_size > 0
    stamp = (out / "round-001" / "model.pt").stat().st_mtime_ns
    assert learn(None, out) == records  # resume: every step is found done
    assert (out / "round-001" / "model.pt").stat().st_mtime_ns == stamp
    with pytest.raises(OptionError, match="another config"):
        learn(config | {"frames_per_round": 3}, out)


def test_labels_charged_frames_with_their_charge():
    pytest.importorskip("tblite")
    from nnpcalc.workflows.learn import label

    hydroxide = Atoms("OH", [[0, 0, 0], [0, 0, 0.97]], info={"charge": -1.0})
    (frame,) = label([hydroxide], "GFN2-xTB")
    assert frame.info["charge"] == -1.0
    assert frame.arrays["ref_charges"].sum() == pytest.approx(-1.0, abs=1e-6)


def test_config_errors_name_the_problem(setup, tmp_path):
    from nnpcalc.workflows.learn import learn, load_config

    _, config = setup
    with pytest.raises(OptionError, match="unknown learn config key"):
        load_config(config | {"round": 2})
    with pytest.raises(OptionError, match="explore"):
        load_config(config | {"explore": {"steps": 0}})
    with pytest.raises(OptionError, match="no learn.json"):
        learn(None, tmp_path)
    plain = json.loads(json.dumps(config))
    plain["model"] = str(tmp_path / "plain.pt")
    from nnpcalc.nn.build import Architecture, build_potential, export

    arch = Architecture(elements=ELEMENTS, backbone_kwargs=TINY)
    export(build_potential(arch), arch, plain["model"])
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        learn(plain, tmp_path / "run")


def test_init_from_loads_the_whole_potential_or_named_parts(tmp_path):
    import torch

    from nnpcalc.errors import DataError
    from nnpcalc.nn.build import Architecture, build_potential, export
    from nnpcalc.training.module import PotentialModule, initialise_from

    torch.manual_seed(0)
    arch = {"elements": ["Cu"], "backbone_kwargs": TINY, "head_hidden": 8,
            "heads": ["energy", {"kind": "denoise", "name": "noise"}]}  # a denoising pre-training
    pretrained = build_potential(Architecture(**arch))
    path = export(pretrained, Architecture(**arch), tmp_path / "pre.pt", dtype=torch.float64)
    config = {"architecture": arch | {"heads": [{"kind": "energy_ensemble", "members": 4}]},
              "tasks": [{"output": "energy"}], "trainer": {"dtype": "float64"}}
    module = PotentialModule(config)
    head_before = module.potential.heads[0].net.first.weight.clone()
    with pytest.raises(DataError, match="parts"):
        initialise_from(module, str(path))  # other heads: the whole potential does not fit
    assert initialise_from(module, {"path": str(path), "parts": ["backbone"]}) is False
    for key, value in pretrained.backbone.state_dict().items():
        torch.testing.assert_close(module.potential.backbone.state_dict()[key], value.double())
    torch.testing.assert_close(module.potential.heads[0].net.first.weight, head_before)


def test_a_frame_the_reference_fails_on_is_skipped(monkeypatch):
    from nnpcalc.training import reference
    from nnpcalc.workflows.learn import label

    class Failing(EMT):
        def calculate(self, *args, **kwargs):
            raise RuntimeError("SCF did not converge")

    monkeypatch.setattr(reference, "calculator", lambda method, charge: Failing())
    with pytest.warns(UserWarning, match="could not label frame 0.*SCF"):
        assert label([bulk("Cu", "fcc", a=3.6)], "EMT") == []


def test_exploration_stops_on_a_pair_closer_than_min_distances():
    """Two waters with O–O 1.8 Å: not fused by covalent radii (0.66 Å), fused by min_distances O-O 2.0."""
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator

    from nnpcalc.workflows.exploration import ExploreSettings, why_stop

    pair = molecule("H2O") + molecule("H2O")
    pair.positions[3:] += [0.0, 0.0, 1.8]  # the same water 1.8 Å above: O–O 1.8 Å, closest O–H 1.4 Å
    pair.calc = SinglePointCalculator(pair, energy=0.0, forces=np.zeros((6, 3)))
    assert why_stop(pair, {}, ExploreSettings(stop_factor=0)) is None
    reason = why_stop(pair, {}, ExploreSettings(stop_factor=0, min_distances={"O-O": 2.0}))
    assert reason is not None and "O-O at 1.80 Å" in reason
    assert why_stop(pair, {}, ExploreSettings(stop_factor=0, min_distances={"O-O": 1.7, "H-O": 0.5})) is None
    with pytest.raises(OptionError, match="min_distances"):
        ExploreSettings(min_distances={"O+O": 2.0})
