"""The model file in OpenMM's calling convention, as one TorchScript module.

``forward(positions, box=None) -> (energy, forces)`` is exactly what OpenMM-Torch's
``TorchForce`` calls (positions [N,3] nm, box [3,3] nm with rows the box vectors, only when
the force uses periodic boundary conditions) with ``setOutputsForces(True)``: energy [] in
kJ/mol (float64) and forces [N,3] in kJ/mol/nm, in the dtype of ``positions``. The
``PythonForce`` path calls the same module, so both engines share one unit conversion, whose
factors come from :mod:`nnpcalc.units` (passed in at construction).

The module holds the loaded model file as a submodule and the atomic numbers, periodicity,
total charge and (for ML/MM) the indices of the particles it covers as buffers. It needs
nothing but torch: a file written by :func:`save` runs after a bare ``torch.jit.load``.

``evaluate`` (what the ``PythonForce`` path calls) also returns the model's own output dict
(eV, Å), so its other outputs (``energy_uncertainty``) reach Python; ``TorchForce`` calls only
``forward`` and cannot pass them on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import modelfile
from ..units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

#: ``metadata["kind"]`` of a file written by :func:`save` (not a model file: another forward)
KIND = "nnpcalc-openmm-module"


class OpenMMModule(nn.Module):
    """A model file seen from OpenMM: nm and kJ/mol in, kJ/mol and kJ/mol/nm out.

    Args:
        model: the loaded model file (a ScriptModule in eval mode, in the dtype to run).
        atomic_numbers: [M] int64, one per particle the model sees.
        periodic: whether the box is passed and used (all three directions).
        total_charge: e.
        nm_to_angstrom, ev_to_kj_per_mol: the unit factors (from :mod:`nnpcalc.units`).
        indices: [M] int64 positions of those particles among all N passed in (ML/MM with
            ``TorchForce``); None when the caller passes exactly the M particles.
    """

    def __init__(
        self,
        model: nn.Module,
        atomic_numbers: Tensor,
        periodic: bool,
        total_charge: float,
        nm_to_angstrom: float,
        ev_to_kj_per_mol: float,
        indices: Optional[Tensor] = None,
    ):
        super().__init__()
        self.model = model
        self.register_buffer("atomic_numbers", atomic_numbers.to(torch.long))
        self.register_buffer("pbc", torch.full((3,), bool(periodic), dtype=torch.bool))
        self.register_buffer("total_charge", torch.tensor(float(total_charge), dtype=torch.float64))
        self.subset = indices is not None
        self.register_buffer("indices", (indices if indices is not None else torch.zeros(0)).to(torch.long))
        self.periodic = bool(periodic)
        self.length_scale = float(nm_to_angstrom)
        self.energy_scale = float(ev_to_kj_per_mol)
        self.force_scale = float(ev_to_kj_per_mol) * float(nm_to_angstrom)

    def forward(self, positions: Tensor, box: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """positions [N,3] nm, box [3,3] nm → (energy [] kJ/mol, forces [N,3] kJ/mol/nm)."""
        energy, forces, _ = self.evaluate(positions, box)
        return energy, forces

    @torch.jit.export
    def evaluate(self, positions: Tensor, box: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """``forward``'s (energy, forces) and the model's output dict (eV, Å; its selected particles)."""
        selected = positions.index_select(0, self.indices) if self.subset else positions
        cell = self._cell(box, selected)
        out = self.model(selected * self.length_scale, self.atomic_numbers, cell, self.pbc, self.total_charge)
        energy = out["energy"].to(torch.float64) * self.energy_scale
        forces = (out["forces"] * self.force_scale).to(positions.dtype)
        if self.subset:
            forces = torch.zeros_like(positions).index_copy(0, self.indices, forces)
        return energy, forces.contiguous(), out

    def _cell(self, box: Optional[Tensor], positions: Tensor) -> Tensor:
        """The model's cell in Å: the box for a periodic force, zeros otherwise."""
        if not self.periodic:
            return torch.zeros((3, 3), dtype=positions.dtype, device=positions.device)
        if box is None:
            raise ValueError(
                "nnpcalc OpenMM module: this force is periodic but no box was passed; call "
                "setUsesPeriodicBoundaryConditions(True) on the force so OpenMM passes the box"
            )
        return box.to(positions.dtype) * self.length_scale


def build(
    model: nn.Module,
    atomic_numbers,
    *,
    periodic: bool,
    total_charge: float = 0.0,
    indices=None,
) -> torch.jit.ScriptModule:
    """The scripted :class:`OpenMMModule` around a loaded model file (unit factors from units)."""
    numbers = torch.as_tensor(atomic_numbers, dtype=torch.long)
    index = None if indices is None else torch.as_tensor(indices, dtype=torch.long)
    module = OpenMMModule(model, numbers, periodic, total_charge, NM_TO_ANGSTROM, EV_TO_KJ_PER_MOL, index)
    return modelfile.script(module.eval())


def save(module: torch.jit.ScriptModule, path: str | Path, model_metadata: dict) -> Path:
    """Write a built module as a file that ``TorchForce(path)`` or ``torch.jit.load`` runs."""
    metadata = {
        "kind": KIND,
        "convention": "forward(positions [N,3] nm, box [3,3] nm if periodic) -> "
                      "(energy [] kJ/mol, forces [N,3] kJ/mol/nm); use TorchForce.setOutputsForces(True)",
        "periodic": bool(module.periodic),
        "atomic_numbers": module.atomic_numbers.tolist(),
        "model": {key: model_metadata.get(key) for key in ("elements", "cutoff", "backbone", "nnpcalc_version")},
    }
    return modelfile.save(module, path, metadata)
