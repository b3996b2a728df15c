"""The openmm-ml implementation behind ``MLPotential("nnpcalc", model=...)``.

``createSystem(topology, total_charge=0)`` gives a pure-NNP System; ``createMixedSystem(
topology, mm_system, atoms)`` a mechanical-embedding ML/MM one (openmm-ml removes the MM
terms inside the ML region and this potential adds the model's energy of that region).
Imported only when a potential is created (see :mod:`nnpcalc.openmm.plugin`).
"""

from __future__ import annotations

from openmmml.mlpotential import MLPotentialImpl

from ..runtime import Model
from .forces import create_force


class NNPCalcPotentialImpl(MLPotentialImpl):
    """An nnpcalc model file as an openmm-ml potential (loaded once, at construction)."""

    def __init__(self, name: str, model=None, *, dtype: str = "float32", device: str = "cpu",
                 kind: str = "auto", threads: int | None = 1):
        self.name = name
        self.model = model if isinstance(model, Model) else Model(model, dtype=dtype, device=device)
        self.kind = kind
        self.threads = threads

    def addForces(self, topology, system, atoms, forceGroup, **args):
        """Add the model's force over ``atoms`` (None: all); ``total_charge`` (or ``charge``) in e."""
        charge = args.get("total_charge", args.get("charge", 0.0))
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        force = create_force(self.model, topology, atoms=None if atoms is None else list(atoms),
                             total_charge=charge, kind=args.get("kind", self.kind),
                             periodic=periodic, threads=self.threads)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getMLLongRange(self) -> bool:
        """The model is local (a cutoff graph): no long-range ML interactions to embed."""
        return False
