"""Calibrating an ensemble energy head's uncertainty on held-out frames.

A shallow ensemble's raw spread ranks structures well but its scale is arbitrary, so one
factor per quantity makes it a predicted error: ``alpha^2 = mean(error^2 / sigma_raw^2)``
(the scale that maximises the Gaussian likelihood of the errors; z-scores get unit RMS).
Energies are scored per structure, forces per atom and Cartesian component. The training
module collects (error, raw spread) pairs on the validation split at the end of every
validation epoch, sets the head's buffers and records the summary below in the model's
provenance, so the card and ``nnp eval`` can report it.
"""

from __future__ import annotations

import numpy as np

#: z-score bands reported as coverage: the fraction of errors within 1 and 2 predicted sigma
BANDS = (1.0, 2.0)


class Collector:
    """(error, raw spread) pairs of one epoch: energies per structure, forces per atom."""

    def __init__(self):
        self.energy: list[np.ndarray] = []  # rows: error per atom, raw sigma per atom
        self.forces: list[np.ndarray] = []  # rows: RMS component error, raw sigma

    def add(self, out: dict, batch: dict, forces_calibration: float) -> None:
        from ..nn.uncertainty import spread

        if "energy_ensemble" not in out or "energy" not in batch["mask"]:
            return
        mask = batch["mask"]["energy"]
        natoms = batch["natoms"][mask].double()
        error = (out["energy"][mask].double() - batch["labels"]["energy"][mask].double()) / natoms
        sigma = spread(out["energy_ensemble"][mask].double()) / natoms
        self.energy.append(np.stack([error.detach().cpu().numpy(), sigma.detach().cpu().numpy()]))
        if "forces_uncertainty" in out and "forces" in batch["mask"]:
            atoms = batch["mask"]["forces"][batch["batch"]]
            diff = out["forces"][atoms].double() - batch["labels"]["forces"][atoms].double()
            rms = diff.pow(2).mean(-1).sqrt()
            raw = out["forces_uncertainty"][atoms].double() / forces_calibration
            self.forces.append(np.stack([rms.detach().cpu().numpy(), raw.detach().cpu().numpy()]))

    def result(self, calibration: dict[str, float] | None = None) -> dict:
        """Per quantity: the calibration factor and statistics after it, or with the given
        ``calibration`` factors (held-out scoring) their statistics; {} when nothing was collected."""
        out = {}
        for name, rows in (("energy", self.energy), ("forces", self.forces)):
            if rows:
                error, raw = np.concatenate(rows, axis=1)
                out[name] = (summarise(error, raw) if calibration is None
                             else scores(error, calibration[name] * np.maximum(raw, 1e-12)))
        return out


def summarise(error: np.ndarray, raw_sigma: np.ndarray) -> dict:
    """Calibration factor, coverage after calibration and the calibrated sigma's spread."""
    raw_sigma = np.maximum(raw_sigma, 1e-12)
    alpha = float(np.sqrt(np.mean((error / raw_sigma) ** 2)))
    return {"calibration": alpha} | scores(error, alpha * raw_sigma)


def scores(error: np.ndarray, sigma: np.ndarray) -> dict:
    """How well ``sigma`` (calibrated) predicts ``|error|``: coverage, z RMS, Spearman rank."""
    sigma = np.maximum(sigma, 1e-12)
    z = np.abs(error) / sigma
    result = {f"coverage_{b:g}sigma": float(np.mean(z <= b)) for b in BANDS}
    result |= {"z_rms": float(np.sqrt(np.mean(z**2))), "count": int(error.size),
               "sigma_mean": float(np.mean(sigma)), "sigma_p99": float(np.quantile(sigma, 0.99)),
               "sigma_max": float(np.max(sigma)), "error_rms": float(np.sqrt(np.mean(error**2)))}
    result["rank_correlation"] = spearman(np.abs(error), sigma)
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (0 for fewer than 3 values)."""
    if a.size < 3:
        return 0.0
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])
