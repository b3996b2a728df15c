"""A model against labelled structures: MAE and RMSE per property, and a parity plot.

For a model with an ensemble energy head it also scores the predicted uncertainty against
the actual error (per structure for the energy per atom, per atom for forces: the RMS of the
three components' errors against ``forces_uncertainty``) and draws a calibration plot.

Reference labels are read from ``ref_*`` keys (what ``nnpcalc.training`` writes:
``ref_energy``, ``ref_forces``, ``ref_stress``, ``ref_charges``, ``ref_dipole``) or, when
those are absent, from the results a file stores (``energy=``, ``forces`` ... in extended XYZ).
A property is scored on the frames that carry it and for which the model predicts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from ..runtime import Model
from . import io
from .common import as_model, optional, progress_bar

#: scored property → unit
UNITS = {"energy_per_atom": "eV/atom", "forces": "eV/Å", "stress": "eV/Å³", "charges": "e", "dipole": "e·Å"}


@dataclass
class Metric:
    name: str
    unit: str
    mae: float
    rmse: float
    count: int  #: values compared (force components, ...)


@dataclass
class EvalResult:
    metrics: list[Metric]
    #: property → (reference, prediction), flattened
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    frames: int = 0
    #: property → (actual error, predicted uncertainty) for models with uncertainty outputs
    uncertainty: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def uncertainty_scores(self) -> dict[str, dict]:
        """Per property: coverage within 1 and 2 sigma, z RMS, rank correlation (nn.uncertainty.scores)."""
        from ..nn.uncertainty import scores

        return {name: scores(error, sigma) for name, (error, sigma) in self.uncertainty.items()}

    def plot_calibration(self, path: str | Path) -> Path:
        """Predicted uncertainty against actual |error| per property (log-log), with the
        binned RMS error per sigma bin; a calibrated model follows the diagonal."""
        figure = optional("matplotlib.figure")
        names = list(self.uncertainty)
        fig = figure.Figure(figsize=(4 * max(len(names), 1), 4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, max(len(names), 1)))
        for ax, name in zip(axes, names):
            error, sigma = np.abs(self.uncertainty[name][0]), self.uncertainty[name][1]
            ax.scatter(sigma, np.maximum(error, 1e-8), s=4, alpha=0.4, label="frames / atoms")
            centres, rms = binned_rms(error, sigma)
            ax.plot(centres, rms, "o-", color="C3", label="RMS error per bin")
            lo, hi = float(sigma.min()), float(max(sigma.max(), error.max()))
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, label="error = sigma")
            ax.set(xscale="log", yscale="log", xlabel=f"predicted uncertainty ({UNITS[name]})",
                   ylabel=f"|error| ({UNITS[name]})", title=name)
            ax.tick_params(which="minor", labelbottom=False, labelleft=False)  # log axes: decades only
            ax.legend(fontsize=7)
        fig.savefig(path, dpi=120)
        return Path(path)

    def plot_parity(self, path: str | Path) -> Path:
        """One parity panel per property, as a PNG."""
        figure = optional("matplotlib.figure")
        fig = figure.Figure(figsize=(4 * max(len(self.metrics), 1), 4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, max(len(self.metrics), 1)))
        for ax, metric in zip(axes, self.metrics):
            ref, pred = self.pairs[metric.name]
            lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
            ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
            ax.scatter(ref, pred, s=4, alpha=0.5)
            ax.set(xlabel=f"reference ({metric.unit})", ylabel=f"model ({metric.unit})",
                   title=f"{metric.name}: MAE {metric.mae:.3g}")
        fig.savefig(path, dpi=120)
        return Path(path)


def evaluate(model: str | Path | Model | None, data, *, batch_size: int = 16, fidelity: str | int | None = None,
             dtype: str = "float64", device: str = "cpu", progress: bool = False,
             uncertainty: bool = True) -> EvalResult:
    """Score ``model`` on ``data`` (a file ASE reads, or a list of labelled ASE atoms).

    ``uncertainty``: for models with an ensemble head, also score their predicted uncertainty
    (costs the K - 1 extra backward passes of ``forces_uncertainty``).
    """
    if isinstance(data, (str, Path)):
        frames = io.read_file(data)
    else:  # keep the atoms themselves: a copy would drop the labels their calculator holds
        frames = [a if isinstance(a, Atoms) else io.to_atoms(a) for a in data]
    model = as_model(model, dtype, device)
    refs, preds = {k: [] for k in UNITS}, {k: [] for k in UNITS}
    errors: dict[str, list] = {"energy_per_atom": [], "forces": []}
    with progress_bar(len(frames), "eval", progress, unit="frame") as bar:
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            outputs = model.compute(chunk, fidelity=fidelity, stress=any(a.pbc.all() for a in chunk),
                                    uncertainty=uncertainty)
            for atoms, out in zip(chunk, outputs):
                _collect(reference(atoms), predicted(atoms, out), refs, preds)
                _collect_uncertainty(reference(atoms), predicted(atoms, out), out, len(atoms), errors)
            bar.update(len(chunk))
    pairs = {k: (np.concatenate(refs[k]), np.concatenate(preds[k])) for k in UNITS if refs[k]}
    spread = {k: tuple(np.concatenate(v) for v in zip(*rows)) for k, rows in errors.items() if rows}
    return EvalResult([_metric(k, *pairs[k]) for k in pairs], pairs, len(frames), spread)


def reference(atoms: Atoms) -> dict[str, np.ndarray]:
    """The labels a frame carries, under the scored names."""
    stored = atoms.calc.results if atoms.calc is not None else {}
    found = {
        "energy_per_atom": atoms.info.get("ref_energy", stored.get("energy")),
        "forces": atoms.arrays.get("ref_forces", stored.get("forces")),
        "stress": atoms.info.get("ref_stress", stored.get("stress")),
        "charges": atoms.arrays.get("ref_charges", stored.get("charges")),
        "dipole": atoms.info.get("ref_dipole", stored.get("dipole")),
    }
    labels = {k: np.asarray(v, dtype=float) for k, v in found.items() if v is not None}
    if "energy_per_atom" in labels:
        labels["energy_per_atom"] = labels["energy_per_atom"] / len(atoms)
    if "stress" in labels and labels["stress"].shape == (6,):
        labels["stress"] = voigt_6_to_full_3x3_stress(labels["stress"])
    return labels


def predicted(atoms: Atoms, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    pred = {k: np.asarray(out[k], dtype=float) for k in ("forces", "charges", "dipole") if k in out}
    pred["energy_per_atom"] = np.asarray(float(out["energy"]) / len(atoms))
    if "stress" in out and atoms.pbc.all():
        pred["stress"] = np.asarray(out["stress"], dtype=float)
    return pred


def _collect(ref: dict, pred: dict, refs: dict, preds: dict) -> None:
    for key in ref.keys() & pred.keys():
        refs[key].append(ref[key].ravel())
        preds[key].append(pred[key].ravel())


def _collect_uncertainty(ref: dict, pred: dict, out: dict, natoms: int, errors: dict) -> None:
    """(actual error, predicted sigma) pairs: energy per atom per frame, forces per atom."""
    if "energy_uncertainty" in out and "energy_per_atom" in ref:
        error = pred["energy_per_atom"] - ref["energy_per_atom"]
        errors["energy_per_atom"].append((np.atleast_1d(error), np.atleast_1d(out["energy_uncertainty"] / natoms)))
    if "forces_uncertainty" in out and "forces" in ref:
        rms = np.sqrt(np.mean((pred["forces"] - ref["forces"]) ** 2, axis=1))
        errors["forces"].append((rms, np.asarray(out["forces_uncertainty"], dtype=float)))


def binned_rms(error: np.ndarray, sigma: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean sigma and RMS error in ``bins`` quantile bins of sigma (a reliability curve)."""
    order = np.argsort(sigma)
    parts = [p for p in np.array_split(order, min(bins, len(order))) if len(p)]
    return (np.array([sigma[p].mean() for p in parts]), np.array([np.sqrt(np.mean(error[p] ** 2)) for p in parts]))


def _metric(name: str, ref: np.ndarray, pred: np.ndarray) -> Metric:
    error = pred - ref
    return Metric(name, UNITS[name], float(np.abs(error).mean()), float(np.sqrt((error**2).mean())), error.size)
