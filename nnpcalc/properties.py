"""The properties a model file can return: name, shape, unit, per-atom or per-structure.

This table is the single declaration of every output name; the model-file metadata, the
ASE calculator and the tests all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Property:
    name: str
    shape: str  # symbolic shape of the single-structure output: "" scalar, "N,3" per atom
    unit: str
    per_atom: bool
    doc: str


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in [
        Property("energy", "", "eV", False, "total potential energy"),
        Property("energies", "N", "eV", True, "per-atom energy contributions"),
        Property("forces", "N,3", "eV/Angstrom", True, "-dE/dr, conservative"),
        Property("stress", "3,3", "eV/Angstrom^3", False, "1/V dE/d(strain), ASE sign"),
        Property("charges", "N", "e", True, "partial charges; sum to total_charge"),
        Property("dipole", "3", "e*Angstrom", False, "sum_i q_i r_i"),
        Property("energy_ensemble", "K", "eV", False, "each ensemble member's energy (nn.uncertainty)"),
        Property("energy_uncertainty", "", "eV", False, "calibrated std of the ensemble energies"),
        Property("forces_uncertainty", "N", "eV/Angstrom", True,
                 "calibrated per-atom RMS spread of one force component; computed on request"),
    ]
}


def describe(names: list[str]) -> dict[str, dict[str, object]]:
    """Metadata entries (shape, unit, per_atom) for the outputs ``names``."""
    return {
        n: {"shape": PROPERTIES[n].shape, "unit": PROPERTIES[n].unit, "per_atom": PROPERTIES[n].per_atom}
        for n in names
    }


#: Model precisions: the name in metadata, options and configs is the ``torch`` dtype's name.
#: Defaults: float32 where a model serves another program's loop (``Model``, ``NNPCalculator``,
#: OpenMM, training, export), ~2× faster (docs/model-file.md) and far more precise than any
#: model's error; float64 in nnpcalc's own workflows and CLI (relax, MD, phonons, check, eval),
#: whose finite differences, NVE drift and force constants need the digits.
DTYPES = ("float32", "float64")


def torch_dtype(dtype):
    """``torch.float32``/``torch.float64`` from its name (or itself); ValueError names the choices."""
    import torch

    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return getattr(torch, name)


def dtype_name(dtype) -> str:
    """The table's name of a dtype (``torch.float64`` → ``"float64"``)."""
    return str(torch_dtype(dtype)).removeprefix("torch.")
