"""Devices: `--device` is checked before any work, the model's input checks read the device
back once per batch (not per structure), and CUDA gives CPU's numbers where CUDA exists."""

import copy
import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from click.testing import CliRunner

from nnpcalc import NNPCalculator, graph
from nnpcalc.cli.main import main
from nnpcalc.nn.potential import _periodic_extent
from nnpcalc.systems import water_box

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason=f"no CUDA device (torch {torch.__version__}); runs where "
                                                 "torch.cuda.is_available()")

#: every command that runs a model, with the arguments it needs besides --device
COMMANDS = {
    "relax": ["relax", "{xyz}", "-o", "{tmp}/relaxed.extxyz"],
    "md": ["md", "{xyz}", "-o", "{tmp}/run"],
    "phonons": ["phonons", "{xyz}", "-o", "{tmp}/phonons"],
    "eval": ["eval", "{model}", "{xyz}"],
    "check": ["check", "{model}"],
    "compile": ["compile", "{model}"],
}


def invoke(command: str, device: str, tmp_path, model_file):
    xyz = tmp_path / "water.xyz"
    molecule("H2O").write(xyz)
    args = [a.format(xyz=xyz, tmp=tmp_path, model=model_file) for a in COMMANDS[command]]
    return CliRunner().invoke(main, [*args, "--device", device])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_device_torch_does_not_know_is_refused_before_any_work(command, tmp_path, model_file):
    result = invoke(command, "gpu", tmp_path, model_file)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--device'" in result.output and "use 'cpu', 'cuda' or 'cuda:N'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.skipif(CUDA, reason="CUDA is available here: --device cuda is accepted")
@pytest.mark.parametrize("command", COMMANDS)
def test_cuda_without_cuda_names_the_fix(command, tmp_path, model_file):
    result = invoke(command, "cuda", tmp_path, model_file)
    assert result.exit_code == 2, result.output
    assert "sees no CUDA device" in result.output and "device='cpu'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_relax_on_the_device_given(tmp_path, model_file):
    result = invoke("relax", "cpu", tmp_path, model_file)
    assert result.exit_code in (0, 1), result.output  # 1: not converged on a random-weight model
    assert "wrote" in result.output and (tmp_path / "relaxed.extxyz").is_file()


# ---- the model's checks: one read-back per batch ----------------------------------------------

@pytest.mark.parametrize("pbc", list(itertools.product([False, True], repeat=3)))
def test_periodic_extent_is_the_volume_of_the_binning_cell(pbc):
    """The batched extent (volume, area or length of the periodic vectors) equals |det| of the
    cell the neighbour list bins with, structure by structure."""
    cells = torch.randn(6, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4
    cells[5, 2] = cells[5, 0] + 0.5 * cells[5, 1]  # a flat cell
    flags = torch.tensor([pbc] * 6)
    expected = torch.stack([torch.linalg.det(graph.binning_cell(c, p)).abs() for c, p in zip(cells, flags)])
    np.testing.assert_allclose(_periodic_extent(cells, flags), expected, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def potential(model_factory, tmp_path_factory):
    """The eager module of a freshly exported random-weight model, in float64."""
    return model_factory(tmp_path_factory.mktemp("device") / "m.pt")[1].double().eval()


def _batch(count: int):
    """``count`` periodic water boxes stacked as forward_batch takes them."""
    boxes = [water_box(1) for _ in range(count)]
    positions = torch.tensor(np.concatenate([b.positions for b in boxes]))
    numbers = torch.tensor(np.concatenate([b.numbers for b in boxes]))
    cell = torch.tensor(np.stack([b.cell.array for b in boxes]))
    pbc = torch.ones(count, 3, dtype=torch.bool)
    batch = torch.repeat_interleave(torch.arange(count), len(boxes[0]))
    return positions, numbers, cell, pbc, batch


@pytest.mark.parametrize("problem, message", [
    ("nan", "NaN or inf"), ("element", "element not supported"), ("negative", "element not supported"),
    ("flat", "span no volume"), ("zero-vector", "span no volume"), ("slab-flat", "span no volume"),
])
def test_a_bad_structure_anywhere_in_a_batch_is_refused(problem, message, potential):
    positions, numbers, cell, pbc, batch = _batch(3)
    last = batch == 2
    if problem == "nan":
        positions[last.nonzero()[0, 0], 1] = float("nan")
    elif problem in ("element", "negative"):
        numbers[last.nonzero()[0, 0]] = 92 if problem == "element" else -1
    elif problem == "flat":
        cell[2, 2] = cell[2, 0] + cell[2, 1]
    elif problem == "zero-vector":
        cell[2, 1] = 0.0
    else:  # a slab whose two periodic vectors are parallel
        pbc[2, 2] = False
        cell[2, 1] = 2.0 * cell[2, 0]
    with pytest.raises(ValueError, match=message):
        potential.forward_batch(positions, numbers, cell, pbc, torch.zeros(3, dtype=torch.float64), batch)


def test_the_checks_read_the_device_back_once_whatever_the_batch(potential, monkeypatch):
    """Every host read-back (bool, float, int, item, tolist) in ``Potential._check`` is counted:
    one per call, for one structure and for eight."""
    reads = []
    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name: reads.append(_n) or _o(self, *a))
    counts = []
    for count in (1, 8):
        positions, numbers, cell, pbc, batch = _batch(count)
        has_volume = torch.ones(count, dtype=torch.bool)
        reads.clear()
        assert potential._check(positions, numbers, cell, pbc, has_volume) is True
        counts.append(list(reads))
    assert counts == [["tolist"], ["tolist"]]


# ---- CUDA: the same numbers as on CPU ---------------------------------------------------------

def _structures():
    cu = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 2, 2))
    cu.rattle(0.05, seed=1)
    water = water_box(2)
    water.rattle(0.02, seed=2)
    return {"metals-emt": [cu, bulk("Cu", "fcc", a=3.5)], "hcno-gfn2": [molecule("CH3CH2OH"), water]}


