"""A shallow ensemble energy head: K small member networks on one shared backbone.

The model's energy is the members' mean; their spread is its uncertainty (a shallow
ensemble, as in Kellner & Ceriotti 2024, "Uncertainty quantification by direct propagation of
shallow ensembles"). Outputs, beside ``energy`` and ``energies``:

=====================  =======  ===========================================================
``energy_ensemble``    [K] eV   each member's total energy (their mean is ``energy``)
``energy_uncertainty`` [] eV    ``energy_calibration * std_k(E_k)``
``forces_uncertainty`` [N] eV/Å ``forces_calibration * rms_{k,xyz}(F_k - mean_k F_k)`` per
                                atom: the predicted RMS error of one force component. Costs
                                K - 1 extra backward passes, so only computed when asked
                                (``forward_batch(..., compute_uncertainty=True)``).
=====================  =======  ===========================================================

The two calibration factors are buffers set on the validation split at the end of every
validation epoch (``nnpcalc.training.calibration``): 1 means uncalibrated. Terms added to the
energy by later heads (ZBL prior, electrostatics) shift every member alike
(:func:`centre_ensemble`), so the mean of ``energy_ensemble`` is always ``energy``. Cost with K = 8: the head's MLP is
K times wider; the backbone, which dominates a call, runs once.
"""

from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch
from torch import Tensor, nn

from .graph_ops import scatter_sum
from .heads import ReferenceEnergy

#: output key through which the head hands its force calibration to ``Potential._derivatives``
#: (spelled out where TorchScript reads it: scripted code cannot read a global str)
FORCES_CALIBRATION = "_forces_calibration"


