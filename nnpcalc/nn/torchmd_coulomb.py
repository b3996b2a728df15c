"""torchmd-net's ``ScalarPlusWeightedCoulomb`` output model, ported exactly, for imported checkpoints.

Upstream (``torchmdnet/models/output_modules.py``, from AIMNet2) reads the backbone's features
``[N, F + C]``: the first ``F`` go through the ``Scalar`` MLP, the last ``C`` are TensorNet2's
charge channels (``(num_layers + 1) · q_dim``, layer-major; see :mod:`nnpcalc.nn.tensornet2`).
Each channel gets its own Coulomb energy and the per-pair energies are averaged with the
weights ``qweights`` (the checkpoint's buffer):

    e_ij = k/2 Σ_c w_c q_ic q_jc (1 − f(r_ij)) φ(r_ij) / Σ_c w_c,   added to atoms i and j

``f(r) = exp(−1/(1 − (r/4.6 Å)²)) / e⁻¹`` (AIMNet2's short-range damping, 1 at r = 0, 0 from 4.6 Å),
``k/2`` = ½ Hartree · Bohr (upstream's constants). Two modes, as upstream:

* ``coulomb_cutoff`` None: ``φ = 1/r`` over every pair of a molecule; periodic cells refused
  (upstream raises too).
* ``coulomb_cutoff`` r_c: reaction field, ``φ = 1/r + k_rf r² − c_rf`` for r < r_c (OpenMM's form,
  dielectric ``epsilon_solvent``), molecules and periodic cells. Upstream takes the minimum image
  (its cells must be ≥ 2 r_c wide); this port sums every image closer than r_c, the same pairs
  wherever upstream's condition holds.

The Coulomb energies join the MLP's per-atom energies before the standardisation, as upstream's
``pre_reduce``: ``E = reduce(std · (mlp(x) + e_coul) + atomref) + mean``.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from .. import graph
from .heads import TorchMDScalarHead
from .torchmd_priors import molecule_pairs, refuse_periodic

#: upstream's constants (ase.units, via aimnet2): Hartree in eV, Bohr in Å
HARTREE_EV = 27.211386024367243
BOHR_ANGSTROM = 0.5291772105638411
#: upstream's fixed damping radius (Å)
DAMPING_RADIUS = 4.6


def damping(r: Tensor, radius: float) -> Tensor:
    """Upstream's ``_exp_cutoff``: 1 at r = 0, smoothly 0 from ``radius`` on."""
    x = (r / radius).clamp(0, 1.0 - 1e-6).pow(2)
    return torch.exp(-1.0 / (1.0 - x)) / 0.36787944117144233


class TorchMDScalarCoulombHead(TorchMDScalarHead):
    """``ScalarPlusWeightedCoulomb`` + standardisation + Atomref, on TensorNet2's features with charges.

    Named after the kind, not "energy": the model file's ``heads`` then says the energy holds a Coulomb term.
    """

    name = "torchmd_scalar_coulomb"

    def __init__(self, in_channels: int, activation: str, num_hidden_layers: int, max_z: int, reduce: str,
                 charge_channels: int, coulomb_cutoff: Optional[float] = None, epsilon_solvent: float = 78.3):
        super().__init__(in_channels, activation, num_hidden_layers, max_z, reduce)
        self.hidden_channels = int(in_channels)
        self.charge_channels = int(charge_channels)
        self.register_buffer("qweights", torch.ones(self.charge_channels))
        self.factor = 0.5 * HARTREE_EV * BOHR_ANGSTROM
        self.damping_radius = DAMPING_RADIUS  # attributes: TorchScript reads no float globals
        self.all_pairs = coulomb_cutoff is None
        self.periodic = not self.all_pairs  # capabilities: the all-pairs mode serves molecules only
        self.cutoff = 0.0 if coulomb_cutoff is None else float(coulomb_cutoff)
        eps = float(epsilon_solvent)
        rc = max(self.cutoff, 1e-30)
        self.k_rf = (1.0 / rc**3) * (eps - 1.0) / (2.0 * eps + 1.0)
        self.c_rf = (1.0 / rc) * (3.0 * eps) / (2.0 * eps + 1.0)

    def atom_outputs(self, x: Tensor, system: Dict[str, Tensor]) -> Tensor:
        charges = x[:, self.hidden_channels : self.hidden_channels + self.charge_channels]
        energies = self.output_network(x[:, : self.hidden_channels]).squeeze(-1)
        return energies + self.coulomb_energies(charges, system)

    def coulomb_energies(self, charges: Tensor, system: Dict[str, Tensor]) -> Tensor:
        """Per-atom Coulomb energies [N] (eV): each pair's weighted energy added to both atoms."""
        positions, batch = system["positions"].to(charges.dtype), system["batch"]
        if self.all_pairs:
            refuse_periodic(system["pbc"], "torchmd-net's ScalarPlusWeightedCoulomb without coulomb_cutoff")
            i, j, r = molecule_pairs(positions, batch)
            kernel = 1.0 / r
        else:
            cell, pbc = system["cell"].to(charges.dtype), system["pbc"]
            edge_index, shifts = graph.neighbor_list(positions, cell, pbc, batch, cell.shape[0], self.cutoff)
            once = edge_index[0] < edge_index[1]  # each pair once, no self-images (upstream: loop=False)
            edge_index, shifts = edge_index[:, once], shifts[once].to(charges.dtype)
            vec = graph.edge_vectors(positions, cell, batch, edge_index, shifts)
            r = torch.sqrt((vec * vec).sum(-1))
            i, j = edge_index[0], edge_index[1]
            kernel = 1.0 / r + self.k_rf * r * r - self.c_rf
        pair = ((1.0 - damping(r, self.damping_radius)) * kernel).unsqueeze(-1) * charges[i] * charges[j]
        pair = self.factor * pair
        pair = (pair * self.qweights.unsqueeze(0)).sum(-1) / self.qweights.sum()
        out = torch.zeros(charges.shape[0], dtype=charges.dtype, device=charges.device)
        return out.index_add(0, i, pair).index_add(0, j, pair)
