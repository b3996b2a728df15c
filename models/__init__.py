"""The model zoo: trained model files shipped with nnpcalc (installed as ``nnpcalc.zoo``).

Each model ``NAME`` is three files in this folder: ``NAME.pt`` (the model file),
``NAME.md`` (its model card: data, split, held-out errors, cost, the command that
reproduces it) and ``NAME.yaml`` (its training recipe). This module only finds them.
"""

from __future__ import annotations

from pathlib import Path

from nnpcalc.errors import UnknownModelError

#: the model used when none is named
DEFAULT = "hcno-gfn2"
_HERE = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.stem for p in _HERE.glob("*.pt"))


def path_of(name: str) -> Path:
    path = _HERE / f"{name}.pt"
    if not path.is_file():
        shipped = ", ".join(available()) or "none"
        raise UnknownModelError(
            f"{name!r} is neither a model file nor a shipped model (shipped: {shipped}). "
            "Pass the path of a .pt file written by `nnp export`."
        )
    return path


def resolve(model: str | Path | None) -> Path:
    """A model file path from a path, a shipped model's name, or None (the default model)."""
    if model is None:
        return path_of(DEFAULT)
    path = Path(model)
    if path.is_file() or path.is_dir():  # a directory: the loader says what to pass instead
        return path
    if path.suffix or "/" in str(model):
        raise UnknownModelError(f"model file {path} does not exist")
    return path_of(str(model))