def _compare(model, structures):
    for atoms in structures:
        results = {}
        for device in ("cpu", "cuda"):
            atoms.calc = NNPCalculator(model, device=device, dtype="float64")
            results[device] = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
                               **({"stress": atoms.get_stress()} if atoms.pbc.all() else {})}
        for key, value in results["cpu"].items():
            np.testing.assert_allclose(results["cuda"][key], value, rtol=0, atol=1e-10, err_msg=f"{key} of {atoms}")


@needs_cuda
@pytest.mark.parametrize("model", ["metals-emt", "hcno-gfn2"])
def test_a_shipped_model_gives_cpus_numbers_on_cuda(model):
    _compare(model, _structures()[model])


@needs_cuda
def test_a_freshly_exported_model_gives_cpus_numbers_on_cuda(model_file):
    _compare(model_file, [water_box(2), molecule("CH3CH2OH")])


@needs_cuda
def test_the_checks_synchronise_once_on_cuda(potential):
    potential = copy.deepcopy(potential).cuda()
    inputs = [t.cuda() for t in _batch(8)[:4]]
    has_volume = torch.ones(8, dtype=torch.bool, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            potential._check(*inputs, has_volume)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]


@needs_cuda
def test_md_runs_on_cuda_and_resumes_on_the_device_given(tmp_path):
    xyz = tmp_path / "ethanol.xyz"
    molecule("CH3CH2OH").write(xyz)
    run = CliRunner().invoke(main, ["md", str(xyz), "--steps", "4", "--device", "cuda", "-o", str(tmp_path / "r")])
    assert run.exit_code == 0, run.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["device"] == "cuda"
    more = CliRunner().invoke(main, ["md", "--resume", str(tmp_path / "r"), "--steps", "8", "--device", "cpu"])
    assert more.exit_code == 0, more.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["device"] == "cpu"


@pytest.mark.skipif(CUDA, reason="CUDA is available here: the resume would run on it")
def test_a_resume_runs_on_the_device_it_is_given(tmp_path, model_file):
    """--device on a resume is applied (not silently dropped): cuda here is refused as no CUDA."""
    from nnpcalc.errors import DeviceError
    from nnpcalc.workflows.md import resume_md, run_md

    run_md(molecule("H2O"), model_file, outdir=tmp_path / "r", steps=2)
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        resume_md(tmp_path / "r", steps=4, device="cuda")
    assert resume_md(tmp_path / "r", steps=4, device="cpu").steps == 4
