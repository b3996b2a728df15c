"""torch-sim: a model file as a torch-sim ``ModelInterface``, for batched relaxation and MD.

    import torch_sim as ts
    from nnpcalc.torchsim import NNPModel

    model = NNPModel("metals-emt", dtype=torch.float64)
    state = ts.optimize([cu, ag], model, optimizer=ts.frechet_cell_fire)

Every call evaluates all systems of a ``SimState`` in one ``forward_batch`` (one graph, one
autograd pass). torch-sim stores lattice vectors as the *columns* of ``state.cell``; the model,
like ASE, takes them as rows, so the adapter passes ``state.row_vector_cell``. Energies are
[n_systems], forces [n_atoms, 3], stress [n_systems, 3, 3] in eV/Å³ with ASE's sign (what torch-sim
expects), all detached. The model's other outputs ride along as extra keys, torch-sim's way
(its integrators read energy, forces and stress; a ``TrajectoryReporter`` property calculator
or a direct ``model(state)`` reads the rest): ``energy_uncertainty`` [n_systems] for a model
with an ensemble head, and ``forces_uncertainty`` [n_atoms] with ``uncertainty=True``. Written
against torch-sim-atomistic 0.3.0 (the newest release that runs on Python 3.11); the total
charge is read from ``state.charge`` where a torch-sim version has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .runtime import Model, require_standard_inputs

try:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface
except ImportError as err:  # the adapter is optional; say which extra brings torch-sim
    raise ImportError(
        "torch-sim is not installed; install it with `pip install 'nnpcalc[torchsim]'`."
    ) from err


class NNPModel(ModelInterface):
    """A model file behind torch-sim's ``ModelInterface``.

    Args:
        model: a model file, a shipped model name, a loaded :class:`Model`, or None (the default).
        device: torch device; dtype: torch.float32 or torch.float64 (ignored for a loaded Model).
        compute_forces, compute_stress: what ``forward`` returns besides the energy.
        total_charge: total charge in e, one number for all systems or one per system, used when
            the state carries no ``charge`` of its own.
        fidelity: the fidelity of a multi-fidelity model.
        neighbors: the runtime's neighbour-list back-end ("auto", "vesin", "torch").
        uncertainty: also return ``forces_uncertainty`` [n_atoms] (eV/Å) at every call (a model
            with an ensemble energy head: K - 1 extra backward passes); ``energy_uncertainty``
            [n_systems] (eV) comes with every call of such a model. Settable later; a model
            without the head is refused (``OptionError``).
    """

    def __init__(self, model: str | Path | Model | None = None, *, device="cpu", dtype=torch.float64,
                 compute_forces: bool = True, compute_stress: bool = True,
                 total_charge: float | Sequence[float] = 0.0, fidelity: str | int | None = None,
                 neighbors: str = "auto", uncertainty: bool = False):
        super().__init__()
        if not isinstance(model, Model):
            model = Model(model, device=device, dtype=dtype, neighbors=neighbors)
        require_standard_inputs(model, "torch-sim")  # a SimState carries no per-atom charges
        self.model = model
        self._device, self._dtype = model.device, model.dtype
        self._compute_forces, self._compute_stress = bool(compute_forces), bool(compute_stress)
        self._memory_scales_with = "n_atoms_x_density"  # a radial cutoff
        self.total_charge = total_charge
        self.fidelity = fidelity
        model.fidelity_index(fidelity)  # fail now, not at the first step
        if uncertainty:
            from .workflows.uncertainty_watch import require_uncertainty

            require_uncertainty(model)
        self.uncertainty = bool(uncertainty)

    @ModelInterface.compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    @ModelInterface.compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    def forward(self, state: ts.SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        """Energies, forces, stresses (and the model's other outputs) of every system in ``state``."""
        if isinstance(state, dict):
            state = ts.SimState(**{"masses": torch.ones_like(state["positions"][:, 0]), **state})
        cell = state.row_vector_cell  # torch-sim: lattice vectors as columns; the model: rows
        n_systems = cell.shape[0]
        out = self.model.forward_tensors(
            state.positions, state.atomic_numbers, cell, system_pbc(state.pbc, n_systems, cell.device),
            self.charges(state, n_systems), state.system_idx, self.fidelity,
            forces=self._compute_forces, stress=self._compute_stress,
            uncertainty=self.uncertainty and self._compute_forces,
        )
        dtype = state.positions.dtype
        return {key: value.to(dtype) if value.is_floating_point() else value for key, value in out.items()}

    def charges(self, state: ts.SimState, n_systems: int) -> torch.Tensor:
        """Total charge per system [n_systems]: the state's own, else this model's ``total_charge``."""
        charge = getattr(state, "charge", None)  # torch-sim >= 0.4 keeps one per system
        if charge is None:
            charge = self.total_charge
        charge = torch.as_tensor(charge, dtype=torch.float64).reshape(-1)
        if charge.numel() == 1:
            charge = charge.repeat(n_systems)
        if charge.numel() != n_systems:
            raise ValueError(
                f"total_charge has {charge.numel()} values for {n_systems} systems; give one per "
                "system (in the state's order) or a single number for all."
            )
        return charge


def system_pbc(pbc, n_systems: int, device) -> torch.Tensor:
    """[n_systems, 3] bool from torch-sim's pbc (one bool in 0.3; [3] or [n_systems, 3] later)."""
    pbc = torch.as_tensor(pbc, dtype=torch.bool, device=device)
    return pbc.reshape(-1, pbc.shape[-1] if pbc.dim() else 1).expand(n_systems, 3).contiguous()
