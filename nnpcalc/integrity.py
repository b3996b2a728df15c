"""A model file that cannot be edited silently: its metadata is checked against its module.

The runtime trusts a file's ``metadata.json`` for the elements, the cutoff, the outputs and
the fidelities. Three checks stand between an edited or damaged file and a wrong number:

1. :func:`check_schema` — every key the runtime reads is there, with the right type;
2. :func:`check_module` — what the module itself holds agrees: its ``cutoff``, its
   ``known_elements`` table and its number of fidelities (every file, old ones included);
3. the ``digest`` written at export: sha256 of every weight and buffer and of the rest of the
   metadata; checked at load when present (files written before it existed load without it).

The digest detects edits and damage; it is not a signature (whoever can write the file can
write a new digest). Files run no code when loaded (TorchScript, no pickle of Python objects).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from ase.data import chemical_symbols

from .errors import ModelFileError
from .properties import DTYPES

FIX = "Restore the original file or re-export it with `nnp export`."


def digest(module: torch.nn.Module, metadata: dict) -> str:
    """sha256 of ``metadata`` (without its digest) and of every tensor of ``module.state_dict()``."""
    h = hashlib.sha256()
    rest = {k: v for k, v in metadata.items() if k != "digest"}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    for key, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return "sha256:" + h.hexdigest()


def _fail(path: Path, key: str, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: metadata key {key!r} {what}; the file was edited or damaged. {FIX}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_schema(path: Path, metadata: dict) -> dict:
    """Every key the runtime reads, with its type; one :class:`ModelFileError` naming the first bad one."""
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, "format_version", f"must be a positive integer, not {version!r}")
    required = ("elements", "cutoff", "outputs", "fidelities", "architecture")
    for key in required:
        if key not in metadata:
            raise _fail(path, key, "is missing")
    elements = metadata["elements"]
    if not isinstance(elements, list) or not elements or not all(e in chemical_symbols[1:] for e in elements):
        raise _fail(path, "elements", f"must be a non-empty list of chemical symbols, not {elements!r}")
    if not _is_number(metadata["cutoff"]) or metadata["cutoff"] <= 0:
        raise _fail(path, "cutoff", f"must be a positive number of Å, not {metadata['cutoff']!r}")
    _check_outputs(path, metadata["outputs"])
    fidelities = metadata["fidelities"]
    if not isinstance(fidelities, list) or not fidelities or not all(isinstance(f, str) for f in fidelities):
        raise _fail(path, "fidelities", f"must be a non-empty list of names, not {fidelities!r}")
    if not isinstance(metadata["architecture"], dict):
        raise _fail(path, "architecture", f"must be an object, not {type(metadata['architecture']).__name__}")
    if "dtype" in metadata and metadata["dtype"] not in DTYPES:
        raise _fail(path, "dtype", f"must be one of {', '.join(DTYPES)}, not {metadata['dtype']!r}")
    return metadata


def _check_outputs(path: Path, outputs) -> None:
    if not isinstance(outputs, dict) or "energy" not in outputs:
        raise _fail(path, "outputs", f"must be an object with at least 'energy', not {outputs!r}"[:200])
    for name, spec in outputs.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("per_atom"), bool):
            raise _fail(path, f"outputs.{name}", f"must be an object with a boolean 'per_atom', not {spec!r}")


def check_module(path: Path, module, metadata: dict) -> None:
    """The loaded module agrees with the metadata (digest when present; cutoff, elements, fidelities always)."""
    stored = metadata.get("digest")
    if stored is not None and stored != digest(module, metadata):
        raise ModelFileError(
            f"{path}: the weights or metadata.json changed after export (its digest does not match). {FIX}"
        )
    cutoff = getattr(module, "cutoff", None)
    if cutoff is not None and abs(float(cutoff) - float(metadata["cutoff"])) > 1e-9:
        raise _fail(path, "cutoff", f"says {metadata['cutoff']} Å but the model was built with {float(cutoff)} Å")
    known = getattr(module, "known_elements", None)
    if known is not None:
        held = [chemical_symbols[z] for z in torch.nonzero(known.cpu()).flatten().tolist()]
        if sorted(held) != sorted(metadata["elements"]):
            raise _fail(path, "elements", f"lists {metadata['elements']} but the model serves {held}")
    count = getattr(module, "num_fidelities", None)
    if count is not None and int(count) != len(metadata["fidelities"]):
        raise _fail(path, "fidelities", f"lists {len(metadata['fidelities'])} but the model has {int(count)}")
