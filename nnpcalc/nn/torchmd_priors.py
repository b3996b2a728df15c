"""torchmd-net's molecule-wise priors, ported exactly, for imported checkpoints.

:class:`TorchMDZBL` is upstream's ``ZBL`` prior (``torchmdnet/priors/zbl.py``): its rounded
screening constants, a cosine cutoff at its own ``cutoff_distance`` (not nnpcalc's
covalent-radius switch, hence a port rather than :class:`~nnpcalc.nn.priors.ZBLRepulsion`),
and its unit factors ``distance_scale`` (m per model length unit) and ``energy_scale`` (J per
model energy unit). It keeps upstream's buffer name ``atomic_number`` (type → Z).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor

from .graph_ops import scatter_sum
from .heads import Head

#: upstream's constants: the Bohr radius (m) and e²/(4πε₀) (J·m)
BOHR_METRES = 5.29177210903e-11
COULOMB_JOULE_METRES = 2.30707755e-28


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
