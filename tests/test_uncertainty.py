"""The shallow-ensemble uncertainty: outputs in the file, derivatives, calibration, serving, selection."""

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111

from nnpcalc import NNPCalculator, modelfile
from nnpcalc.errors import UncertaintyWarning
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.nn.uncertainty import far_outside, scores, summarise
from nnpcalc.runtime import Model
from nnpcalc.testing import random_rotation

TINY = {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0}


def ensemble_model(path, members=4, seed=0, provenance=None):
    torch.manual_seed(seed)
    arch = Architecture(elements=["Cu", "Al"], backbone_kwargs=TINY, head_hidden=8, fidelities=["EMT"],
                        heads=[{"kind": "energy_ensemble", "members": members}])
    potential = build_potential(arch)
    with torch.no_grad():
        potential.heads[0].atomref.uniform_(-4.0, -3.0)
        potential.heads[0].energy_calibration.fill_(3.0)
        potential.heads[0].forces_calibration.fill_(2.0)
    return export(potential, arch, path, provenance=provenance)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return ensemble_model(tmp_path_factory.mktemp("unc") / "ens.pt")


def cu_cell(seed=1):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=seed)
    return atoms


def test_metadata_declares_the_outputs_and_bare_torch_serves_them(model_path):
    outputs = modelfile.read_metadata(model_path)["outputs"]
    assert outputs["energy_uncertainty"] == {"shape": "", "unit": "eV", "per_atom": False}
    assert outputs["forces_uncertainty"] == {"shape": "N", "unit": "eV/Angstrom", "per_atom": True}
    module = torch.jit.load(str(model_path), _extra_files={"metadata.json": ""}).double()
    atoms = cu_cell()
    t = torch.tensor
    out = module(t(atoms.positions), t(atoms.numbers), t(atoms.cell.array), t(atoms.pbc), t(0.0))
    members = out["energy_ensemble"]
    assert members.shape == (4,) and "forces_uncertainty" not in out  # on request only
    torch.testing.assert_close(out["energy"], members.mean())
    torch.testing.assert_close(out["energy_uncertainty"], 3.0 * members.std(unbiased=False))


def member_energies(model, atoms):
    (out,) = model.compute([atoms], forces=False, stress=False)
    return out["energy_ensemble"]


def test_forces_uncertainty_is_the_spread_of_member_forces_by_finite_differences(model_path):
    model = Model(model_path, dtype="float64")
    atoms = cu_cell()
    (out,) = model.compute([atoms], uncertainty=True)
    h, members = 1e-4, np.zeros((4, len(atoms), 3))
    for i in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            members[:, i, c] = -(member_energies(model, plus) - member_energies(model, minus)) / (2 * h)
    deviation = members - members.mean(0)
    expected = 2.0 * np.sqrt((deviation**2).mean(axis=(0, 2)))
    np.testing.assert_allclose(out["forces_uncertainty"], expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(out["forces"], members.mean(0), atol=1e-7)


def test_uncertainties_are_invariant_under_rotation(model_path):
    model = Model(model_path, dtype="float64")
    atoms = cu_cell()
    rotated = atoms.copy()
    rot = random_rotation(3)
    rotated.positions, rotated.cell = atoms.positions @ rot.T, atoms.cell.array @ rot.T
    (a,), (b,) = model.compute([atoms], uncertainty=True), model.compute([rotated], uncertainty=True)
    np.testing.assert_allclose(a["energy_uncertainty"], b["energy_uncertainty"], rtol=1e-9)
    np.testing.assert_allclose(a["forces_uncertainty"], b["forces_uncertainty"], rtol=1e-7, atol=1e-12)


def test_batched_equals_single_and_plain_models_ignore_the_request(model_path, model_file):
    model = Model(model_path, dtype="float64")
    structures = [cu_cell(1), fcc111("Cu", (2, 2, 2), vacuum=4.0)]
    batched = model.compute(structures, uncertainty=True)
    for atoms, out in zip(structures, batched):
        (single,) = model.compute([atoms], uncertainty=True)
        np.testing.assert_allclose(out["forces_uncertainty"], single["forces_uncertainty"], rtol=1e-8, atol=1e-12)
    (plain,) = Model(model_file).compute([bulk("Cu", "fcc", a=3.6)], uncertainty=True)
    assert "energy_uncertainty" not in plain and "forces_uncertainty" not in plain


def test_training_mode_keeps_the_graph_for_an_uncertainty_loss(model_path):
    from nnpcalc.nn.build import rebuild

    potential = rebuild(model_path).train()
    atoms = cu_cell()
    t = torch.tensor
    out = potential.forward_batch(t(atoms.positions), t(atoms.numbers), t(atoms.cell.array)[None], t(atoms.pbc)[None],
                                  t([0.0]), torch.zeros(len(atoms), dtype=torch.long), compute_uncertainty=True)
    out["forces_uncertainty"].sum().backward()
    assert potential.heads[0].net.weight.grad is not None


def test_calibration_recovers_the_scale_of_gaussian_errors():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 1.0, 20000)
    error = rng.normal(size=sigma.size) * 3.0 * sigma  # raw sigma 3x too small
    result = summarise(error, sigma)
    assert result["calibration"] == pytest.approx(3.0, rel=0.03)
    assert result["coverage_1sigma"] == pytest.approx(0.683, abs=0.02)
    assert result["coverage_2sigma"] == pytest.approx(0.954, abs=0.01)
    assert scores(error, 3.0 * sigma)["z_rms"] == pytest.approx(1.0, abs=0.03)
    assert result["rank_correlation"] > 0.3  # |error| grows with sigma


