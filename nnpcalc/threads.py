"""How many torch threads a model call runs on: a choice the caller states, never a side effect.

``Model(threads=...)`` (and the OpenMM forces' ``threads``) take a policy:

- ``"keep"`` (the library's default): calls run on torch's current setting; nnpcalc never
  calls ``torch.set_num_threads``. Safe with any number of Python threads.
- ``"auto"``: graphs under ``serial_pairs`` directed pairs run on one thread, larger ones on
  torch's setting. Waking OpenMP threads for each of a call's ~400 small ops costs more than
  the ops: on 2 vCPUs ethanol takes 12 ms per call on one thread, 27 ms on two.
- an int ``n``: every call runs on ``n`` threads.

``"auto"`` and ``n`` set torch's thread count for the call and restore it after. That count
is process-wide, so use them only where one Python thread calls torch at a time (a
program's main loop, not a server calling models from several threads).

A program chooses for the models it loads with :func:`set_program_policy`: ``nnp`` and the
benchmarks choose ``"auto"``; a model built with ``threads=None`` follows the program's
choice, ``"keep"`` unless the program made one. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib

POLICIES = ("keep", "auto")
_program_policy: str | int = "keep"


def check_policy(policy: str | int) -> str | int:
    """``policy`` if valid, else a ValueError naming the choices."""
    if policy in POLICIES or (isinstance(policy, int) and not isinstance(policy, bool) and policy > 0):
        return policy
    raise ValueError(f"threads must be 'keep', 'auto' or a positive int, got {policy!r}")


def set_program_policy(policy: str | int) -> None:
    """The thread policy of the models this program loads with ``threads=None`` (for entry points)."""
    global _program_policy
    _program_policy = check_policy(policy)


def program_policy() -> str | int:
    return _program_policy


def threads_for(policy: str | int, num_pairs: int, serial_pairs: int) -> int | None:
    """The thread count a call on ``num_pairs`` directed pairs runs with (None: leave torch's)."""
    if policy == "keep":
        return None
    if policy == "auto":
        return 1 if num_pairs < serial_pairs else None
    return int(policy)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run torch with ``threads`` intra-op threads inside the block; restore the setting after.

    None: change nothing. Process-wide while the block runs (see the module's docstring).
    """
    import torch

    previous = torch.get_num_threads()
    change = threads is not None and threads != previous
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(previous)
