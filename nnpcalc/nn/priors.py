"""Physical energy terms carried inside the model file, added after the learned energy head.

A prior is a head like the others, ``forward(x, system, outputs) -> outputs``, listed after
the ``energy`` head: it reads the graph already in ``system`` (``edge_index``, ``edge_len``,
``numbers``) and *adds* its per-atom energies to ``outputs["energies"]`` and
``outputs["energy"]``. Forces and stress follow by autograd, and training fits the network to
(reference − prior) without being told, since the loss sees the sum.

:class:`ZBLRepulsion` is the Ziegler–Biersack–Littmark universal screened nuclear repulsion
(as torchmd-net's ``ZBL`` prior and NequIP/Allegro's pair potentials), switched off smoothly
at a pair distance of ``radius_factor`` × the sum of the two covalent radii: it guarantees a
steep wall where no training data can be (two nuclei fusing), and vanishes near equilibrium.
"""

from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor, nn

from ..units import BOHR_TO_ANGSTROM, COULOMB_EV_ANGSTROM
from .graph_ops import scatter_sum
from .heads import Head

#: the ZBL universal screening function φ(x) = Σ c_k exp(-d_k x), x = r / a
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
#: screening length a = 0.8854 a₀ / (Z_i^0.23 + Z_j^0.23)
ZBL_LENGTH = 0.8854 * BOHR_TO_ANGSTROM
ZBL_POWER = 0.23


def covalent_radii(max_z: int) -> Tensor:
    """ASE's covalent radii (Å) of elements 0..max_z, float64."""
    from ase.data import covalent_radii as radii

    return torch.tensor(radii[: max_z + 1], dtype=torch.float64)


class ZBLRepulsion(Head):
    """Screened nuclear repulsion ``E = Σ_pairs k Z_i Z_j / r φ(r/a) s(r)``, no parameters.

    ``s(r) = (cos(π r / r_c) + 1) / 2`` below ``r_c = radius_factor (R_i + R_j)`` (covalent
    radii) and 0 beyond; each pair's energy is split evenly between its two atoms. Computed
    in float64 whatever the model's dtype.
    """

    name = "zbl"
    outputs: tuple = ()  # adds to "energy" and "energies", declares no output of its own

    def __init__(self, max_z: int = 100, radius_factor: float = 1.0):
        super().__init__()
        if radius_factor <= 0:
            raise ValueError(f"zbl radius_factor must be positive, got {radius_factor}")
        self.radius_factor = float(radius_factor)
        self.screening_length, self.screening_power = ZBL_LENGTH, ZBL_POWER  # attributes: TorchScript
        self.coulomb = COULOMB_EV_ANGSTROM
        self.register_buffer("radii", covalent_radii(max_z))
        self.register_buffer("coefficients", torch.tensor(ZBL_COEFFICIENTS, dtype=torch.float64))
        self.register_buffer("exponents", torch.tensor(ZBL_EXPONENTS, dtype=torch.float64))

    def pair_energy(self, zi: Tensor, zj: Tensor, r: Tensor) -> Tensor:
        """Energy (eV) of pairs of nuclei ``zi``, ``zj`` at distances ``r`` (Å), float64."""
        f64 = torch.float64
        r = r.to(f64)
        qi, qj = zi.to(f64), zj.to(f64)
        screening = self.screening_length / (qi.pow(self.screening_power) + qj.pow(self.screening_power))
        x = (r / screening).unsqueeze(-1)
        phi = (self.coefficients.to(f64) * torch.exp(-self.exponents.to(f64) * x)).sum(-1)
        cutoff = self.radius_factor * (self.radii.to(f64)[zi] + self.radii.to(f64)[zj])
        inside = r < cutoff
        safe_r = torch.where(inside, r, cutoff)  # no 1/r blow-up (or NaN gradient) outside
        switch = 0.5 * (torch.cos(math.pi * safe_r / cutoff) + 1.0)
        energy = self.coulomb * qi * qj / safe_r * phi * switch
        return torch.where(inside, energy, torch.zeros_like(energy))

    def forward(self, x: Tensor, system: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        i, j = system["edge_index"][0], system["edge_index"][1]
        numbers = system["numbers"]
        pair = self.pair_energy(numbers[i], numbers[j], system["edge_len"])
        # the graph lists every pair in both directions: half of each pair's energy per direction
        energies = scatter_sum(0.5 * pair, i, numbers.shape[0])
        total = scatter_sum(energies, system["batch"], system["total_charge"].shape[0])
        outputs["energies"] = outputs["energies"] + energies
        outputs["energy"] = outputs["energy"] + total
        return outputs


def prior_energy_forces(priors: list, atoms, cutoff: float) -> tuple[float, "np.ndarray"]:
    """Energy (eV) and forces (eV/Å) of the ``priors`` alone on ``atoms`` (an ASE Atoms).

    Training fits the network to (reference − priors); this gives the part to take away,
    e.g. before fitting per-element reference energies and the energy scale.
    """
    from .. import graph
    from ..neighbors import neighbor_graph

    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)[None]
    batch = torch.zeros(len(atoms), dtype=torch.long)
    edge_index, shifts = neighbor_graph(positions.detach(), cell, torch.tensor(atoms.pbc)[None], batch, cutoff)
    vec = graph.edge_vectors(positions, cell, batch, edge_index, shifts.to(torch.float64))
    system = {"edge_index": edge_index, "edge_len": vec.norm(dim=-1), "numbers": torch.tensor(atoms.numbers),
              "batch": batch, "total_charge": torch.zeros(1, dtype=torch.float64)}
    outputs = {"energies": torch.zeros(len(atoms), dtype=torch.float64), "energy": torch.zeros(1, dtype=torch.float64)}
    for prior in priors:
        outputs = prior(positions, system, outputs)
    (gradient,) = torch.autograd.grad(outputs["energy"].sum(), positions, allow_unused=True)
    forces = -gradient if gradient is not None else torch.zeros_like(positions)
    return float(outputs["energy"].sum()), forces.detach().numpy()


def add_prior(model_path, spec: dict, output) -> "Path":
    """Write ``output``: the model file at ``model_path`` with the prior head ``spec`` appended
    (e.g. ``{"kind": "zbl", "radius_factor": 1.0}``), its weights kept: a start for fine-tuning
    a model that had no repulsive wall (``init_from`` in a training config)."""
    from .. import modelfile
    from .build import Architecture, build_potential, export

    scripted, metadata = modelfile.load(model_path)
    arch = dict(metadata["architecture"])
    arch["heads"] = list(arch["heads"]) + [spec]
    potential = build_potential(Architecture(**arch))
    missing, unexpected = potential.load_state_dict(scripted.state_dict(), strict=False)
    if unexpected or any(not key.startswith(f"heads.{len(arch['heads']) - 1}.") for key in missing):
        raise ValueError(f"{model_path}: weights do not fit (missing {missing}, unexpected {unexpected})")
    return export(potential.to(scripted.dtype_probe.dtype), Architecture(**arch), output,
                  metadata.get("provenance"))
