"""ASE calculator for nnpcalc model files."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes, compare_atoms, equal
from ase.stress import full_3x3_to_voigt_6_stress

from .charge import total_charge as _total_charge
from .errors import StressUnavailableError, UnknownOptionError
from .runtime import Model
from .validation import has_volume, name

#: ``ase.calculators.calculator.Calculator`` options this calculator passes on; any other
#: keyword would silently become an ignored "parameter", so it is refused
ASE_OPTIONS = ("restart", "ignore_bad_restart_file", "label", "atoms", "directory")


class NNPCalculator(Calculator):
    """Energy, forces, stress, per-atom energies, charges and dipole from a model file.

    Args:
        model: path to a model file, the name of a shipped model, a loaded
            :class:`nnpcalc.runtime.Model`, or None for the shipped default model.
        device: torch device ("cpu", "cuda", ...).
        dtype: "float32" or "float64"; the calculator's own precision.
        fidelity: which fidelity (name or index) of a multi-fidelity model to predict.
        neighbors: neighbour-list back-end ("auto", "vesin", "torch"); see nnpcalc.neighbors.
        uncertainty: also compute ``forces_uncertainty`` at every call (models with an ensemble
            energy head; K - 1 extra backward passes). ``energy_uncertainty`` is always there
            for such models; ``atoms.calc.get_property("forces_uncertainty")`` asks for it once.
        warn_uncertainty: warn (:class:`~nnpcalc.errors.UncertaintyWarning`) when a structure's
            uncertainty exceeds this many times the largest seen on the model's validation split;
            0 never warns.

    The total charge is read by :func:`nnpcalc.charge.total_charge`: ``atoms.info["charge"]``,
    or ``atoms.charge`` as pymatgen's adaptor sets it (default 0); changing it triggers a new
    calculation. Stress exists for periodic structures whose cell has a volume; asking it of any
    other raises :class:`~nnpcalc.errors.StressUnavailableError` (an ASE
    ``PropertyNotImplementedError``).

    One calculator may be shared by threads (each call holds a lock: calls run one at a time)
    and pickled (the model is reloaded from its path, with its dtype and device).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "charges", "dipole",
                              "energy_uncertainty", "forces_uncertainty"]

    def __init__(self, model: str | Path | Model | None = None, *, device="cpu", dtype="float32",
                 fidelity: str | int | None = None, neighbors: str = "auto", uncertainty: bool = False,
                 warn_uncertainty: float = 5.0, **kwargs):
        unknown = sorted(set(kwargs) - set(ASE_OPTIONS))
        if unknown:
            raise UnknownOptionError(
                f"NNPCalculator got unknown keyword(s) {', '.join(unknown)}; it takes model, device, dtype, "
                f"fidelity, neighbors, uncertainty, warn_uncertainty and ASE's {', '.join(ASE_OPTIONS)}"
            )
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        if not isinstance(model, Model):
            model = Model(model, device=device, dtype=dtype, neighbors=neighbors)
        self.model = model
        self.fidelity = fidelity
        self.model.fidelity_index(fidelity)  # fail now, not at the first step
        self._charge: float | None = None
        self.closest_pair: tuple[int, int, float] | None = None
        self.uncertainty, self.warn_uncertainty = uncertainty, warn_uncertainty

    def get_property(self, name, atoms=None, allow_calculation=True):
        with self._lock:  # check_state, calculate and reading results are one step per caller
            return super().get_property(name, atoms, allow_calculation)

    def calculate_properties(self, atoms, properties):
        with self._lock:
            return super().calculate_properties(atoms, properties)

    def export_properties(self):
        """ASE's ``Properties`` of the results ASE has names for (``atoms.get_properties``, i-PI's
        ASE driver): ``energy_uncertainty``/``forces_uncertainty`` are not ASE outputs (a KeyError
        there) and stay in ``results``."""
        from ase.outputs import Properties, all_outputs

        return Properties({key: value for key, value in self.results.items() if key in all_outputs})

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def check_state(self, atoms, tol=1e-15):
        changes = system_changes(self.atoms, atoms, tol, self.ignored_changes)
        if self._charge is not None and _total_charge(atoms) != self._charge:
            changes.append("charge")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        charge = _total_charge(atoms if atoms is not None else self.atoms)  # before the copy drops atoms.charge
        super().calculate(atoms, properties, system_changes)
        # stress comes with every call on a cell with a volume: it costs ~2 % of a force call (Cu 256),
        # while asking for it later (nnp md's pressure column) would cost a whole second call
        stress = has_volume(self.atoms)
        if "stress" in properties and not stress:
            raise StressUnavailableError(
                f"{name(self.atoms)}: no stress without a cell volume (pbc={self.atoms.pbc.tolist()}, cell volume "
                f"{abs(self.atoms.cell.volume):.3g} Å³). Ask for energy and forces only, or give the structure "
                "a periodic cell with a volume (atoms.set_cell(...), atoms.pbc = True)."
            )
        uncertainty = self.uncertainty or "forces_uncertainty" in properties
        (out,) = self.model.compute([self.atoms], [charge], self.fidelity, stress=stress, uncertainty=uncertainty,
                                    closest=True)
        closest = out.pop("closest_pair", None)
        self.store(self.atoms, out, charge)
        self.closest_pair = closest  # (i, j, Å) of the call's shortest pair: nnp md's fused-atom check reads it

    def store(self, atoms, out: dict[str, np.ndarray], charge: float | None = None) -> None:
        """Record model outputs ``out`` (from ``Model.compute``) as this calculator's results for ``atoms``."""
        with self._lock:
            self._charge = _total_charge(atoms) if charge is None else charge
            self.atoms = atoms if atoms is self.atoms else atoms.copy()  # calculate() stores its own copy
            self.results = _ase_results(out)
            self.closest_pair = None  # calculate() sets it where the runtime found it
        _warn_if_outside(out, self.model.metadata, len(atoms), self.warn_uncertainty)


