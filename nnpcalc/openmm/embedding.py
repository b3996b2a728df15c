"""Electrostatic embedding for ML/MM: the model's own, geometry-dependent charges interact
with the MM point charges.

``MLPotential("nnpcalc", model=...).createMixedSystem(topology, mm_system, atoms,
embedding="electrostatic")`` (openmm-ml's potential-specific embedding API) gives a System in
which

* MM–MM interactions are the force field's, unchanged (PME included);
* bonded terms inside the ML region are removed, and ML–ML nonbonded pairs excluded
  (as in mechanical embedding); ML atoms keep their Lennard-Jones parameters, their MM
  charges are set to zero;
* one ``PythonForce`` adds the model's energy of the ML region plus
  ``k Σ_{i∈ML, j∈MM} q_i(R_ML) q_j / r_ij`` — summed directly without a box, by the ML–MM part
  of an Ewald sum with a box (real-space cutoff and tolerance those of the MM
  ``NonbondedForce``) — with forces by autograd, the charges' dependence on the ML geometry
  (∂q/∂R) included.

The ML region is evaluated as a molecule (its own periodic images are not seen by the network
or the model's Coulomb term). Covalent bonds across the ML/MM boundary are refused: use whole
molecules as the ML region (a solute in solvent), or mechanical embedding.
"""

from __future__ import annotations

import numpy as np
import openmm
import openmm.unit as unit
import torch

from ..errors import EngineSetupError
from ..runtime import Model
from ..threads import torch_threads
from ..units import COULOMB_EV_ANGSTROM, EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

NAME = "electrostatic"


def create_mixed_system(model: Model, topology, mm_system: openmm.System, atoms, force_group: int = 0,
                        total_charge: float = 0.0, threads: int | None = 1) -> openmm.System:
    """The ML/MM System with electrostatic embedding of ``atoms`` (see the module docstring)."""
    from openmmml.embeddings import utilities

    atoms = sorted(int(i) for i in atoms)
    if "charges" not in model.outputs:
        raise EngineSetupError(f"model {model.path.name} predicts no charges: electrostatic embedding needs them; "
                               "use embedding='mechanical'")
    links = utilities.findLinkBonds(topology, atoms)
    if links:
        raise EngineSetupError(
            f"electrostatic embedding needs an ML region of whole molecules; bonds {links[:3]} cross its "
            "boundary. Select whole molecules, or use embedding='mechanical'."
        )
    system = utilities.removeBonds(mm_system, topology, atoms, True)
    mm_charges, cutoff, tolerance = _strip_ml_charges(system, atoms)
    numbers = [a.element.atomic_number for a in topology.atoms()]
    compute = EmbeddingCompute(str(model.path), str(model.dtype).removeprefix("torch."), numbers, atoms,
                               mm_charges, total_charge, system.usesPeriodicBoundaryConditions(),
                               cutoff, tolerance, threads)
    force = openmm.PythonForce(compute)
    force.setUsesPeriodicBoundaryConditions(system.usesPeriodicBoundaryConditions())
    force.setForceGroup(force_group)
    system.addForce(force)
    return system


def _strip_ml_charges(system: openmm.System, atoms: list[int]) -> tuple[list[float], float, float]:
    """Zero the ML atoms' MM charges, exclude ML–ML pairs; (all MM charges in e, cutoff Å, tolerance)."""
    from openmmml.embeddings import utilities

    charges, cutoff, tolerance = [0.0] * system.getNumParticles(), 10.0, 5e-4
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            charges = [force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                       for i in range(force.getNumParticles())]
            for k, i in enumerate(atoms):
                q, sigma, epsilon = force.getParticleParameters(i)
                force.setParticleParameters(i, 0.0, sigma, epsilon)
                for j in atoms[:k]:
                    force.addException(i, j, 0.0, 1.0, 0.0, True)
            cutoff = force.getCutoffDistance().value_in_unit(unit.angstrom)
            tolerance = force.getEwaldErrorTolerance()
        elif isinstance(force, openmm.CustomNonbondedForce):
            utilities.addCustomNonbondedExclusions(force, atoms)
    return charges, cutoff, tolerance


class EmbeddingCompute:
    """The ``PythonForce`` callback: E_ML + k Σ q_ML q_MM / r (kJ/mol) and forces on every particle.

    Picklable: it keeps its settings and reloads the model file when unpickled.
    """

    def __init__(self, path, dtype, numbers, atoms, mm_charges, total_charge, periodic, cutoff, tolerance, threads):
        from ..nn.build import rebuild

        self.settings = (path, dtype, numbers, atoms, mm_charges, total_charge, periodic, cutoff, tolerance, threads)
        model = Model(path, dtype=dtype)
        self.potential = rebuild(model.path, (model.module, model.metadata)).requires_grad_(False)
        self.dtype = model.dtype
        self.ml = torch.tensor(atoms, dtype=torch.long)
        self.group = torch.zeros(len(numbers), dtype=torch.bool)
        self.group[self.ml] = True
        self.numbers = torch.tensor(numbers, dtype=torch.long)[self.ml]
        self.mm_charges = torch.tensor(mm_charges, dtype=self.dtype).masked_fill(self.group, 0.0)
        self.total_charge, self.periodic = float(total_charge), bool(periodic)
        self.cutoff, self.tolerance, self.threads = float(cutoff), float(tolerance), threads

    def energy(self, positions: torch.Tensor, box: torch.Tensor | None) -> torch.Tensor:
        """Energy (eV) of positions [N,3] Å (differentiable), box [3,3] Å or None."""
        from ..nn.electrostatics import interaction_energy

        energy, charges = self.ml_region(positions[self.ml])
        q = self.mm_charges.index_put((self.ml,), charges)
        cell = box if box is not None else torch.zeros(3, 3, dtype=self.dtype)
        coupling = interaction_energy(positions, q, self.group, cell, self.periodic, self.tolerance, self.cutoff)
        return energy + COULOMB_EV_ANGSTROM * coupling

    def ml_region(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(energy eV, charges e) of the ML region as a molecule, differentiable in ``positions``."""
        n = positions.shape[0]
        cell, pbc = torch.zeros(1, 3, 3, dtype=self.dtype), torch.zeros(1, 3, dtype=torch.bool)
        batch = torch.zeros(n, dtype=torch.long)
        edge_index, shifts = self.potential.neighbors(positions.detach(), cell, pbc, batch)
        system = {"positions": positions, "numbers": self.numbers, "batch": batch,
                  "total_charge": torch.tensor([self.total_charge], dtype=self.dtype),
                  "fidelity": torch.zeros(1, dtype=torch.long), "pbc": pbc}
        out = self.potential.properties(system, cell, edge_index, shifts.to(self.dtype))
        return out["energy"].sum(), out["charges"]

    def __call__(self, state: openmm.State):
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * NM_TO_ANGSTROM
        positions = torch.tensor(positions, dtype=self.dtype, requires_grad=True)
        box = None
        if self.periodic:
            vectors = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            box = torch.tensor(np.asarray(vectors) * NM_TO_ANGSTROM, dtype=self.dtype)
        with torch_threads(self.threads), torch.enable_grad():
            energy = self.energy(positions, box)
            (grad,) = torch.autograd.grad(energy, positions)
        forces = -grad.double().numpy() * (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)
        return float(energy.detach()) * EV_TO_KJ_PER_MOL, forces

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        self.__init__(*state["settings"])