def test_nll_task_fits_spread_and_mean():
    from nnpcalc.training.tasks import Task, gaussian_nll, heads_for

    members = torch.tensor([[1.0, 3.0]])  # mean 2, variance 1
    assert float(gaussian_nll(members, torch.tensor([[4.0]]), floor=0.0)) == pytest.approx(0.5 * (0.0 + 4.0))
    tasks = [Task("energy"), Task("forces"), Task("energy_ensemble", metric="nll", members=6)]
    assert tasks[2].label == "energy"
    assert heads_for(tasks)[0] == {"kind": "energy_ensemble", "members": 6}
    with pytest.raises(ValueError, match="nll"):
        Task("energy", metric="nll")


def test_calculator_results_and_a_warning_far_outside(tmp_path):
    stats = {"energy": {"sigma_max": 1e-6}, "forces": {"sigma_max": 1e-6}}
    path = ensemble_model(tmp_path / "m.pt", provenance={"uncertainty": stats})
    atoms = cu_cell()
    atoms.calc = NNPCalculator(path, dtype="float64", warn_uncertainty=0)
    atoms.get_forces()
    assert atoms.calc.results["energy_uncertainty"] > 0 and "forces_uncertainty" not in atoms.calc.results
    assert atoms.calc.get_property("forces_uncertainty", atoms).shape == (len(atoms),)
    atoms.calc = NNPCalculator(path, dtype="float64", warn_uncertainty=5.0)
    with pytest.warns(UncertaintyWarning, match="far outside"):
        atoms.get_potential_energy()
    assert far_outside({"energy_uncertainty": 1e-9}, {"provenance": {"uncertainty": stats}}, 4, 5.0) is None


def test_selection_prefers_uncertain_and_diverse_frames():
    from nnpcalc.workflows.selection import select

    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    copies = [base.copy() for _ in range(6)]
    other = base.copy()
    other.rattle(0.3, seed=2)
    frames = copies + [other, base.copy()]
    scores_ = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.01])
    chosen = select(frames, scores_, 2, min_score=0.1)
    assert chosen[0] == 0 and chosen[1] == 6  # not a second copy of frame 0; frame 7 is too certain


def test_watch_flags_saves_and_stops(model_path, tmp_path):
    from nnpcalc.errors import OptionError
    from nnpcalc.workflows.uncertainty_watch import UncertaintyWatch

    atoms = cu_cell()
    atoms.calc = NNPCalculator(model_path, dtype="float64")
    frames = tmp_path / "uncertain.extxyz"
    stop = UncertaintyWatch(1e-9, "stop", frames, every=5)
    assert stop.check(atoms, 3) is None  # not a checked step
    assert "force uncertainty" in stop.check(atoms, 5)
    from ase.io import read

    saved = read(frames, ":")
    assert len(saved) == 1 and saved[0].info["step"] == 5
    with pytest.warns(UserWarning, match="force uncertainty"):
        assert UncertaintyWatch(1e-9, "flag").check(atoms, 0) is None
    assert UncertaintyWatch(1e9, "stop", frames).check(atoms, 0) is None
    with pytest.raises(OptionError, match="action"):
        UncertaintyWatch(1.0, "explode", frames)


