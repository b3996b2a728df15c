"""ASE calculator for nnpcalc model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .runtime import Model


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

    The total charge is read from ``atoms.info["charge"]`` (default 0); changing it triggers
    a new calculation. Stress is reported for periodic structures only.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "charges", "dipole",
                              "energy_uncertainty", "forces_uncertainty"]

    def __init__(self, model: str | Path | Model | None = None, *, device="cpu", dtype="float32",
                 fidelity: str | int | None = None, neighbors: str = "auto", uncertainty: bool = False,
                 warn_uncertainty: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, Model):
            model = Model(model, device=device, dtype=dtype, neighbors=neighbors)
        self.model = model
        self.fidelity = fidelity
        self.model.fidelity_index(fidelity)  # fail now, not at the first step
        self._charge: float | None = None
        self.uncertainty, self.warn_uncertainty = uncertainty, warn_uncertainty

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol)
        if self._charge is not None and _total_charge(atoms) != self._charge:
            changes.append("charge")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.any())
        uncertainty = self.uncertainty or "forces_uncertainty" in properties
        (out,) = self.model.compute([self.atoms], [_total_charge(self.atoms)], self.fidelity, stress=periodic,
                                    uncertainty=uncertainty)
        self.store(self.atoms, out)

    def store(self, atoms, out: dict[str, np.ndarray]) -> None:
        """Record model outputs ``out`` (from ``Model.compute``) as this calculator's results for ``atoms``."""
        self.atoms = atoms.copy()
        self._charge = _total_charge(atoms)
        self.results = _ase_results(out, bool(atoms.pbc.any()))
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
    stress = any(bool(atoms.pbc.any()) for atoms in structures)
    outputs = model.compute(structures, charges, calcs[0].fidelity, stress=stress, uncertainty=calcs[0].uncertainty)
    for calc, atoms, out in zip(calcs, structures, outputs):
        calc.store(atoms, out)


def _total_charge(atoms) -> float:
    return float(atoms.info.get("charge", 0.0))


def _ase_results(out: dict[str, np.ndarray], periodic: bool) -> dict:
    """Map model outputs onto ASE's property names and shapes."""
    results = {"energy": float(out["energy"]), "free_energy": float(out["energy"])}
    results["energies"] = out["energies"].astype(float)
    results["forces"] = out["forces"].astype(float)
    if periodic and "stress" in out:
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
