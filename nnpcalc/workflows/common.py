"""What every workflow needs: a model from what the caller passed, optional imports, progress bars."""

from __future__ import annotations

import importlib

#: optional module → the extra that installs it
EXTRAS = {"phonopy": "materials", "pymatgen": "materials", "spglib": "materials",
          "matplotlib": "materials", "openmm": "openmm"}


def as_model(model, dtype: str = "float64", device: str = "cpu"):
    """A :class:`~nnpcalc.runtime.Model` from a path, a shipped model's name, a loaded Model or an
    NNPCalculator; None: the default model. (torch loads here, not when this module is imported.)"""
    from ..runtime import Model

    if isinstance(model, Model):
        return model
    if hasattr(model, "model") and isinstance(model.model, Model):  # an NNPCalculator
        return model.model
    return Model(model, dtype=dtype, device=device)


def optional(name: str):
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        top = name.split(".")[0]
        extra = EXTRAS.get(top, top)
        raise ImportError(
            f"{top} is not installed; it is needed here. Install it with "
            f"`pip install 'nnpcalc[{extra}]'`."
        ) from err


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "step", initial: int = 0):
    """A tqdm bar on stderr, or a silent stand-in when ``enabled`` is False."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled,
                dynamic_ncols=True, leave=True)
