"""Small graphs run on one torch thread, and the caller's thread setting is restored."""

import torch
from ase.build import molecule

from nnpcalc.runtime import Model


def test_small_graphs_run_on_one_thread_and_restore_the_setting(monkeypatch):
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    previous = torch.get_num_threads()
    real(2)
    try:
        ethanol = molecule("CH3CH2OH")
        (serial,) = Model(serial_pairs=4096).compute([ethanol])
        assert calls == [1, 2] and torch.get_num_threads() == 2
        calls.clear()
        (threaded,) = Model(serial_pairs=0).compute([ethanol])
        assert calls == []  # left alone
        assert abs(serial["energy"] - threaded["energy"]) < 1e-4
    finally:
        real(previous)
