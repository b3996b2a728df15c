"""The module that is exported: backbone + heads + graph + autograd derivatives.

Its ``forward`` is the model-file contract (see ``nnpcalc.modelfile``)::

    out = model(positions, atomic_numbers, cell, pbc, total_charge)

and ``forward_batch`` does the same for many structures at once. Forces and stress come
from one autograd pass over the positions and a symmetric strain applied to positions and
cell: ``forces = -dE/dr``, ``stress = 1/V dE/d(strain)`` (ASE's sign).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import graph, modelfile
from ..properties import describe
from .uncertainty import add_forces_uncertainty, centre_ensemble


class Potential(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        heads: List[nn.Module],
        elements: List[int],
        cutoff: float,
        fidelities: List[str] = ["default"],  # noqa: B006 (read only)
        context_channels: int = 0,
    ):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(heads)
        self.cutoff = float(cutoff)
        self.fidelities = list(fidelities)
        num_fidelities = len(self.fidelities)
        self.num_fidelities = num_fidelities
        self.context_channels = context_channels
        self.fidelity_embedding = nn.Embedding(num_fidelities, max(context_channels, 1))
        known = torch.zeros(max(elements) + 1, dtype=torch.bool)
        known[torch.tensor(elements)] = True
        self.register_buffer("known_elements", known)
        # a float buffer whose dtype is the model's compute dtype (follows .to(dtype))
        self.register_buffer("dtype_probe", torch.zeros(()))

    def forward(
        self,
        positions: Tensor,
        atomic_numbers: Tensor,
        cell: Tensor,
        pbc: Tensor,
        total_charge: Tensor,
        fidelity: Optional[Tensor] = None,
        edge_index: Optional[Tensor] = None,
        shifts: Optional[Tensor] = None,
        atom_charges: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """One structure: positions [N,3] Å, atomic_numbers [N], cell [3,3] Å, pbc [3], total_charge [] e.

        ``atom_charges`` [N] e: only for models whose metadata lists ``inputs: [atom_charges]``
        (torchmd-net's Coulomb prior); every other model ignores it."""
        batch = torch.zeros_like(atomic_numbers)
        fid = fidelity.reshape(1) if fidelity is not None else None
        out = self.forward_batch(
            positions, atomic_numbers, cell.unsqueeze(0), pbc.unsqueeze(0),
            total_charge.reshape(1), batch, fid, edge_index, shifts, True, True, False, atom_charges,
        )
        for key in ("energy", "stress", "dipole", "energy_ensemble", "energy_uncertainty"):
            if key in out:
                out[key] = out[key][0]
        return out

    @torch.jit.export
    def forward_batch(
        self,
        positions: Tensor,
        atomic_numbers: Tensor,
        cell: Tensor,
        pbc: Tensor,
        total_charge: Tensor,
        batch: Tensor,
        fidelity: Optional[Tensor] = None,
        edge_index: Optional[Tensor] = None,
        shifts: Optional[Tensor] = None,
        compute_forces: bool = True,
        compute_stress: bool = True,
        compute_uncertainty: bool = False,
        atom_charges: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """B structures: positions [N,3], atomic_numbers [N], cell [B,3,3], pbc [B,3], total_charge [B], batch [N].

        ``compute_uncertainty``: also ``forces_uncertainty`` when the model has an ensemble
        energy head (K - 1 extra backward passes; see ``nnpcalc.nn.uncertainty``).
        """
        dtype = self.dtype_probe.dtype
        positions, cell = positions.to(dtype), cell.to(dtype)
        has_volume = pbc.any(dim=1) & (torch.linalg.det(cell.to(torch.float64)).abs() > 1e-6)
        any_volume = self._check(positions, atomic_numbers, cell, pbc, has_volume)
        if edge_index is None or shifts is None:
            edge_index, shifts = self.neighbors(positions, cell, pbc, batch)
            _check_overlaps(positions, cell, batch, edge_index, shifts)  # a given graph: the caller checked
        compute_stress = compute_stress and any_volume  # no stress without a volume
        want_grad = compute_forces or compute_stress
        if want_grad and not torch.is_grad_enabled():
            raise RuntimeError(
                "nnpcalc model: forces and stress need autograd; call it with gradients "
                "enabled (not inside torch.no_grad() or torch.inference_mode())"
            )
        fid = self._fidelity(fidelity, cell.shape[0], cell.device)
        out = self.evaluate(
            positions, atomic_numbers, cell, pbc, total_charge.to(dtype), batch, fid, edge_index,
            shifts.to(dtype), compute_forces, compute_stress, compute_uncertainty, atom_charges,
        )
        if "stress" in out:  # a structure whose cell has no volume has no stress: NaN, not virial/1
            out["stress"] = torch.where(has_volume[:, None, None], out["stress"], torch.full_like(out["stress"], float("nan")))
        return out

    def evaluate(
        self, positions: Tensor, atomic_numbers: Tensor, cell: Tensor, pbc: Tensor, total_charge: Tensor,
        batch: Tensor, fidelity: Tensor, edge_index: Tensor, shifts: Tensor,
        compute_forces: bool = True, compute_stress: bool = True, compute_uncertainty: bool = False,
        atom_charges: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """``forward_batch`` after its checks: inputs in the model's dtype, the graph given and
        ``fidelity`` an index per structure [B]. No branch on tensor values, so
        ``nnpcalc.exported`` traces it (autograd included) into a ``torch.export`` program."""
        positions = positions.detach().requires_grad_(compute_forces)
        strain = torch.zeros_like(cell).requires_grad_(compute_stress)
        pos_s, cell_s = _apply_strain(positions, cell, strain, batch)
        system = {
            "positions": pos_s,
            "numbers": atomic_numbers,
            "batch": batch,
            "total_charge": total_charge,
            "fidelity": fidelity,
            "pbc": pbc,
        }
        if atom_charges is not None:  # per-atom input of the heads that declare it (``inputs``)
            system["atom_charges"] = atom_charges.to(positions.dtype)
        out = self.properties(system, cell_s, edge_index, shifts)
        if compute_forces or compute_stress:
            self._derivatives(out, positions, strain, cell, compute_forces, compute_stress, compute_uncertainty)
        if not self.training:
            out = {key: value.detach() for key, value in out.items()}
        return out

    def capabilities(self) -> modelfile.Capabilities:
        """What this model states about itself; the model file's metadata copies it (Python only)."""
        from ase.data import chemical_symbols

        outputs: Dict[str, Dict] = {}
        for head in self.heads:
            outputs.update(head.describe())
        return modelfile.Capabilities(
            elements=[chemical_symbols[z] for z in self.known_elements.nonzero().flatten().tolist()],
            cutoff=self.cutoff,
            outputs=outputs | describe(["forces", "stress"]),
            heads=[head.name for head in self.heads],
            fidelities=list(self.fidelities),
            # a head may serve molecules only (electrostatics "coulomb" sets periodic False)
            periodic=all(bool(getattr(head, "periodic", True)) for head in self.heads),
            inputs=sorted({name for head in self.heads for name in getattr(head, "inputs", ())}),
        )

    @torch.jit.export
    def neighbors(self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
        """The graph this model uses: (edge_index [2,E], shifts [E,3]); reusable across calls."""
        return graph.neighbor_list(positions, cell, pbc, batch, cell.shape[0], self.cutoff)

    def properties(
        self,
        system: Dict[str, Tensor],
        cell: Tensor,
        edge_index: Tensor,
        shifts: Tensor,
    ) -> Dict[str, Tensor]:
        """Every head's outputs for (already strained) positions and cells."""
        pos, batch = system["positions"], system["batch"]
        system["cell"] = cell  # strained: energy terms that read it (Ewald) give stress by autograd
        vec = graph.edge_vectors(pos, cell, batch, edge_index, shifts)
        length = torch.sqrt((vec * vec).sum(-1))
        system["edge_index"], system["edge_vec"], system["edge_len"] = edge_index, vec, length
        if hasattr(self.backbone, "uses_batch"):  # per-structure sums inside (TensorNet2's charges)
            x, system["vec"] = self.backbone.features_batch(
                system["numbers"], edge_index, vec, length, system["total_charge"][batch], batch,
                system["total_charge"].shape[0],
            )
        else:
            x, system["vec"] = self.backbone.features(
                system["numbers"], edge_index, vec, length, system["total_charge"][batch]
            )
        x = torch.cat([x, self._context(system["fidelity"])[batch]], dim=-1)
        out: Dict[str, Tensor] = {}
        for head in self.heads:
            out = head(x, system, out)
        return centre_ensemble(out)  # members follow terms added after the ensemble head (ZBL, Coulomb)

    def _fidelity(self, fidelity: Optional[Tensor], num_structures: int, device: torch.device) -> Tensor:
        """Fidelity index per structure [B] (0 when not given), range-checked."""
        if fidelity is None:
            return torch.zeros(num_structures, dtype=torch.long, device=device)
        if bool(((fidelity < 0) | (fidelity >= self.num_fidelities)).any()):  # one read-back
            raise ValueError("nnpcalc model: fidelity index out of range; see metadata 'fidelities'")
        return fidelity.reshape(-1).expand(num_structures).to(torch.long)

    def _context(self, fidelity: Tensor) -> Tensor:
        """Per-structure context vector (fidelity embedding); width 0 when the model has none."""
        if self.context_channels == 0:
            return self.fidelity_embedding.weight.new_zeros((fidelity.shape[0], 0))
        return self.fidelity_embedding(fidelity)

    def _derivatives(
        self, out: Dict[str, Tensor], positions: Tensor, strain: Tensor, cell: Tensor,
        compute_forces: bool, compute_stress: bool, compute_uncertainty: bool = False,
    ) -> None:
        add_forces_uncertainty(out, positions, compute_uncertainty, self.training)  # before the graph is freed
        inputs: List[Tensor] = []
        if compute_forces:
            inputs.append(positions)
        if compute_stress:
            inputs.append(strain)
        grads = torch.autograd.grad(
            [out["energy"].sum()], inputs, create_graph=self.training, allow_unused=True
        )
        if compute_forces:
            dE_dr = grads[0]
            out["forces"] = -dE_dr if dE_dr is not None else torch.zeros_like(positions)
        if compute_stress:
            dE_de = grads[len(grads) - 1]
            volume = torch.linalg.det(cell).abs()
            volume = torch.where(volume > 0, volume, torch.ones_like(volume))
            virial = dE_de if dE_de is not None else torch.zeros_like(cell)
            out["stress"] = virial / volume[:, None, None]

    def _check(self, positions: Tensor, numbers: Tensor, cell: Tensor, pbc: Tensor, has_volume: Tensor) -> bool:
        """Refuse what the model cannot serve, naming the problem (the runtime checks first).

        Every check of the batch is one tensor on the model's device, read back once: one host
        synchronisation per call, not per structure (the same transfer returns whether any
        structure of ``has_volume`` [B] has a volume, i.e. stress can be computed)."""
        if positions.dim() != 2 or positions.shape[1] != 3 or numbers.shape[0] != positions.shape[0]:
            raise ValueError("nnpcalc model: positions must be [N,3] with one atomic number per atom")
        table = self.known_elements
        in_table = (numbers >= 0) & (numbers < table.shape[0])
        known = in_table & table[numbers.clamp(0, table.shape[0] - 1)]
        flat = pbc.any(dim=1) & (_periodic_extent(cell.to(torch.float64), pbc) < 1e-6)
        flags: List[bool] = torch.stack(
            [~torch.isfinite(positions).all(), ~known.all(), flat.any(), has_volume.any()]).tolist()
        if flags[0]:
            raise ValueError("nnpcalc model: positions contain NaN or inf")
        if flags[1]:
            raise ValueError("nnpcalc model: element not supported; see metadata 'elements'")
        if flags[2]:
            raise ValueError("nnpcalc model: periodic cell vectors span no volume")
        return flags[3]


def _periodic_extent(cell: Tensor, pbc: Tensor) -> Tensor:
    """Per structure [B]: the volume, area or length the periodic cell vectors span (3, 2 or 1
    periodic axes; 1 with none), i.e. |det(graph.binning_cell)|, for a whole batch without a loop."""
    periodic = pbc.to(cell.dtype)
    count = pbc.sum(dim=1)
    length = (torch.linalg.norm(cell, dim=2) * periodic).sum(dim=1)  # the periodic vector's, when count == 1
    faces = torch.linalg.cross(cell.roll(-1, 1), cell.roll(-2, 1), dim=2)  # face k: a_{k+1} x a_{k+2}
    area = (torch.linalg.norm(faces, dim=2) * (1 - periodic)).sum(dim=1)  # the periodic face, when count == 2
    volume = torch.linalg.det(cell).abs()
    return torch.where(count == 3, volume, torch.where(count == 2, area, torch.where(
        count == 1, length, torch.ones_like(volume))))


def _check_overlaps(positions: Tensor, cell: Tensor, batch: Tensor, edge_index: Tensor, shifts: Tensor) -> None:
    """Refuse nuclei closer than 0.1 Å (at zero distance energies and forces are NaN): one pass over the pairs."""
    if edge_index.shape[1] == 0:
        return
    with torch.no_grad():
        vec = graph.edge_vectors(positions, cell, batch, edge_index, shifts.to(positions.dtype))
        length = torch.linalg.norm(vec, dim=1)
        if bool((length < 0.1).any()):  # one read-back; the atoms are looked up only to refuse
            shortest = int(torch.argmin(length))
            raise ValueError(
                "nnpcalc model: atoms {} and {} are {} Angstrom apart (overlapping nuclei); remove "
                "duplicated atoms or fix the geometry".format(
                    int(edge_index[0, shortest]), int(edge_index[1, shortest]), float(length[shortest]))
            )


def _apply_strain(positions: Tensor, cell: Tensor, strain: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
    """Deform positions and cells by the symmetric part of ``strain`` [B,3,3] (zero-valued)."""
    sym = 0.5 * (strain + strain.transpose(1, 2))
    pos_s = positions + torch.bmm(positions.unsqueeze(1), sym[batch]).squeeze(1)
    return pos_s, cell + torch.bmm(cell, sym)
