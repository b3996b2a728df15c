"""The allocator setting that removes per-call page faults (nnpcalc.allocator)."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import torch
from nnpcalc.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):  # warm up: first touches fault, and freed blocks take a few calls to coalesce
    torch.ones(25_000_000).sum()
before = faults()
for _ in range(5):
    torch.ones(25_000_000).sum()  # 100 MB, allocated and freed each time
print(applied, (faults() - before) / 5)
"""


def _faults_per_call(mode, env=None):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


def test_keep_freed_memory_removes_page_faults_of_repeated_large_tensors():
    applied, tuned = _faults_per_call("tuned")
    if not applied:
        pytest.skip("C library is not glibc")
    _, system = _faults_per_call("system")
    assert system > 10_000  # 100 MB of fresh 4 KiB pages per call without the setting
    assert tuned < 0.05 * system


def test_opt_out_leaves_allocator_alone(monkeypatch):
    import os

    env = dict(os.environ, NNPCALC_MALLOC="system")
    applied, _ = _faults_per_call("tuned", env)
    assert applied is False
