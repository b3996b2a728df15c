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

from ..nn.uncertainty import scores, summarise


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
