"""The total charge of a structure: the one place that reads it.

ASE has no charge attribute of its own; two conventions are in use and both are read:

* ``atoms.info["charge"]`` (ASE's calculators, extended XYZ, nnpcalc's own files);
* ``atoms.charge``, which pymatgen's ``AseAtomsAdaptor.get_atoms(molecule)`` sets (it is a
  plain attribute: ``atoms.copy()`` drops it, so :func:`nnpcalc.workflows.io.to_atoms` moves it
  into ``info``).

Every engine (calculator, runtime, OpenMM, MD, phonons, training data) asks :func:`total_charge`.
"""

from __future__ import annotations

import math

from ase import Atoms

from .errors import InvalidChargeError
from .validation import name

KEY = "charge"  # the ``atoms.info`` key


def total_charge(atoms: Atoms) -> float:
    """The total charge of ``atoms`` in e (0 when neither convention sets one), checked."""
    stated = atoms.info.get(KEY)
    adaptor = getattr(atoms, "charge", None)
    if stated is not None and adaptor is not None and _number(stated, atoms) != _number(adaptor, atoms):
        raise InvalidChargeError(
            f"{name(atoms)}: two total charges, atoms.info['charge'] = {stated!r} and atoms.charge = "
            f"{adaptor!r} (set by pymatgen's AseAtomsAdaptor); keep one (del atoms.charge, or set "
            "atoms.info['charge'] to the value you mean)."
        )
    value = stated if stated is not None else adaptor
    return check_total_charge(0.0 if value is None else _number(value, atoms), atoms)


def check_total_charge(charge: float, atoms: Atoms) -> float:
    """``charge`` as a float, refused when not finite or beyond what the atoms can hold.

    A cation cannot lose more electrons than it has (charge ≤ ΣZ); an anion holding more extra
    electrons than the protons of all its nuclei is as unphysical (charge ≥ −ΣZ).
    """
    charge = _number(charge, atoms)
    if not math.isfinite(charge):
        raise InvalidChargeError(
            f"{name(atoms)}: total charge is {charge}; set a finite one in e, e.g. atoms.info['charge'] = 0"
        )
    electrons = int(atoms.numbers.sum()) if len(atoms) else 0
    if abs(charge) > max(electrons, 0) and charge != 0:
        raise InvalidChargeError(
            f"{name(atoms)}: total charge {charge:g} e is beyond what its {len(atoms)} atom(s) can carry "
            f"(|charge| ≤ {electrons}, the number of electrons of the neutral structure); the charge is "
            "in elementary charges (e), per structure, not per atom."
        )
    return charge


def _number(value, atoms: Atoms) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidChargeError(
            f"{name(atoms)}: total charge {value!r} is not a number; set atoms.info['charge'] to a float in e"
        ) from None