def calculate_batch(structures) -> None:
    """Evaluate structures that share one model in a single batched call.

    Every structure must carry an :class:`NNPCalculator` on the same :class:`Model`; afterwards
    each calculator holds its structure's results, exactly as if it had computed them alone.
    """
    calcs = [atoms.calc for atoms in structures]
    model = calcs[0].model
    if not all(isinstance(c, NNPCalculator) and c.model is model and c.fidelity == calcs[0].fidelity for c in calcs):
        raise ValueError("calculate_batch needs every structure on an NNPCalculator sharing one Model and fidelity")
    charges = [_total_charge(atoms) for atoms in structures]
    stress = any(has_volume(atoms) for atoms in structures)
    outputs = model.compute(structures, charges, calcs[0].fidelity, stress=stress, uncertainty=calcs[0].uncertainty)
    for calc, atoms, out, charge in zip(calcs, structures, outputs, charges):
        calc.store(atoms, out, charge)


def system_changes(old, new, tol: float = 1e-15, ignored=()) -> list[str]:
    """What ASE's ``compare_atoms(old, new, tol, ignored)`` returns (the same changes), faster: each
    array is first compared exactly, then by its largest difference; ASE's ``np.allclose`` per
    array made one check ~0.24 ms (ethanol), and an MD step asks two to five times."""
    if old is None:
        return compare_atoms(old, new, tol, ignored)
    checked = _ALL_CHANGES - set(ignored) if ignored else _ALL_CHANGES
    changes = []
    if "cell" in checked and not _same(old.cell.array, new.cell.array, tol):  # ASE compares the Cell objects
        changes.append("cell")
    if "pbc" in checked and not _same(old.pbc, new.pbc, tol):
        changes.append("pbc")
    arrays_old, arrays_new = old.arrays, new.arrays
    changes += checked & (arrays_old.keys() ^ arrays_new.keys())
    changes += [prop for prop in checked & arrays_old.keys() & arrays_new.keys()
                if not _same(arrays_old[prop], arrays_new[prop], tol)]
    return changes


_ALL_CHANGES = frozenset(all_changes)


def _same(a, b, tol: float) -> bool:
    """ASE's ``equal(a, b, atol=tol)`` (``np.allclose`` with rtol 0), deciding the common cases without it."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b):
        return True
    if a.dtype.kind == "f" and b.dtype.kind == "f" and a.size:
        largest = np.abs(a - b).max()
        if largest > tol:  # NaN compares False both ways: left to allclose (inf - inf)
            return False
        if largest <= tol:
            return True
    return equal(a, b, atol=tol)


def _ase_results(out: dict[str, np.ndarray]) -> dict:
    """Map model outputs onto ASE's property names and shapes."""
    results = {"energy": float(out["energy"]), "free_energy": float(out["energy"])}
    results["energies"] = out["energies"].astype(float)
    results["forces"] = out["forces"].astype(float)
    if "stress" in out:  # Model.compute gives it only where the cell has a volume
        results["stress"] = full_3x3_to_voigt_6_stress(out["stress"].astype(float))
    for key in ("charges", "dipole", "forces_uncertainty"):
        if key in out:
            results[key] = out[key].astype(float)
    if "energy_uncertainty" in out:
        results["energy_uncertainty"] = float(out["energy_uncertainty"])
    return results


def _warn_if_outside(out: dict, metadata: dict, natoms: int, factor: float) -> None:
    from .nn.uncertainty import far_outside

    message = far_outside(out, metadata, natoms, factor)
    if message:
        import warnings

        from .errors import UncertaintyWarning

        warnings.warn(message, UncertaintyWarning, stacklevel=3)
