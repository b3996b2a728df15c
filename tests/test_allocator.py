"""The allocator setting that keeps freed memory for reuse (nnpcalc.allocator).

What it changes is glibc's bookkeeping, read with ``mallinfo2``: a 100 MB tensor is served
from the heap instead of a fresh ``mmap``, and stays in the heap once freed. (Page-fault
counts, the reason for the setting, depend on the kernel; benchmarks/ measures them.)
"""

import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys
import torch
from nnpcalc.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
try:
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
except (OSError, AttributeError):  # not glibc >= 2.33
    print("skip 0 0"); sys.exit()
mallinfo2.restype = MallInfo2
tensor = torch.ones(25_000_000)  # 100 MB
mapped = mallinfo2().hblkhd  # bytes in mmap-ed blocks while it lives
del tensor
print(applied, mapped, mallinfo2().fordblks)  # free bytes the heap keeps once it is freed
"""
MB100 = 100_000_000


def _heap(mode, env=None):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    applied, mapped, kept = out.stdout.split()
    if applied == "skip":
        pytest.skip("C library is not glibc >= 2.33 (no mallinfo2)")
    return applied == "True", int(mapped), int(kept)


def test_keep_freed_memory_serves_large_tensors_from_the_heap_and_keeps_them():
    applied, mapped, kept = _heap("tuned")
    if not applied:
        pytest.skip("C library is not glibc")
    assert mapped < MB100 <= kept
    _, mapped, kept = _heap("system")
    assert kept < MB100 <= mapped  # glibc's default: a fresh mmap, returned to the kernel on free


def test_opt_out_leaves_allocator_alone():
    import os

    env = dict(os.environ, NNPCALC_MALLOC="system")
    applied, mapped, _ = _heap("tuned", env)
    assert applied is False and mapped >= MB100
