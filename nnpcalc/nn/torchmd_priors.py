"""torchmd-net's molecule-wise priors, ported exactly, for imported checkpoints.

:class:`TorchMDD2` is upstream's ``D2`` prior (``torchmdnet/priors/d2.py``): Grimme's D2
dispersion with its C6/R_r tables as stored in the checkpoint (buffers ``Z_map``, ``C_6``,
``R_r``), over every pair of a molecule closer than ``cutoff_distance``. Upstream's D2 never
applies periodic boundaries (it calls its neighbour list without the box), so the port serves
molecules only and refuses periodic cells (``periodic = False``).

:class:`TorchMDRepulsion` is TensorNet2's in-backbone ZBL (``RepulsionZBL``, ``repulsion=True``),
a head on the backbone's own pairs.

:class:`TorchMDZBL` is upstream's ``ZBL`` prior (``torchmdnet/priors/zbl.py``): its rounded
screening constants, a cosine cutoff at its own ``cutoff_distance`` (not nnpcalc's
covalent-radius switch, hence a port rather than :class:`~nnpcalc.nn.priors.ZBLRepulsion`),
and its unit factors ``distance_scale`` (m per model length unit) and ``energy_scale`` (J per
model energy unit). It keeps upstream's buffer name ``atomic_number`` (type → Z).
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor

from .graph_ops import scatter_sum
from .heads import Head

#: upstream's constants: the Bohr radius (m) and e²/(4πε₀) (J·m)
BOHR_METRES = 5.29177210903e-11
COULOMB_JOULE_METRES = 2.30707755e-28
#: upstream D2's Avogadro constant (its internal unit is J/mol and nm)
AVOGADRO = 6.02214076e23


def molecule_pairs(positions: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """(i, j, r_ij) for every pair i < j of atoms in the same structure (no images)."""
    n = positions.shape[0]
    pair = torch.triu_indices(n, n, 1, device=positions.device)
    pair = pair[:, batch[pair[0]] == batch[pair[1]]]
    vec = positions[pair[1]] - positions[pair[0]]
    return pair[0], pair[1], torch.sqrt((vec * vec).sum(-1))


def refuse_periodic(pbc: Tensor, what: str) -> None:
    """Raise (inside the model file too) when any structure is periodic: ``what`` serves molecules only."""
    if bool(pbc.any()):
        raise ValueError(
            "nnpcalc model: " + what + " serves molecules only (pbc all False), as torchmd-net "
            "computes it without periodic boundaries; set atoms.pbc = False for a molecule"
        )


class TorchMDZBL(Head):
    """``E = ½ Σ_{i≠j} k Z_i Z_j / r φ(r/a) c(r)``, as torchmd-net's ``ZBL.post_reduce``.

    Reads the model's graph: ``cutoff_distance`` must not exceed the backbone cutoff (the
    importer checks). Each pair's energy is split evenly between its two atoms.
    """

    name = "torchmd_zbl"
    outputs: tuple = ()  # adds to "energy" and "energies"

    def __init__(self, cutoff_distance: float, distance_scale: float, energy_scale: float, num_types: int):
        super().__init__()
        self.cutoff_distance = float(cutoff_distance)
        self.distance_scale = float(distance_scale)
        self.energy_scale = float(energy_scale)
        self.bohr, self.coulomb = BOHR_METRES, COULOMB_JOULE_METRES  # attributes: TorchScript
        self.register_buffer("atomic_number", torch.arange(num_types, dtype=torch.long))

    def pair_energy(self, zi: Tensor, zj: Tensor, r: Tensor) -> Tensor:
        """Energy (model units) of pairs of atom types ``zi``, ``zj`` at distances ``r``."""
        qi, qj = self.atomic_number[zi], self.atomic_number[zj]
        # integer ** float: default-dtype (float32) screening length, exactly as upstream computes it
        a = 0.8854 * self.bohr / (qi**0.23 + qj**0.23)
        d = r * self.distance_scale / a
        f = (0.1818 * torch.exp(-3.2 * d) + 0.5099 * torch.exp(-0.9423 * d)
             + 0.2802 * torch.exp(-0.4029 * d) + 0.02817 * torch.exp(-0.2016 * d))
        inside = r < self.cutoff_distance
        f = f * 0.5 * (torch.cos(r * math.pi / self.cutoff_distance) + 1.0) * inside.to(r.dtype)
        return self.coulomb / self.energy_scale / self.distance_scale * (f * qi * qj / r)

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        i, j = system["edge_index"][0], system["edge_index"][1]
        numbers = system["numbers"]
        pair = self.pair_energy(numbers[i], numbers[j], system["edge_len"])
        energies = scatter_sum(0.5 * pair, i, numbers.shape[0]).to(outputs["energies"].dtype)
        total = scatter_sum(energies, system["batch"], outputs["energy"].shape[0])
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + total
        return outputs


class TorchMDD2(Head):
    """``E = −s₆ Σ_{i<j, r<r_c} C6_ij / r⁶ f_damp(r)``, as torchmd-net's ``D2.post_reduce`` (molecules).

    ``C6_ij = √(C6_i C6_j)`` (J mol⁻¹ nm⁶), ``R_r = R_i + R_j`` (nm), ``f_damp = 1 / (1 + e^{−20 (r/R_r − 1)})``,
    converted with upstream's ``distance_scale`` (m) and ``energy_scale`` (J) factors. The tables are
    the checkpoint's buffers (upstream rounds them through float32 before training in float64).
    Each pair's energy is split evenly between its two atoms.
    """

    name = "torchmd_d2"
    outputs: tuple = ()  # adds to "energy" and "energies"
    periodic = False  # upstream's D2 has no periodic boundaries

    def __init__(self, cutoff_distance: float, distance_scale: float, energy_scale: float, num_types: int):
        super().__init__()
        self.cutoff_distance = float(cutoff_distance)
        self.distance_scale = float(distance_scale)
        self.energy_scale = float(energy_scale)
        self.s_6, self.d = 1.0, 20.0
        # upstream's internal units: nm and J/mol (float attributes: TorchScript)
        self.nm_per_unit = self.distance_scale * 1e9
        self.molar_per_unit = self.energy_scale * AVOGADRO
        self.register_buffer("Z_map", torch.arange(num_types, dtype=torch.long))
        self.register_buffer("C_6", torch.zeros(55))
        self.register_buffer("R_r", torch.zeros(55))

    def pair_energy(self, zi: Tensor, zj: Tensor, r: Tensor) -> Tensor:
        """Dispersion energy (model units) of pairs of atom types ``zi``, ``zj`` at distances ``r`` (model units)."""
        r_nm = r * self.nm_per_unit
        molar = self.molar_per_unit  # J/mol per model energy unit
        a, b = self.Z_map[zi], self.Z_map[zj]
        c6 = (self.C_6[a] * self.C_6[b]).sqrt()
        r_r = self.R_r[a] + self.R_r[b]
        damp = 1 / (1 + torch.exp(-self.d * (r_nm / r_r - 1)))
        return -self.s_6 * c6 / r_nm**6 * damp / molar

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        refuse_periodic(system["pbc"], "torchmd-net's D2 prior")
        numbers, batch = system["numbers"], system["batch"]
        i, j, r = molecule_pairs(system["positions"], batch)
        near = r < self.cutoff_distance
        i, j, r = i[near], j[near], r[near]
        half = 0.5 * self.pair_energy(numbers[i], numbers[j], r)
        n = numbers.shape[0]
        energies = (scatter_sum(half, i, n) + scatter_sum(half, j, n)).to(outputs["energies"].dtype)
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + scatter_sum(energies, batch, outputs["energy"].shape[0])
        return outputs


class TorchMDRepulsion(Head):
    """TensorNet2's in-backbone ZBL repulsion (upstream's ``RepulsionZBL``, ``repulsion=True``).

    ``e_i = ½ Σ_j k Z_i Z_j / r φ(r/a) f_c(r/r_ij)`` over the backbone's own pairs (r ≥ ``cutoff_lower``),
    ``a = 0.4543 a₀ / (Z_i^0.3 + Z_j^0.3)``, ``f_c`` a polynomial envelope (p = 6) to zero at the sum of
    covalent radii ``r_ij``: the checkpoint's buffers ``z_pow``, ``z_outer``, ``cutoff_ab``. Upstream adds
    it to the output model's per-atom energies before the standardisation, so the head scales it by
    ``scale`` (std) and, for averaged energies, divides by N + 1 as upstream's mean does.
    """

    name = "torchmd_repulsion"
    outputs: tuple = ()  # adds to "energy" and "energies"

    def __init__(self, num_elements: int, cutoff_lower: float = 0.0, reduce: str = "sum"):
        super().__init__()
        self.num_elements = int(num_elements)
        self.cutoff_lower = float(cutoff_lower)
        self.average = reduce == "mean"
        # upstream's constants (Å, eV), as attributes: TorchScript
        self.a_prefactor, self.angstrom_to_bohr, self.a_exp = 0.4543, 1.8897261258369282, 0.300
        self.coulomb_ev_angstrom, self.envelope_p = 14.399645, 6.0
        self.register_buffer("z_pow", torch.zeros(self.num_elements))
        self.register_buffer("z_outer", torch.zeros(self.num_elements, self.num_elements))
        self.register_buffer("cutoff_ab", torch.zeros(self.num_elements, self.num_elements))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def atom_energies(self, numbers: Tensor, edge_index: Tensor, r: Tensor) -> Tensor:
        """Per-atom repulsion [N] (eV) from a full pair list (both directions)."""
        keep = (r > 0) & (r >= self.cutoff_lower)
        r = r.masked_fill(~keep, 1.0)
        za = numbers[edge_index[0]].clamp(max=self.num_elements - 1)
        zb = numbers[edge_index[1]].clamp(max=self.num_elements - 1)
        a = self.a_prefactor * (1.0 / self.angstrom_to_bohr) / (self.z_pow[za] + self.z_pow[zb])
        x = r / a
        phi = (0.1818 * torch.exp(-3.2 * x) + 0.5099 * torch.exp(-0.9423 * x)
               + 0.2802 * torch.exp(-0.4029 * x) + 0.02817 * torch.exp(-0.2016 * x))
        cutoff = self.cutoff_ab[za, zb].to(r.dtype)
        p = self.envelope_p
        rr = (r / cutoff).clamp(max=1.0)
        fc = (1.0 - ((p + 1.0) * (p + 2.0) / 2.0) * rr.pow(p) + p * (p + 2.0) * rr.pow(p + 1.0)
              - (p * (p + 1.0) / 2.0) * rr.pow(p + 2.0)) * (r < cutoff)
        pair = self.coulomb_ev_angstrom * (self.z_outer[za, zb].to(r.dtype) / r) * phi * fc
        pair = pair * keep.to(pair.dtype)
        return 0.5 * scatter_sum(pair, edge_index[0], numbers.shape[0])

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        f64, batch = torch.float64, system["batch"]
        energies = self.atom_energies(system["numbers"], system["edge_index"], system["edge_len"]).to(f64)
        energies = energies * self.scale.to(f64)
        if self.average:  # upstream's scatter mean counts its zero start: / (N + 1)
            counts = torch.bincount(batch, minlength=outputs["energy"].shape[0]).to(f64)
            energies = energies / (counts + 1)[batch]
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + scatter_sum(energies, batch, outputs["energy"].shape[0])
        return outputs


#: the name of the optional per-atom input the Coulomb prior reads (``Potential.forward``'s ``atom_charges``)
ATOM_CHARGES = "atom_charges"
#: what the model file says when it is called without them (every engine but ASE calls it so)
MISSING_CHARGES = (
    "nnpcalc model: this model's torchmd-net Coulomb prior reads per-atom partial charges (e) given "
    "with every structure (metadata 'inputs': ['atom_charges']); in ASE set them with "
    "atoms.set_initial_charges([...]) (NNPCalculator passes them); other engines cannot pass them"
)


class TorchMDCoulomb(Head):
    """``E = k' Σ_{i<j} s(d) q_i q_j / d``, as torchmd-net's ``Coulomb.post_reduce`` (molecules).

    ``q`` are per-atom partial charges the caller passes with every structure (upstream's
    ``extra_args["partial_charges"]``; here the optional model input ``atom_charges``: ASE's
    ``initial_charges``); nothing in the model predicts them. ``d`` is the distance in nm
    (``1e9 · distance_scale`` per model unit), ``s`` a cosine switch from 0 at
    ``lower_switch_distance`` to 1 at ``upper_switch_distance`` (nm), and
    ``k' = 2.30707e-28 / energy_scale / distance_scale``, all as upstream computes them (its
    switch bounds pass through default-dtype float32 tensors, kept here). Every pair of a
    molecule, as upstream's pair list without a box and with no cutoff; upstream refuses
    molecules of more than ``max_num_neighbors + 1`` atoms (its pair buffer), so does the port.
    Periodic cells are refused (``periodic = False``): upstream's prior takes minimum images of
    every pair with the box in the dataset's units against positions in nm, not a lattice sum.
    Each pair's energy is split evenly between its two atoms.
    """

    name = "torchmd_coulomb"
    outputs: tuple = ()  # adds to "energy" and "energies"
    periodic = False  # see the docstring
    inputs = (ATOM_CHARGES,)  # the model file's optional per-atom input (metadata "inputs")

    def __init__(self, lower_switch_distance: float, upper_switch_distance: float, max_num_neighbors: int,
                 distance_scale: float, energy_scale: float):
        super().__init__()
        lower = torch.tensor(float(lower_switch_distance), dtype=torch.float32)
        upper = torch.tensor(float(upper_switch_distance), dtype=torch.float32)
        # upstream: torch.tensor(float) (float32), the width subtracted in float32 (attributes: TorchScript)
        self.lower, self.upper, self.width = float(lower), float(upper), float(upper - lower)
        self.max_num_neighbors = int(max_num_neighbors)
        self.nm_per_unit = 1e9 * float(distance_scale)
        self.prefactor = 2.30707e-28 / float(energy_scale) / float(distance_scale)
        self.message = MISSING_CHARGES

    def pair_energy(self, qi: Tensor, qj: Tensor, d: Tensor) -> Tensor:
        """Energy (model units) of charges ``qi``, ``qj`` (e) at distances ``d`` (nm)."""
        phase = (d.clamp(max=self.upper).clamp(min=self.lower) - self.lower) / self.width
        return self.prefactor * (0.5 - 0.5 * torch.cos(math.pi * phase)) * qi * qj / d

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if "atom_charges" not in system:
            raise ValueError(self.message)
        refuse_periodic(system["pbc"], "torchmd-net's Coulomb prior")
        batch, energy = system["batch"], outputs["energy"]
        if bool((torch.bincount(batch, minlength=energy.shape[0]) > self.max_num_neighbors + 1).any()):
            raise ValueError(
                "nnpcalc model: torchmd-net's Coulomb prior pairs every atom with at most max_num_neighbors = "
                + str(self.max_num_neighbors) + " others (its checkpoint's prior_args), and this molecule has more "
                "atoms; upstream refuses it too"
            )
        positions = system["positions"]
        i, j, d = molecule_pairs(positions * self.nm_per_unit, batch)  # upstream scales positions to nm first
        q = system["atom_charges"].to(positions.dtype)
        half = 0.5 * self.pair_energy(q[i], q[j], d)
        n = positions.shape[0]
        energies = (scatter_sum(half, i, n) + scatter_sum(half, j, n)).to(outputs["energies"].dtype)
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = energy + scatter_sum(energies, batch, energy.shape[0])
        return outputs
