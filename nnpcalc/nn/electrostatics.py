"""Long-range electrostatics from the model's own charges, inside the model file.

The term adds the Coulomb energy of the charge head's charges ``q`` (e) to the energy head's:

    E = k/2 Σ_{i≠j, images} q_i q_j (1 − s(r_ij)) / r_ij,    k = e²/(4πε₀) = 14.40 eV·Å

``s(r) = 1 − 10x³ + 15x⁴ − 6x⁵`` (x = r / r_d, C² smooth) switches the Coulomb interaction
off below the damping radius ``r_d`` (default: the model's cutoff) and is exactly 0 beyond it:
inside the cutoff the network learns the whole short-range energy, beyond it the energy is
bare Coulomb. ``r_d = 0`` gives bare Coulomb everywhere.

* Molecules (``pbc`` all False): a direct sum over every pair of the structure, O(N²).
* Periodic cells (``pbc`` all True, any triclinic cell): Ewald summation. A tolerance δ
  (``accuracy``) and a real-space cutoff ``r_c`` set the split ``α = √(−ln δ) / r_c`` and the
  reciprocal cutoff ``k_c = 2α√(−ln δ)``, so both truncation errors are ~δ. A charged cell gets
  the neutralising background −πkQ²/(2Vα²) (as pymatgen's ``EwaldSummation``). By default
  (``ewald_cutoff`` "auto") ``r_c = max(r_d, 0.3 √(−ln δ) (V²/N)^{1/6})`` balances the pair
  list against the k-vectors (Ewald's optimum, constant measured on water: ~7 Å for 576 atoms).
* Slabs and wires (mixed ``pbc``) are refused: a 2D correction is not implemented.

Everything is pure torch and TorchScript-able; forces and stress come from the model's one
autograd pass (positions and the strained ``system["cell"]``). Per-atom energies: each pair's
energy is split evenly; reciprocal-space energy is q_i φ_i / 2; background evenly.

Optionally (``self_energy``) a charge self-energy Σ_i (χ_Z q_i + ½ J_Z q_i²) with learnable
per-element χ and J > 0 follows (:class:`ChargeSelfEnergy`): it makes the energy depend on the
total charge, which a Coulomb sum between the charges alone cannot do for ionisation energies.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from .. import graph
from ..units import COULOMB_EV_ANGSTROM
from .graph_ops import scatter_sum
from .heads import Head

#: the values of the architecture option ``electrostatics``
METHODS = ("none", "coulomb", "ewald")


def switch(r: Tensor, radius: float) -> Tensor:
    """s(r): 1 at r = 0, 0 from ``radius`` on, C² smoothstep in between (0 everywhere if radius ≤ 0)."""
    if radius <= 0.0:
        return torch.zeros_like(r)
    x = (r / radius).clamp(max=1.0)
    return 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


def damped_kernel(r: Tensor, radius: float) -> Tensor:
    """(1 − s(r)) / r [1/Å], without dividing by small r (x²(10 − 15x + 6x²)/r_d below r_d)."""
    if radius <= 0.0:
        return 1.0 / r
    x = r / radius
    inside = x < 1.0
    xs = torch.where(inside, x, torch.zeros_like(x))
    near = xs * xs * (10.0 - 15.0 * xs + 6.0 * xs * xs) / radius
    return torch.where(inside, near, 1.0 / torch.where(inside, torch.ones_like(r), r))


def ewald_parameters(accuracy: float, cutoff: float) -> Tuple[float, float]:
    """(α [1/Å], k_c [1/Å]) for tolerance ``accuracy`` and real-space ``cutoff`` [Å]."""
    s = math.sqrt(-math.log(accuracy))
    alpha = s / cutoff
    return alpha, 2.0 * alpha * s


def direct_energies(positions: Tensor, charges: Tensor, radius: float) -> Tensor:
    """Per-atom damped Coulomb energies [N] (in units of k: e²/Å) of one molecule (every pair, no images)."""
    n = positions.shape[0]
    pair = torch.triu_indices(n, n, 1, device=positions.device)
    i, j = pair[0], pair[1]
    vec = positions[j] - positions[i]
    r = torch.sqrt((vec * vec).sum(-1))
    half = 0.5 * charges[i] * charges[j] * damped_kernel(r, radius)
    return scatter_sum(half, i, n) + scatter_sum(half, j, n)


def real_space(positions: Tensor, charges: Tensor, cell: Tensor, alpha: float, cutoff: float,
               radius: float) -> Tensor:
    """Per-atom real-space Ewald energies [N] (e²/Å): ½ Σ_j,n q_i q_j (erfc(αr) − s(r)) / r, r < cutoff."""
    n = positions.shape[0]
    batch = torch.zeros(n, dtype=torch.long, device=positions.device)
    pbc = torch.ones(1, 3, dtype=torch.bool, device=positions.device)
    edge_index, shifts = graph.neighbor_list(positions, cell.unsqueeze(0), pbc, batch, 1, cutoff)
    vec = graph.edge_vectors(positions, cell.unsqueeze(0), batch, edge_index, shifts)
    r = torch.sqrt((vec * vec).sum(-1))
    i, j = edge_index[0], edge_index[1]
    kernel = (torch.erfc(alpha * r) - switch(r, radius)) / r
    return scatter_sum(0.5 * charges[i] * charges[j] * kernel, i, n)


def k_vectors(cell: Tensor, k_cut: float) -> Tensor:
    """Reciprocal vectors k = 2π m B (B = cell⁻ᵀ) with 0 < |k| ≤ k_cut, one of each ±k pair [K,3]."""
    reciprocal = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)  # rows b_i, a_i·b_j = 2πδ_ij
    with torch.no_grad():
        # |m_i| = |k·a_i| / 2π ≤ k_cut |a_i| / 2π
        reach = torch.ceil(k_cut * torch.linalg.norm(cell.detach(), dim=1) / (2.0 * math.pi)).to(torch.long)
        axes = [torch.arange(-int(reach[a]), int(reach[a]) + 1, device=cell.device) for a in range(3)]
        grid = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
        m = torch.stack([g.reshape(-1) for g in grid], dim=1)
        # half space: the first non-zero component is positive (k and −k give the same term)
        half = (m[:, 0] > 0) | ((m[:, 0] == 0) & ((m[:, 1] > 0) | ((m[:, 1] == 0) & (m[:, 2] > 0))))
        m = m[half].to(cell.dtype)
        k = m @ reciprocal.detach()
        m = m[(k * k).sum(-1) <= k_cut * k_cut]
    return m @ reciprocal


def reciprocal_space(positions: Tensor, charges: Tensor, cell: Tensor, alpha: float, k_cut: float) -> Tensor:
    """Per-atom reciprocal Ewald energies [N] (e²/Å): (2π/V) Σ_k e^{−k²/4α²}/k² q_i Re(e^{ik·r_i} S(k)*)."""
    k = k_vectors(cell, k_cut)
    volume = torch.linalg.det(cell).abs()
    k2 = (k * k).sum(-1)
    weight = 2.0 * torch.exp(-k2 / (4.0 * alpha * alpha)) / k2  # 2: both k and −k
    phase = positions @ k.transpose(0, 1)  # [N, K]
    cos, sin = torch.cos(phase), torch.sin(phase)
    s_cos, s_sin = charges @ cos, charges @ sin  # structure factor S(k) = Σ q e^{ik·r}
    potential = cos @ (weight * s_cos) + sin @ (weight * s_sin)
    return (2.0 * math.pi / volume) * charges * potential


def auto_cutoff(num_atoms: int, volume: float, accuracy: float, radius: float) -> float:
    """Real-space cutoff [Å] balancing pairs (∝ r_c³) against k-vectors (∝ V/r_c³), at least ``radius``.

    The constant 0.3 was measured on water (2 CPU threads): 7 Å at 576 atoms, 10 Å at 4 608.
    """
    balanced = 0.3 * math.sqrt(-math.log(accuracy)) * (volume * volume / num_atoms) ** (1.0 / 6.0)
    return max(radius, balanced)


def ewald_energies(positions: Tensor, charges: Tensor, cell: Tensor, accuracy: float, cutoff: float,
                   radius: float) -> Tensor:
    """Per-atom damped Coulomb energies [N] (e²/Å) of one periodic cell, by Ewald summation.

    ``cutoff`` ≤ 0: :func:`auto_cutoff` (from the unstrained volume: a parameter, not a variable).
    """
    if cutoff <= 0.0:
        volume = float(torch.linalg.det(cell.detach()).abs())
        cutoff = auto_cutoff(positions.shape[0], volume, accuracy, radius)
    alpha, k_cut = ewald_parameters(accuracy, cutoff)
    energies = real_space(positions, charges, cell, alpha, cutoff, radius)
    energies = energies + reciprocal_space(positions, charges, cell, alpha, k_cut)
    energies = energies - alpha / math.sqrt(math.pi) * charges * charges
    volume = torch.linalg.det(cell).abs()
    total = charges.sum()
    background = -math.pi * total * total / (2.0 * volume * alpha * alpha)
    return energies + background / positions.shape[0]


def interaction_energy(positions: Tensor, charges: Tensor, group: Tensor, cell: Tensor, periodic: bool,
                       accuracy: float = 1e-6, cutoff: float = 10.0) -> Tensor:
    """Bare Coulomb energy (e²/Å) between the charges in ``group`` (bool [N]) and the others.

    Molecules: Σ_{i∈A, j∉A} q_i q_j / r_ij. Periodic cells: the A–B part of the Ewald sum of all
    charges (real-space pairs across the groups, 2 Re(S_A S_B*) in reciprocal space, and the
    background −πQ_A Q_B / (Vα²)); no self term. For ML/MM electrostatic embedding.
    """
    a, b = group.nonzero().squeeze(1), (~group).nonzero().squeeze(1)
    if not periodic:
        vec = positions[b].unsqueeze(0) - positions[a].unsqueeze(1)
        return (charges[a].unsqueeze(1) * charges[b].unsqueeze(0) / torch.linalg.norm(vec, dim=-1)).sum()
    alpha, k_cut = ewald_parameters(accuracy, cutoff)
    n = positions.shape[0]
    zeros = torch.zeros(n, dtype=torch.long, device=positions.device)
    pbc = torch.ones(1, 3, dtype=torch.bool, device=positions.device)
    edge_index, shifts = graph.neighbor_list(positions, cell.unsqueeze(0), pbc, zeros, 1, cutoff)
    across = group[edge_index[0]] & ~group[edge_index[1]]  # i in A, j in B: each pair once
    edge_index, shifts = edge_index[:, across], shifts[across]
    vec = graph.edge_vectors(positions, cell.unsqueeze(0), zeros, edge_index, shifts)
    r = torch.sqrt((vec * vec).sum(-1))
    real = (charges[edge_index[0]] * charges[edge_index[1]] * torch.erfc(alpha * r) / r).sum()
    k = k_vectors(cell, k_cut)
    k2 = (k * k).sum(-1)
    weight = 2.0 * torch.exp(-k2 / (4.0 * alpha * alpha)) / k2
    phase = positions @ k.transpose(0, 1)
    q_a, q_b = torch.where(group, charges, 0.0), torch.where(group, 0.0, charges)
    cos, sin = torch.cos(phase), torch.sin(phase)
    cross = (q_a @ cos) * (q_b @ cos) + (q_a @ sin) * (q_b @ sin)  # Re(S_A S_B*)
    volume = torch.linalg.det(cell).abs()
    reciprocal = (2.0 * math.pi / volume) * 2.0 * (weight * cross).sum()
    background = -math.pi * q_a.sum() * q_b.sum() / (volume * alpha * alpha)
    return real + reciprocal + background


class Electrostatics(Head):
    """Adds the damped Coulomb energy of ``outputs["charges"]`` to ``energy`` and ``energies``.

    Args:
        method: "coulomb" (molecules only) or "ewald" (molecules and periodic cells).
        damping_radius: r_d [Å] below which the network keeps the interaction (0: bare Coulomb).
        accuracy: Ewald tolerance δ (relative truncation error of each Ewald sum).
        ewald_cutoff: Ewald real-space cutoff r_c [Å], ≥ damping_radius; 0: automatic per cell.
    """

    name = "electrostatics"
    outputs: tuple = ()  # adds to "energy" and "energies", declares no output of its own

    def __init__(self, method: str, damping_radius: float, accuracy: float = 1e-6, ewald_cutoff: float = 0.0):
        super().__init__()
        if method not in METHODS[1:]:
            raise ValueError(f"electrostatics must be one of {', '.join(METHODS)}, got {method!r}")
        if not 0.0 < accuracy < 1.0:
            raise ValueError(f"electrostatics accuracy must be in (0, 1), e.g. 1e-6; got {accuracy}")
        if damping_radius < 0.0 or (ewald_cutoff != 0.0 and ewald_cutoff < damping_radius):
            raise ValueError(
                f"electrostatics needs 0 <= damping_radius <= ewald_cutoff (or ewald_cutoff 'auto'); "
                f"got {damping_radius} and {ewald_cutoff} (Å)"
            )
        self.periodic = method == "ewald"
        self.damping_radius = float(damping_radius)
        self.accuracy = float(accuracy)
        self.ewald_cutoff = float(ewald_cutoff)
        self.coulomb = float(COULOMB_EV_ANGSTROM)  # eV·Å

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        charges, batch = outputs["charges"], system["batch"]
        positions, cell = system["positions"].to(charges.dtype), system["cell"].to(charges.dtype)
        self._check(system["pbc"])
        energies = torch.zeros_like(charges)
        for b in range(cell.shape[0]):
            atoms = (batch == b).nonzero().squeeze(1)
            pos, q = positions[atoms], charges[atoms]
            if bool(system["pbc"][b].any()):
                part = ewald_energies(pos, q, cell[b], self.accuracy, self.ewald_cutoff, self.damping_radius)
            else:
                part = direct_energies(pos, q, self.damping_radius)
            energies = energies.index_add(0, atoms, part)
        energies = self.coulomb * energies.to(torch.float64)
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + scatter_sum(energies, batch, cell.shape[0])
        return outputs

    def _check(self, pbc: Tensor) -> None:
        """Refuse slabs (always) and periodic cells (for "coulomb"), naming the fix."""
        periodic = pbc.any(dim=1)
        if bool((periodic & ~pbc.all(dim=1)).any()):
            raise ValueError(
                "nnpcalc model: its electrostatics serves molecules (pbc all False) and fully "
                "periodic cells (pbc all True), not slabs or wires (mixed pbc): set all three "
                "pbc flags, with vacuum along the open axis, or use a model without electrostatics"
            )
        if not self.periodic and bool(periodic.any()):
            raise ValueError(
                "nnpcalc model: its electrostatics is 'coulomb' (molecules only); periodic cells "
                "need a model built with electrostatics 'ewald'"
            )


#: χ = CHI_SCALE θ_χ (eV/e), J = HARDNESS_SCALE softplus(θ_J) (eV/e²): Adam moves each θ by ~lr a
#: step, so the scales let χ and J travel the eV range of ionisation energies within a training run
CHI_SCALE, HARDNESS_SCALE = 10.0, 10.0
#: the hardness a fresh term starts from (eV/e²), small: a model fine-tuned with it starts where it was
INITIAL_HARDNESS = 0.5


class ChargeSelfEnergy(Head):
    """Charge self-energy ``E = Σ_i (χ_Z q_i + ½ J_Z q_i²)`` of the charge head's charges (eV).

    Learnable per-element electronegativity χ_Z (eV/e, starts at 0) and hardness J_Z > 0
    (eV/e², softplus, starts at ``INITIAL_HARDNESS``), as in charge equilibration. Since the
    charges sum to the total charge, this is how the energy learns its dependence on the total
    charge (ionisation, protonation) that the short-range network cannot see. Float64.
    ``loads_fresh``: fine-tuning from a file without the term (``init_from``) starts it anew.
    """

    name = "self_energy"
    outputs: tuple = ()  # adds to "energy" and "energies"
    loads_fresh = True

    def __init__(self, max_z: int):
        super().__init__()
        start = math.log(math.expm1(INITIAL_HARDNESS / HARDNESS_SCALE))  # softplus⁻¹
        self.electronegativity = nn.Parameter(torch.zeros(max_z + 1))
        self.hardness = nn.Parameter(torch.full((max_z + 1,), start))
        self.chi_scale, self.hardness_scale = CHI_SCALE, HARDNESS_SCALE

    def parameters_ev(self) -> Tuple[Tensor, Tensor]:
        """(χ [eV/e], J [eV/e²]) per atomic number, float64."""
        chi = self.chi_scale * self.electronegativity.to(torch.float64)
        return chi, self.hardness_scale * torch.nn.functional.softplus(self.hardness.to(torch.float64))

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        q, numbers = outputs["charges"].to(torch.float64), system["numbers"]
        chi, hardness = self.parameters_ev()
        energies = chi[numbers] * q + 0.5 * hardness[numbers] * q * q
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + scatter_sum(energies, system["batch"], system["cell"].shape[0])
        return outputs


def make_electrostatics(method: str, options: dict, cutoff: float, max_z: int = 100) -> list:
    """The energy terms for architecture option ``electrostatics`` ([] for "none").

    The Coulomb term, followed by the charge self-energy when ``options["self_energy"]`` is true.
    """
    if method not in METHODS:
        raise ValueError(f"electrostatics must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "none":
        return []
    options = dict(options)
    radius = float(options.pop("damping_radius", cutoff))
    cutoff_real = options.pop("ewald_cutoff", "auto")
    cutoff_real = 0.0 if cutoff_real == "auto" else float(cutoff_real)
    accuracy = float(options.pop("accuracy", 1e-6))
    self_energy = options.pop("self_energy", False)
    if options:
        raise ValueError(
            f"unknown electrostatics option(s) {sorted(options)}; "
            "known: damping_radius, accuracy, ewald_cutoff, self_energy"
        )
    if not isinstance(self_energy, bool):
        raise ValueError(f"electrostatics option self_energy must be true or false, got {self_energy!r}")
    terms: list = [Electrostatics(method, radius, accuracy, cutoff_real)]
    return terms + [ChargeSelfEnergy(max_z)] if self_energy else terms
