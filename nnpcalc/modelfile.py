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
``stress`` [3,3] eV/Å³ = 1/V ∂E/∂ε (ASE sign; absent, or NaN rows in a batch, where the cell has no volume),
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import ModelFileError
from .properties import dtype_name
from .units import CHARGE, ENERGY, LENGTH

FORMAT_VERSION = 1
METADATA_NAME = "metadata.json"
DIGEST_KEY = "digest"  # sha256 of the weights and the rest of the metadata (nnpcalc.integrity)
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
    #: optional per-atom inputs the model reads beyond the standard ones (``["atom_charges"]``:
    #: torchmd-net's Coulomb prior); files without the key take none
    inputs: list[str] = field(default_factory=list)


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
    } | ({"inputs": list(capabilities.inputs)} if capabilities.inputs else {})


def digest(module: torch.nn.Module, metadata: dict) -> str:
    """The digest a file carries (see :func:`nnpcalc.integrity.digest`)."""
    from .integrity import digest as compute

    return compute(module, metadata)


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with _torchscript_quiet():
        return torch.jit.script(module)


def save(module: torch.nn.Module, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Script ``module`` (unless already scripted) and write it with its metadata."""
    path = Path(path)
    scripted = module if isinstance(module, torch.jit.ScriptModule) else script(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {**metadata, DIGEST_KEY: digest(scripted, metadata)}
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
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(
            f"{path}: its {METADATA_NAME} is not valid JSON ({err}); the file was edited or damaged. "
            "Restore the original file or re-export it with `nnp export`."
        ) from None
    return _validate(path, metadata)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict]:
    """Load a model file: (scripted module in eval mode, metadata). Refuses what it can't serve,
    and a file whose metadata disagrees with its module (see :mod:`nnpcalc.integrity`)."""
    from .integrity import check_module
    from .validation import check_device

    metadata = read_metadata(path)
    device = check_device(device)
    try:
        with _torchscript_quiet():
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, ValueError, zip errors...
        raise ModelFileError(
            f"{path} could not be loaded by torch ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "The file may be truncated or damaged: copy it again or re-export it with `nnp export`."
        ) from err
    check_module(path, module, metadata)
    return module.eval(), metadata


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise ModelFileError(f"{path} is a directory, not a model file{hint}; give the path of the .pt file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    return path


def _validate(path: Path, metadata: dict) -> dict:
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: its {METADATA_NAME} holds a {type(metadata).__name__}, not an object; "
                             "restore the original file or re-export it with `nnp export`")
    if metadata.get("kind") != KIND:
        raise ModelFileError(f"{path} is not an nnpcalc model (metadata kind {metadata.get('kind')!r})")
    version = metadata.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:  # other values: check_schema names them
        raise ModelFileError(
            f"{path} has model-file format version {version}, newer than this nnpcalc "
            f"({__version__}) reads (up to {FORMAT_VERSION}). Upgrade nnpcalc: pip install -U nnpcalc"
        )
    from .integrity import check_schema

    return check_schema(path, metadata)
