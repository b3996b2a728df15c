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
    ]
}


def describe(names: list[str]) -> dict[str, dict[str, object]]:
    """Metadata entries (shape, unit, per_atom) for the outputs ``names``."""
    return {
        n: {"shape": PROPERTIES[n].shape, "unit": PROPERTIES[n].unit, "per_atom": PROPERTIES[n].per_atom}
        for n in names
    }