class MemberMLP(nn.Module):
    """K independent two-layer MLPs ``in -> hidden -> 1`` evaluated as one wide layer: [N, F] -> [N, K]."""

    def __init__(self, in_channels: int, hidden: int, members: int):
        super().__init__()
        self.members, self.hidden = members, hidden
        self.first = nn.Linear(in_channels, members * hidden)
        bound = 1.0 / math.sqrt(hidden)
        self.weight = nn.Parameter(torch.empty(members, hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.silu(self.first(x)).reshape(x.shape[0], self.members, self.hidden)
        return (h * self.weight).sum(-1) + self.bias


class EnsembleEnergyHead(ReferenceEnergy):
    """Energy head with ``members`` member networks; ``energy`` is their mean.

    Same buffers as every energy head (per-fidelity reference energies, scale, shift), so
    training prepares it the same way; plus the two calibration factors.
    """

    outputs = ("energy", "energies", "energy_ensemble", "energy_uncertainty", "forces_uncertainty")

    def __init__(self, in_channels: int, hidden: int, max_z: int = 100, num_fidelities: int = 1,
                 members: int = 8):
        super().__init__(max_z, num_fidelities)
        if members < 2:
            raise ValueError(f"an energy ensemble needs at least 2 members, got {members}")
        self.net = MemberMLP(in_channels, hidden, members)
        self.register_buffer("energy_calibration", torch.ones((), dtype=torch.float64))
        self.register_buffer("forces_calibration", torch.ones((), dtype=torch.float64))

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64 = torch.float64  # accumulate in float64 whatever the model's dtype
        batch, numbers = system["batch"], system["numbers"]
        reference = self.atomref.to(f64)[system["fidelity"][batch], numbers]
        per_atom = self.net(x).to(f64) * self.scale.to(f64) + self.shift.to(f64) + reference.unsqueeze(-1)
        members = scatter_sum(per_atom, batch, system["total_charge"].shape[0])  # [B, K]
        outputs["energies"] = per_atom.mean(dim=1)
        outputs["energy"] = members.mean(dim=1)
        outputs["energy_ensemble"] = members
        outputs["energy_uncertainty"] = spread(members) * self.energy_calibration.to(f64)
        if system["positions"].requires_grad:  # derivatives follow: the potential pops this key
            outputs["_forces_calibration"] = self.forces_calibration.to(f64)
        return outputs


def centre_ensemble(out: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Shift ``energy_ensemble`` onto the final ``energy``: heads after the ensemble head (priors,
    electrostatics) add the same energy to every member, so only the deviations are the head's."""
    if "energy_ensemble" in out:
        members = out["energy_ensemble"]
        out["energy_ensemble"] = out["energy"].unsqueeze(-1) + members - members.mean(dim=-1, keepdim=True)
    return out


def spread(members: Tensor) -> Tensor:
    """Standard deviation over the last axis (population: divides by K), without NaN at 0."""
    deviation = members - members.mean(dim=-1, keepdim=True)
    return torch.sqrt((deviation * deviation).mean(dim=-1))


def member_force_spread(members: Tensor, positions: Tensor, create_graph: bool) -> Tensor:
    """Per-atom RMS over members and x, y, z of ``F_k - mean_k F_k`` [N] (uncalibrated).

    ``members`` [B, K] must depend on ``positions`` [N, 3] through a graph that is kept: the
    deviations sum to zero, so K - 1 backward passes give all K member deviations.
    """
    deviation = members - members.mean(dim=1, keepdim=True)
    count = members.shape[1]
    squares = torch.zeros_like(positions)
    last = torch.zeros_like(positions)
    for k in range(count - 1):
        grads = torch.autograd.grad([deviation[:, k].sum()], [positions], retain_graph=True,
                                    create_graph=create_graph, allow_unused=True)
        grad = grads[0]
        if grad is not None:
            squares = squares + grad * grad
            last = last - grad
    squares = squares + last * last
    return torch.sqrt(squares.sum(dim=-1) / (3.0 * count))


def add_forces_uncertainty(out: Dict[str, Tensor], positions: Tensor, wanted: bool, create_graph: bool) -> None:
    """Called by ``Potential._derivatives`` before the forces: pop the head's calibration and,
    when ``wanted``, add ``forces_uncertainty`` [N] eV/Å."""
    if "_forces_calibration" not in out:
        return
    calibration = out.pop("_forces_calibration")
    if wanted and positions.requires_grad:
        raw = member_force_spread(out["energy_ensemble"], positions, create_graph)
        out["forces_uncertainty"] = raw * calibration.to(raw.dtype)


def far_outside(out: dict, metadata: dict, natoms: int, factor: float) -> str | None:
    """Why one structure's predicted uncertainty is far outside what the model was validated on
    (more than ``factor`` times the largest calibrated sigma of its validation split), or None.

    Reads the statistics training records in the metadata (``provenance["uncertainty"]``);
    a model without them, or ``factor <= 0``, never warns.
    """
    stats = metadata.get("provenance", {}).get("uncertainty", {})
    if factor <= 0 or "energy_uncertainty" not in out or "energy" not in stats:
        return None
    found = []
    per_atom = float(out["energy_uncertainty"]) / max(natoms, 1)
    if per_atom > factor * stats["energy"]["sigma_max"]:
        found.append(f"energy uncertainty {per_atom * 1e3:.3g} meV/atom (validation max "
                     f"{stats['energy']['sigma_max'] * 1e3:.3g})")
    if "forces_uncertainty" in out and "forces" in stats and len(out["forces_uncertainty"]):
        worst = float(max(out["forces_uncertainty"]))
        if worst > factor * stats["forces"]["sigma_max"]:
            found.append(f"force uncertainty {worst:.3g} eV/Å (validation max {stats['forces']['sigma_max']:.3g})")
    if not found:
        return None
    return ("structure far outside the training data: " + "; ".join(found) + f" (> {factor:g}x). "
            "Its predictions may be wrong: label it and add it to the training data (`nnp learn`).")


# -- calibration and scoring (numpy): shared by training, `nnp eval` and `nnp learn` --------------

#: z-score bands reported as coverage: the fraction of errors within 1 and 2 predicted sigma
BANDS = (1.0, 2.0)


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
    value = float(np.corrcoef(ra, rb)[0, 1])
    return value if np.isfinite(value) else 0.0
