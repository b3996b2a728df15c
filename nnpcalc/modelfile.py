"""The model file: one self-describing TorchScript file. All serialisation lives here.

Contract (format version 1)::

    model = torch.jit.load("model.pt", _extra_files={"metadata.json": ""})
    out = model(positions, atomic_numbers, cell, pbc, total_charge)

=================  ==========  ==========================================================
input              shape       meaning
=================  ==========  ==========================================================
positions          [N, 3]      Å (any float dtype; cast to the model's dtype)
atomic_numbers     [N]         int64
cell               [3, 3]      Å, rows are lattice vectors (zeros for a molecule)
pbc                [3]         bool
total_charge       []          e
fidelity           [] opt.     int64 index into metadata ``fidelities``
edge_index/shifts  opt.        a precomputed graph from ``model.neighbors`` (else built inside)
=================  ==========  ==========================================================

Outputs (``metadata["outputs"]`` lists the ones a file has, with shape and unit):
``energy`` [] eV (float64), ``energies`` [N] eV, ``forces`` [N,3] eV/Å = −∂E/∂r,
``stress`` [3,3] eV/Å³ = 1/V ∂E/∂ε (ASE sign; zero when the cell has no volume),
``charges`` [N] e summing to ``total_charge``, ``dipole`` [3] e·Å.
``model.forward_batch(...)`` takes B structures (cell [B,3,3], pbc [B,3], total_charge [B],
batch [N]). The file uses only torch ops: no nnpcalc import is needed to run it. Call it with
gradients enabled (forces and stress are autograd derivatives) and ``model.eval()``.
Change the dtype with ``model.to(torch.float64)``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import ModelFileError
from .properties import dtype_name
from .units import CHARGE, ENERGY, LENGTH

FORMAT_VERSION = 1
METADATA_NAME = "metadata.json"
KIND = "nnpcalc-model"


@contextlib.contextmanager
def _torchscript_quiet():
    """TorchScript is deprecated from torch 2.11 but is the contract here: silence only that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*TorchScript.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*TorchScript.*", category=FutureWarning)
        yield


@contextlib.contextmanager
def calling():
    """How nnpcalc calls a loaded model file: with autograd on (forces are derivatives) and
    TorchScript's profiling optimiser off for the call. The optimiser re-profiles graphs of
    changing size and made the first three calls ~1.3 s slower (measured, ethanol) for no
    steady-state gain. Both settings are thread-local (``torch.jit.optimized_execution``
    sets a per-thread flag; tested): nothing outside this block and this thread sees them, and
    both are restored when the block ends. Every call site uses this one context.
    """
    with torch.enable_grad(), torch.jit.optimized_execution(False):
        yield


@dataclass
class Capabilities:
    """What a model states about itself (metatomic's ``ModelCapabilities``): the built
    ``Potential.capabilities()`` returns it and :func:`make_metadata` copies it as it is."""

    elements: list[str]  # chemical symbols, by atomic number
    cutoff: float  # Å
    outputs: dict[str, dict]  # name → shape, unit, per_atom (``properties.describe`` entries)
    heads: list[str]  # each head's name, in order
    fidelities: list[str]
    #: serves periodic cells; False marks a molecules-only model, which OpenMM refuses in a box
    #: (files without the key are periodic)
    periodic: bool = True


def make_metadata(
    capabilities: Capabilities, architecture: dict, dtype: torch.dtype, provenance: dict | None = None
) -> dict[str, Any]:
    """The metadata block of a model file: the model's capabilities, the architecture it is
    rebuilt from (stored whole, not read here), its dtype and provenance."""
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "nnpcalc_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "elements": list(capabilities.elements),
        "cutoff": float(capabilities.cutoff),
        "periodic": bool(capabilities.periodic),
        "units": {"length": LENGTH, "energy": ENERGY, "charge": CHARGE},
        "outputs": dict(capabilities.outputs),
        "dtype": dtype_name(dtype),
        "backbone": architecture["backbone"],
        "architecture": architecture,
        "heads": list(capabilities.heads),
        "fidelities": list(capabilities.fidelities),
        "provenance": provenance or {},
    }


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with _torchscript_quiet():
        return torch.jit.script(module)


def save(module: torch.nn.Module, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Script ``module`` (unless already scripted) and write it with its metadata."""
    path = Path(path)
    scripted = module if isinstance(module, torch.jit.ScriptModule) else script(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _torchscript_quiet():
        torch.jit.save(scripted, str(path), _extra_files={METADATA_NAME: json.dumps(metadata, indent=1)})
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a model file, without loading its weights."""
    path = _existing(path)
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"extra/{METADATA_NAME}")), None)
            raw = archive.read(name) if name else None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelFileError(
            f"{path} is not a TorchScript model file ({err}); it may be truncated or another "
            "format. Re-export it with `nnp export` or pick a file written by nnpcalc."
        ) from err
    if raw is None:
        raise ModelFileError(
            f"{path} is a TorchScript file but not an nnpcalc model (no {METADATA_NAME} inside). "
            "Export models with `nnp export`."
        )
    return _validate(path, json.loads(raw))


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict]:
    """Load a model file: (scripted module in eval mode, metadata). Refuses what it can't serve."""
    metadata = read_metadata(path)
    try:
        with _torchscript_quiet():
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        raise ModelFileError(f"{path} could not be loaded by torch ({err}). The file may be truncated.") from err
    return module.eval(), metadata


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    return path


def _validate(path: Path, metadata: dict) -> dict:
    if metadata.get("kind") != KIND:
        raise ModelFileError(f"{path} is not an nnpcalc model (metadata kind {metadata.get('kind')!r})")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model-file format version {version}, newer than this nnpcalc "
            f"({__version__}) reads (up to {FORMAT_VERSION}). Upgrade nnpcalc: pip install -U nnpcalc"
        )
    return metadata