def test_eval_scores_uncertainty_and_plots_calibration(model_path, tmp_path):
    pytest.importorskip("matplotlib")
    from ase.calculators.emt import EMT

    from nnpcalc.training.reference import label
    from nnpcalc.workflows.evaluate import evaluate

    frames = [label(cu_cell(seed), EMT(), "EMT") for seed in range(3)]
    result = evaluate(model_path, frames)
    error, sigma = result.uncertainty["forces"]
    assert error.shape == sigma.shape == (12,)
    assert set(result.uncertainty_scores()) == {"energy_per_atom", "forces"}
    assert result.plot_calibration(tmp_path / "cal.png").stat().st_size > 0
    plain = evaluate(model_path, frames, uncertainty=False)  # the energy's comes free, the forces' on request
    assert "forces" not in plain.uncertainty and "energy_per_atom" in plain.uncertainty


def test_nnp_eval_prints_the_uncertainty_table(model_path, tmp_path):
    pytest.importorskip("matplotlib")
    from ase.calculators.emt import EMT
    from ase.io import write
    from click.testing import CliRunner

    from nnpcalc.cli.main import main
    from nnpcalc.training.reference import label

    write(tmp_path / "d.extxyz", [label(cu_cell(seed), EMT(), "EMT") for seed in range(2)])
    result = CliRunner().invoke(main, ["eval", str(model_path), str(tmp_path / "d.extxyz"), "-q",
                                       "--parity", "", "--calibration", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert "within 2σ" in result.output and (tmp_path / "c.png").is_file()


def test_members_follow_energy_added_after_the_ensemble_head(tmp_path):
    torch.manual_seed(0)
    arch = Architecture(elements=["Cu"], backbone_kwargs=TINY, head_hidden=8,
                        heads=[{"kind": "energy_ensemble", "members": 4}, "zbl"])
    path = export(build_potential(arch), arch, tmp_path / "zbl.pt")
    atoms = cu_cell()
    atoms.positions[1] = atoms.positions[0] + [0.9, 0.0, 0.0]  # close enough for the prior to matter
    (out,) = Model(path, dtype="float64").compute([atoms])
    np.testing.assert_allclose(out["energy_ensemble"].mean(), out["energy"], rtol=1e-12)


def test_md_max_uncertainty_saves_frames_or_stops(model_path, model_file, tmp_path):
    from ase.io import read

    from nnpcalc.errors import OptionError, SimulationError
    from nnpcalc.workflows.md import run_md

    common = {"steps": 4, "trajectory_interval": 2, "max_uncertainty": 1e-9}
    run_md(cu_cell(), model_path, outdir=tmp_path / "save", **common)
    saved = read(tmp_path / "save" / "uncertain.extxyz", ":")
    assert [f.info["step"] for f in saved] == [2, 4] and "energy" not in saved[0].info
    with pytest.raises(SimulationError, match="force uncertainty"):
        run_md(cu_cell(), model_path, outdir=tmp_path / "stop", uncertainty_action="stop", **common)
    assert len(read(tmp_path / "stop" / "uncertain.extxyz", ":")) == 1
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        run_md(cu_cell(), model_file, outdir=tmp_path / "plain", **common)
    # refused before an overwrite empties the run it would replace
    kept = sorted(p.name for p in (tmp_path / "save").iterdir())
    with pytest.raises(OptionError, match="no uncertainty outputs"):
        run_md(cu_cell(), model_file, outdir=tmp_path / "save", overwrite=True, **common)
    assert sorted(p.name for p in (tmp_path / "save").iterdir()) == kept
    # engine openmm: tests/test_uncertainty_engines.py


def test_an_ensemble_task_without_the_ensemble_head_is_named():
    from nnpcalc.errors import DataError
    from nnpcalc.training.tasks import Task

    out = {"energy": torch.zeros(1), "forces": torch.zeros(2, 3)}
    with pytest.raises(DataError, match="energy_ensemble.*no such output"):
        Task("energy_ensemble", metric="nll").loss(out, {"mask": {}})
