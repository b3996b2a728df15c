"""Shared fixtures: tiny random-weight model files built on the fly (nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch

from nnpcalc.nn.build import Architecture, build_potential, export

TINY = {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 4.0}
ELEMENTS = ["H", "C", "N", "O", "Al", "Cu"]


def make_model(path, backbone="tensornet", heads=("energy", "charges", "dipole"),
               fidelities=("default",), seed=0, **backbone_kwargs):
    """Write a random-weight model file; returns (path, eager potential, architecture)."""
    torch.manual_seed(seed)
    arch = Architecture(
        elements=ELEMENTS, backbone=backbone, backbone_kwargs={**TINY, **backbone_kwargs},
        heads=list(heads), fidelities=list(fidelities), head_hidden=16,
    )
    potential = build_potential(arch)
    with torch.no_grad():
        potential.heads[0].atomref.uniform_(-5.0, -1.0)  # per fidelity and element
        potential.heads[0].scale.fill_(0.7)
    export(potential, arch, path)
    return path, potential, arch


@pytest.fixture(autouse=True)
def _program_thread_policy():
    """`nnp`'s entry point, run in-process by CLI tests, sets the program's thread policy for the
    rest of the process (as a program should); each test starts from the library default."""
    from nnpcalc import threads

    before = threads.program_policy()
    yield
    threads.set_program_policy(before)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("models") / "tiny.pt")[0]


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(scope="session")
def model_factory():
    return make_model


def check_pinned_job_lists(pinned: dict[str, str]) -> set[str]:
    """Every job key of the named job lists, after checking each list against its pinned digest
    (the first 16 hex digits of the sha256 of its keys) and, when ``data/`` holds it, its manifest."""
    import hashlib
    import json
    from pathlib import Path

    from nnpcalc.training import datasets, labelling

    every = set()
    for name, digest in pinned.items():
        keys = [labelling.job_key(s) for s in datasets.DATASETS[name]()]
        assert hashlib.sha256(" ".join(keys).encode()).hexdigest()[:16] == digest, f"{name}: a job changed"
        manifest = Path(__file__).parents[1] / "data" / f"{name}.manifest.json"
        if manifest.is_file():
            assert keys == [j["key"] for j in json.loads(manifest.read_text())["jobs"]]
        every |= set(keys)
    return every


@pytest.fixture(scope="session")
def pinned_job_lists():
    """:func:`check_pinned_job_lists`: job lists keep every job key (additive datasets)."""
    return check_pinned_job_lists


@pytest.fixture
def pure_python_tensornet(monkeypatch):
    """torchmd-net's TensorNet class, on its pure-python ops rather than its Warp kernels."""
    tn = pytest.importorskip("torchmdnet.models.tensornet")
    for name in ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3"):
        monkeypatch.setattr(tn, name, getattr(tn, "_" + name))
    return tn.TensorNet
