"""The openmm-ml implementation behind ``MLPotential("nnpcalc", model=...)``.

``createSystem(topology, total_charge=0, precision=None)`` gives a pure-NNP System;
``createMixedSystem(topology, mm_system, atoms)`` a mechanical-embedding ML/MM one (openmm-ml
removes the MM terms inside the ML region and this potential adds the model's energy of that
region). Imported only when a potential is created (see :mod:`nnpcalc.openmm.plugin`).

Keywords are checked: one this potential does not take raises
:class:`~nnpcalc.errors.UnknownOptionError` instead of being ignored. ``precision`` follows
openmm-ml's convention (as MACE's and FeNNix's): ``"single"`` runs the model in float32,
``"double"`` in float64, None keeps the potential's ``dtype``.
"""

from __future__ import annotations

import math

from openmmml.mlpotential import MLPotentialImpl

from ..errors import InvalidChargeError, UnknownOptionError
from ..runtime import Model
from .forces import KINDS, create_force

#: openmm-ml's precision names → model dtypes
PRECISIONS = {"single": "float32", "double": "float64"}
#: what ``MLPotential("nnpcalc", ...)`` takes, and what ``createSystem``/``createMixedSystem`` pass on
CONSTRUCTOR_OPTIONS = ("model", "dtype", "device", "kind", "threads")
SYSTEM_OPTIONS = ("total_charge", "charge", "kind", "precision")


def check_options(given, allowed, where: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UnknownOptionError(
            f"{where} got unknown keyword(s) {', '.join(unknown)}; it takes {', '.join(allowed)} "
            "(see nnpcalc's docs/openmm.md)"
        )


class NNPCalcPotentialImpl(MLPotentialImpl):
    """An nnpcalc model file as an openmm-ml potential (loaded once, at construction)."""

    def __init__(self, name: str, model=None, *, dtype: str = "float32", device: str = "cpu",
                 kind: str = "auto", threads: int | None = 1):
        if kind not in KINDS:
            raise ValueError(f"unknown force kind {kind!r}; choose from {', '.join(KINDS)}")
        self.name = name
        self.model = model if isinstance(model, Model) else Model(model, dtype=dtype, device=device)
        self.kind = kind
        self.threads = threads

    def addForces(self, topology, system, atoms, forceGroup, **args):
        """Add the model's force over ``atoms`` (None: all); ``total_charge`` (or ``charge``) in e;
        ``precision`` "single"/"double" (None: the potential's dtype); ``kind`` as in create_force."""
        check_options(args, SYSTEM_OPTIONS, 'MLPotential("nnpcalc").createSystem/createMixedSystem')
        charge = _charge(args)
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        force = create_force(self._model(args.get("precision")), topology,
                             atoms=None if atoms is None else list(atoms), total_charge=charge,
                             kind=args.get("kind", self.kind), periodic=periodic, threads=self.threads)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def _model(self, precision: str | None) -> Model:
        """The loaded model in the precision asked for (reloaded from its file when it differs)."""
        if precision is None:
            return self.model
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'single' or 'double' (or None: the potential's dtype), got {precision!r}")
        dtype = PRECISIONS[precision]
        if str(self.model.dtype).removeprefix("torch.") == dtype:
            return self.model
        return Model(self.model.path, dtype=dtype, device=self.model.device)

    def getMLLongRange(self) -> bool:
        """Long-ranged when the model sums its charges' Coulomb energy over periodic images
        (architecture electrostatics 'ewald'); otherwise local (a cutoff graph)."""
        return self.model.metadata["architecture"].get("electrostatics", "none") == "ewald"

    def getSupportedEmbeddings(self) -> list[str]:
        """'electrostatic' (:mod:`nnpcalc.openmm.embedding`) for models that predict charges."""
        return ["electrostatic"] if "charges" in self.model.outputs else []

    def createMixedSystem(self, topology, system, atoms, forceGroup, interpolate, embedding, returnInfo=False, **args):
        """``embedding="electrostatic"``: the model's charges interact with the MM charges."""
        from ..errors import EngineSetupError
        from .embedding import create_mixed_system

        check_options(args, SYSTEM_OPTIONS, 'MLPotential("nnpcalc").createMixedSystem')
        if interpolate:
            raise EngineSetupError("electrostatic embedding does not interpolate (lambda_interpolate); "
                                   "use embedding='mechanical' to interpolate")
        return create_mixed_system(self._model(args.get("precision")), topology, system, atoms, forceGroup,
                                   _charge(args), self.threads)


def _charge(args: dict) -> float:
    if "total_charge" in args and "charge" in args and args["total_charge"] != args["charge"]:
        raise InvalidChargeError(f"total_charge={args['total_charge']!r} and charge={args['charge']!r} disagree; give one")
    value = args.get("total_charge", args.get("charge", 0.0))
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidChargeError(f"total_charge {value!r} is not a number; give the charge in e, e.g. total_charge=0") from None
    if not math.isfinite(value):
        raise InvalidChargeError(f"total_charge is {value}; give a finite charge in e, e.g. total_charge=0")
    return value
