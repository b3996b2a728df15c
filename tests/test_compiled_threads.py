"""Which calls a compiled program serves: its kernels are single-threaded, yet on up to
``artifacts.COMPILED_MAX_THREADS`` torch threads it serves large graphs too (faster there than
the TorchScript file on all threads; docs/benchmarks.md figure 1); with more threads the file
serves graphs of ``serial_pairs`` pairs and up."""

from __future__ import annotations

import warnings

import pytest
import torch
from ase.build import bulk

from nnpcalc import artifacts
from nnpcalc.errors import ArtifactWarning
from nnpcalc.runtime import Model


def _served(model_file, threads: int, kind: str = "compiled") -> bool:
    """Whether a stub program of ``kind`` is called for a 'large' graph (serial_pairs=1) on ``threads``."""
    model = Model(model_file, dtype="float64", artifact="torchscript", threads=threads, serial_pairs=1)
    called = []

    def program(*inputs):
        called.append(torch.get_num_threads())
        raise RuntimeError("stub program called")
    model.program = artifacts.Program(kind, program, ["energy"], model.path)
    metal = bulk("Cu", "fcc", a=3.6, cubic=True)
    metal.rattle(0.05, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ArtifactWarning)  # the stub fails; the file then serves
        (out,) = model.compute([metal])
    assert out["energy"] == out["energy"]  # the file served the call either way
    return bool(called)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_compiled_program_serves_large_graphs_on_few_threads(model_file, threads):
    assert artifacts.COMPILED_MAX_THREADS == 2
    assert _served(model_file, threads)


def test_the_file_serves_large_graphs_on_more_threads(model_file):
    assert not _served(model_file, artifacts.COMPILED_MAX_THREADS + 1)
    assert _served(model_file, artifacts.COMPILED_MAX_THREADS + 1, kind="exported")  # threads only gate compiled


def _which(model_file, threads: int, serial_pairs: int) -> list[str]:
    """Which stub program ("serial" or "parallel") a call takes with torch on ``threads`` threads
    and the "auto" policy: ``parallel`` (kernels on ``PARALLEL_THREADS`` threads, a program in
    slots) or ``serial`` (1-thread kernels); none: the file served."""
    from nnpcalc.threads import torch_threads

    model = Model(model_file, dtype="float64", artifact="torchscript", threads="auto", serial_pairs=serial_pairs)
    called = []

    def stub(name):
        def program(*inputs):
            called.append(name)
            raise RuntimeError("stub program called")
        return program
    model.program = artifacts.Program("compiled", stub("serial"), ["energy"], model.path)
    model.parallel_program = artifacts.Program("compiled", stub("parallel"), ["energy"], model.path,
                                               threads=artifacts.PARALLEL_THREADS)
    metal = bulk("Cu", "fcc", a=3.6, cubic=True)
    metal.rattle(0.05, seed=0)
    with warnings.catch_warnings(), torch_threads(threads):
        warnings.simplefilter("ignore", ArtifactWarning)
        model.compute([metal])
    return called


def test_calls_on_two_threads_take_the_program_in_slots_and_small_or_one_thread_calls_the_other(model_file):
    assert _which(model_file, artifacts.PARALLEL_THREADS, serial_pairs=1) == ["parallel"]
    assert _which(model_file, artifacts.PARALLEL_THREADS, serial_pairs=10**6) == ["serial"]  # a small graph: 1 thread
    assert _which(model_file, 1, serial_pairs=1) == ["serial"]
    assert _which(model_file, artifacts.PARALLEL_THREADS + 1, serial_pairs=1) == []  # the file, on 3 threads
