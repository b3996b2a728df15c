"""Reading training checkpoints without running code from them.

A ``.ckpt`` is a pickle; ``torch.load(..., weights_only=False)`` would run whatever a crafted
file asks (a ``__reduce__`` calling ``os.system``). Every checkpoint nnpcalc reads goes through
:func:`read_checkpoint`: torch's weights-only unpickler (tensors, containers, numbers,
strings) plus the few classes listed in :data:`SAFE_GLOBALS`, none of which run code.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import ModelFileError

#: classes a checkpoint may hold beyond torch's weights-only set: older torchmd-net
#: checkpoints store their ``hyper_parameters`` as an ``argparse.Namespace`` (plain data)
SAFE_GLOBALS = [argparse.Namespace]


def read_checkpoint(path: str | Path, what: str = "a training checkpoint") -> dict:
    """The dict in a checkpoint file, loaded on the CPU with no code from the file run."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = _blocked_global(str(err))
        if blocked is None:
            raise _unreadable(path, what, err) from None
        raise ModelFileError(
            f"{path} holds Python objects beyond weights and plain data ({blocked}); nnpcalc loads "
            "checkpoints weights-only and runs no code from a file. Export it where it was trained, "
            "or save only its 'state_dict' and 'hyper_parameters' as plain data."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise _unreadable(path, what, err) from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path} holds a {type(raw).__name__}, not {what} (a dict with 'state_dict')")
    return raw


def _blocked_global(message: str) -> str | None:
    """The class torch's weights-only unpickler refused (``GLOBAL posix.system``), if it says one."""
    for line in message.splitlines():
        if "GLOBAL" in line:
            return line.strip()
    return None


def _unreadable(path: Path, what: str, err: Exception) -> ModelFileError:
    reason = f"{type(err).__name__}: {str(err).splitlines()[0]}" if str(err) else type(err).__name__
    if "Weights only load failed" in reason:
        reason = "not a pickle torch reads"
    return ModelFileError(
        f"{path} is not {what} torch can read ({reason}); it may be truncated or another format. "
        "Pass the .ckpt written by `nnp train` or torchmd-train."
    )
