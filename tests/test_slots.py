"""The slot layout of neighbour lists (nnpcalc.slots) and the programs that take their graph in slots:
every slot paired with its reverse, a gather whose backward is a gather, the same numbers as the
edge list to 1e-10 in float64, and a traced program without a single scatter.

Tracing and compiling take tens of seconds to a minute or two: those tests are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from nnpcalc import artifacts, exported
from nnpcalc.calculator import NNPCalculator
from nnpcalc.errors import ModelFileError
from nnpcalc.modelfile import load
from nnpcalc.nn.build import rebuild
from nnpcalc.runtime import Model
from nnpcalc.slots import Gather, SlotOps, slot_graph
from nnpcalc.testing import TOLERANCES, check_forces, check_stress, program_inputs

F64 = torch.float64
EXACT = 1e-10


def structures():
    """A molecule, an anion and a triclinic cell smaller than the cutoff (pairs with themselves)."""
    ethanol = molecule("CH3CH2OH")
    ion = molecule("H2O")
    ion.info["charge"] = -1.0
    metal = bulk("Cu", "fcc", a=3.6)  # 1 atom, 2.5 Å primitive cell: every neighbour is an image of itself
    metal = metal.repeat((2, 1, 1))
    metal.numbers[0] = 13
    metal.set_cell(metal.cell.array + [[0, 0.3, 0], [0.2, 0, 0], [0, 0, 0]], scale_atoms=True)
    for k, atoms in enumerate((ethanol, ion, metal)):
        atoms.rattle(0.05, seed=k)
    return {"ethanol": ethanol, "ion": ion, "metal": metal}


@pytest.fixture(scope="module")
def energy_model(tmp_path_factory, model_factory):
    return model_factory(tmp_path_factory.mktemp("slots") / "energy.pt", heads=("energy",))[0]


@pytest.mark.parametrize("name", ["ethanol", "metal"])
def test_every_slot_is_paired_with_its_reverse(name):
    atoms = structures()[name]
    inputs = program_inputs(atoms, 4.0)
    edge_index, shifts = inputs[7], inputs[8]
    graph = slot_graph(edge_index, shifts, len(atoms))
    width, n = graph.neighbors.shape
    total, flat = width * n, torch.arange(width * n)
    receivers = flat % n
    senders, reverse, pair = (t.reshape(-1) for t in (graph.neighbors, graph.reverse, graph.pair))
    num_pairs = graph.pair_slots.shape[1]
    real = pair < num_pairs
    assert 2 * num_pairs == edge_index.shape[1] == int(real.sum())
    assert (graph.neighbors[0] == torch.arange(n)).all() and (graph.pair[0] == num_pairs + torch.arange(n)).all()
    assert (reverse[~real & (pair < num_pairs + n)] == flat[~real & (pair < num_pairs + n)]).all()  # self-loops
    assert (reverse[pair == num_pairs + n] == total).all()  # padding
    back = reverse[real]
    assert (reverse[back] == flat[real]).all()  # an involution
    assert (senders[back] == receivers[real]).all() and (receivers[back] == senders[real]).all()
    shift = graph.shifts.reshape(-1, 3)
    assert torch.equal(shift[back], -shift[real])
    # each directed pair of the list appears in exactly one slot
    listed = {(int(i), int(j), *map(int, s)) for (i, j), s in zip(edge_index.T, shifts)}
    slotted = {(int(receivers[s]), int(senders[s]), *map(int, shift[s])) for s in flat[real]}
    assert listed == slotted
    a, b = graph.pair_slots
    assert (pair[a] == torch.arange(num_pairs)).all() and (pair[b] == torch.arange(num_pairs)).all()
    assert (reverse[a] == b).all()
    assert (graph.first.reshape(-1)[a] == torch.arange(num_pairs)).all()
    assert int((graph.first < num_pairs).sum()) == num_pairs


def test_a_half_list_is_refused():
    inputs = program_inputs(structures()["ethanol"], 4.0)
    edge_index, shifts = inputs[7], inputs[8]
    half = edge_index[0] < edge_index[1]
    with pytest.raises(ValueError, match="not symmetric"):
        slot_graph(edge_index[:, half], shifts[half], 9)


def test_gather_backward_is_the_index_select_gradient():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=F64, generator=generator, requires_grad=True)
    index = torch.tensor([4, 0, 4, 2, 4, 1])
    inverse = torch.tensor([[1, 5, 3, 6, 0], [6, 6, 6, 6, 2], [6, 6, 6, 6, 4]])  # column r: where index == r
    weight = torch.randn(6, 3, dtype=F64, generator=generator)
    (expected,) = torch.autograd.grad((x.index_select(0, index) * weight).sum(), x)
    (got,) = torch.autograd.grad((Gather.apply(x, index, inverse) * weight).sum(), x)
    assert torch.equal(Gather.apply(x, index, inverse), x.index_select(0, index))
    assert torch.allclose(got, expected, rtol=0, atol=1e-15)


@pytest.fixture(scope="module")
def wall_model(tmp_path_factory, model_factory):
    return model_factory(tmp_path_factory.mktemp("slots") / "wall.pt", heads=("energy", {"kind": "zbl", "radius_factor": 1.0}))[0]


@pytest.mark.parametrize("name", ["ethanol", "ion", "metal", "squeezed"])
@pytest.mark.parametrize("which", ["energy_model", "wall_model"])
def test_slot_evaluation_matches_the_edge_list(which, name, request):
    """``_SlotEvaluate`` run eagerly (``SlotOps`` rewrites its gathers and scatters there too)
    against ``Potential.evaluate`` on the edge list: energy, forces and stress to 1e-10."""
    path = request.getfixturevalue(which)
    loaded = load(path)
    potential = rebuild(path, loaded).to(F64).eval().requires_grad_(False)
    assert exported.slot_layout(potential) and exported.slots_possible(loaded[1])
    atoms = structures()["ethanol" if name == "squeezed" else name]
    if name == "squeezed":  # C-H bonds at 60 %: inside the ZBL wall's range
        atoms.positions *= 0.6
    inputs = program_inputs(atoms, loaded[1]["cutoff"])
    with torch.enable_grad():
        reference = potential.evaluate(*inputs)
        keys = list(reference)
        out = dict(zip(keys, exported._SlotEvaluate(potential, keys)(*exported.slot_inputs(inputs))))
    assert {"energy", "forces", "stress"} <= set(keys)
    for key in keys:
        assert (out[key] - reference[key]).abs().max() < EXACT, key


def test_slot_ops_leave_other_index_ops_alone():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    receivers, senders, pair, batch = edge_index[0].clone(), edge_index[1].clone(), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    x = torch.arange(6.0).view(3, 2)
    with SlotOps(edge_index, receivers, senders, pair, batch, torch.zeros(1, 2, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long), 1):
        assert torch.equal(x.index_select(0, torch.tensor([2, 0])), x[[2, 0]])
        assert torch.equal(torch.zeros(3, 2).index_add(0, torch.tensor([0, 0]), x[:2]), torch.tensor([[2.0, 4], [0, 0], [0, 0]]))
        assert edge_index[0] is receivers and edge_index[1] is senders
        assert torch.equal(x[:1][batch], x[:1].expand(2, 2))


def test_only_tensornet_energy_models_have_a_program_in_slots(model_file, energy_model):
    assert exported.slots_possible(load(energy_model)[1])
    assert not exported.slots_possible(load(model_file)[1])  # charges and dipole heads
    with pytest.raises(ModelFileError, match="only TensorNet models whose heads"):
        exported.export_program(model_file, F64, "cpu", slots=True)
    assert artifacts.for_model(model_file, F64, "cpu", "compiled", threads=2) is None  # nothing built, no warning
    with pytest.raises(ValueError, match="only compiled programs"):
        artifacts.build(energy_model, "exported", F64, "cpu", threads=2)


@pytest.mark.slow
def test_the_traced_program_in_slots_holds_no_scatter(energy_model):
    program, keys = exported.export_program(energy_model, F64, "cpu", slots=True)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not {t for t in targets if "index_add" in t or "index_put" in t or "scatter" in t}
    loaded = load(energy_model)
    potential = rebuild(energy_model, loaded).to(F64).eval()
    module = program.module()
    for atoms in structures().values():
        inputs = program_inputs(atoms, loaded[1]["cutoff"])
        with torch.enable_grad():
            reference = potential.evaluate(*inputs)
        out = dict(zip(keys, module(*exported.slot_inputs(inputs))))
        assert max(float((out[k] - reference[k]).abs().max()) for k in reference) < EXACT


@pytest.fixture(scope="module")
def parallel_cache(energy_model, tmp_path_factory):
    """The compiled program in slots, kernels on 2 threads (AOTInductor on this CPU, a minute or two)."""
    root = tmp_path_factory.mktemp("parallel")
    artifacts.build(energy_model, "compiled", F64, "cpu", root, threads=2)
    return root


@pytest.mark.slow
def test_the_parallel_program_serves_calls_on_two_threads_with_the_file_s_numbers(energy_model, parallel_cache,
                                                                                   monkeypatch):
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(parallel_cache))
    model = Model(energy_model, dtype="float64", artifact="auto", threads=2, serial_pairs=0)
    reference = Model(energy_model, dtype="float64", artifact="torchscript")
    assert model.program is None and model.parallel_program is not None and model.parallel_program.threads == 2
    program, calls = model.parallel_program, []
    model.parallel_program = artifacts.Program(program.kind, lambda *a: calls.append(1) or program.module(*a),
                                               program.keys, program.path, threads=2)
    for atoms in structures().values():
        got, expected = model.compute([atoms])[0], reference.compute([atoms])[0]
        assert max(np.abs(got[k] - expected[k]).max() for k in expected) < EXACT
    assert len(calls) == 3
    calc, tolerance = NNPCalculator(model), TOLERANCES["float64"]
    assert check_forces(calc, structures()["metal"], tolerance["forces"]).passed
    assert check_stress(calc, structures()["metal"], tolerance["stress"]).passed
    assert check_forces(calc, structures()["ethanol"], tolerance["forces"]).passed
    assert model.parallel_program is not None and len(calls) > 3


def test_nnp_compile_builds_the_program_in_slots_for_models_that_have_one(energy_model, model_file, monkeypatch):
    from click.testing import CliRunner

    from nnpcalc.cli.main import main

    built = []
    monkeypatch.setattr(artifacts, "build", lambda path, kind, dtype, device, threads=1: built.append((path.name, threads)) or path)
    monkeypatch.setattr(artifacts, "proxied_ops", lambda path: [])
    for path in (energy_model, model_file):
        result = CliRunner().invoke(main, ["compile", str(path)])
        assert result.exit_code == 0, result.output
    assert built == [("energy.pt", 1), ("energy.pt", 2), ("tiny.pt", 1)]
    assert "in slots, kernels on 2 threads" in CliRunner().invoke(main, ["compile", str(energy_model)]).output


def test_programs_in_slots_compile_on_two_threads_and_edge_programs_on_one(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package",
                        lambda program, package_path, inductor_configs: seen.append(inductor_configs) or package_path)
    exported.compile_program(None, tmp_path / "a.pt2", tmp_path, threads=1)
    exported.compile_program(None, tmp_path / "b.pt2", tmp_path, threads=2)
    assert seen == [{"cpp.threads": 1, **exported.INDUCTOR_SETTINGS}, {"cpp.threads": 2, **exported.INDUCTOR_SETTINGS}]
