"""Loading and calling a model changes nothing process-wide unless the caller chose a thread policy."""

import pytest
import torch
from ase.build import molecule

from nnpcalc import allocator, threads
from nnpcalc.runtime import Model


def _recording(monkeypatch):
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    return calls, real


def test_small_graphs_run_on_one_thread_and_restore_the_setting(monkeypatch):
    calls, real = _recording(monkeypatch)
    previous = torch.get_num_threads()
    real(2)
    try:
        ethanol = molecule("CH3CH2OH")
        (serial,) = Model(threads="auto", serial_pairs=4096).compute([ethanol])
        assert calls == [1, 2] and torch.get_num_threads() == 2
        calls.clear()
        (threaded,) = Model(threads="auto", serial_pairs=0).compute([ethanol])
        assert calls == []  # left alone
        assert abs(serial["energy"] - threaded["energy"]) < 1e-4
    finally:
        real(previous)


def test_loading_and_calling_a_model_changes_nothing_process_wide(monkeypatch):
    calls, _ = _recording(monkeypatch)
    tuned = allocator.keep_freed_memory.cache_info()
    optimise = torch._C._get_graph_executor_optimize()
    model = Model()
    model.compute([molecule("CH3CH2OH")])
    assert model.threads == "keep" and calls == []
    after = allocator.keep_freed_memory.cache_info()
    assert after.hits + after.misses == tuned.hits + tuned.misses  # no mallopt
    assert torch._C._get_graph_executor_optimize() == optimise  # restored after the call


def test_the_program_chooses_the_policy_of_the_models_it_loads(monkeypatch):
    monkeypatch.setattr(threads, "_program_policy", "keep")
    threads.set_program_policy("auto")
    assert Model().threads == "auto" and Model(threads=3).threads == 3
    for bad in ("fast", 0, True):
        with pytest.raises(ValueError, match="'keep', 'auto' or a positive int"):
            Model(threads=bad)


def test_the_call_context_is_thread_local():
    import threading

    from nnpcalc import modelfile

    inside, seen = threading.Event(), []

    def call():
        with modelfile.calling():
            seen.append(torch._C._get_graph_executor_optimize())
            inside.set()
            done.wait()

    done = threading.Event()
    worker = threading.Thread(target=call)
    worker.start()
    inside.wait()
    assert seen == [False] and torch._C._get_graph_executor_optimize() is True  # not in this thread
    done.set()
    worker.join()


def test_nnp_opts_in_to_the_allocator_and_the_auto_policy(monkeypatch):
    from click.testing import CliRunner

    from nnpcalc.cli.main import main

    monkeypatch.setattr(threads, "_program_policy", "keep")
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append("mallopt") or True)
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert calls == ["mallopt"] and threads.program_policy() == "auto"
