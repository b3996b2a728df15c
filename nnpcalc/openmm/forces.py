"""OpenMM forces from a model file: ``PythonForce`` (always) or OpenMM-Torch's ``TorchForce``.

Both run the same TorchScript module (:mod:`nnpcalc.openmm.wrapper`). Everything a user can
get wrong (missing or unknown elements, a degenerate box, a non-periodic model in a periodic
system, an unknown ``kind``) is refused here, before a Context exists.

Threads: a ``PythonForce`` runs torch with ``threads`` intra-op threads (default 1) during
each call and restores the previous setting after it; for small systems one thread is much
faster than several on a loaded machine. ``TorchForce`` runs inside OpenMM's C++ and uses
torch's process-wide setting (``torch.set_num_threads``), which nnpcalc leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import torch

from .. import modelfile
from ..errors import InvalidStructureError, UnknownElementError
from ..properties import dtype_name
from ..runtime import Model, require_standard_inputs
from ..threads import torch_threads
from . import topology as topo
from . import wrapper

KINDS = ("auto", "python", "torch")


def create_force(
    model,
    topology,
    *,
    atoms=None,
    total_charge: float = 0.0,
    kind: str = "auto",
    periodic: bool | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    threads: int | None = 1,
) -> openmm.Force:
    """An OpenMM Force computing the model's energy (kJ/mol) and forces (kJ/mol/nm).

    Args:
        model: a model file path, a shipped model's name, a loaded :class:`nnpcalc.Model`,
            or None for the default model.
        topology: the ``openmm.app.Topology`` (its elements, and its box if periodic) or ASE atoms.
        atoms: indices of the particles the model covers (ML/MM); None = all of them.
        total_charge: total charge (e) of those particles.
        kind: "python" (``openmm.PythonForce``), "torch" (OpenMM-Torch ``TorchForce``) or
            "auto" (``TorchForce`` when ``openmmtorch`` imports, else ``PythonForce``).
        periodic: whether the force uses the periodic box; None: whether the topology has one.
        dtype, device: the model's precision and torch device.
        threads: torch threads during each ``PythonForce`` call (None: leave torch's setting).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown force kind {kind!r}; choose from {', '.join(KINDS)}")
    model, spec = prepare(model, topology, atoms, total_charge, periodic, threads, dtype, device)
    if _resolve_kind(kind) == "torch":
        return _torch_force(model, spec)
    return _python_force(model, spec)


def prepare(model, topology, atoms=None, total_charge=0.0, periodic=None, threads=1, dtype="float32", device="cpu"):
    """(loaded :class:`Model`, checked :class:`ForceSpec`) from :func:`create_force`'s arguments."""
    if not isinstance(topology, app.Topology):
        topology = topo.from_atoms(topology)[0]
    model = model if isinstance(model, Model) else Model(model, dtype=dtype, device=device)
    indices = topo.check_selection(atoms, topology.getNumAtoms())
    return model, ForceSpec.of(model, topology, indices, total_charge, periodic, threads)


@dataclass(frozen=True)
class ForceSpec:
    """Everything needed to rebuild a force's module (what a pickled ``PythonForce`` keeps)."""

    path: str
    dtype: str
    device: str
    atomic_numbers: tuple[int, ...]
    indices: tuple[int, ...] | None
    periodic: bool
    total_charge: float
    threads: int | None

    @classmethod
    def of(cls, model: Model, topology, indices, total_charge, periodic, threads) -> "ForceSpec":
        require_standard_inputs(model, "OpenMM")  # a force passes positions and the box only
        numbers = topo.atomic_numbers(topology, indices)
        _check_elements(model, numbers)
        periodic = topology.getPeriodicBoxVectors() is not None if periodic is None else bool(periodic)
        if periodic:
            _check_periodic(model)
        return cls(
            str(model.path), dtype_name(model.dtype), str(model.device),
            tuple(int(z) for z in numbers), None if indices is None else tuple(indices),
            periodic, float(total_charge), threads,
        )

    def module(self, model: Model | None = None, *, select: bool) -> torch.jit.ScriptModule:
        """The OpenMM-convention module; ``select``: it picks its particles out of all N."""
        model = model or Model(self.path, dtype=self.dtype, device=self.device)
        indices = self.indices if select else None
        built = wrapper.build(model.module, self.atomic_numbers, periodic=self.periodic,
                              total_charge=self.total_charge, indices=indices)
        return built.to(model.device)


def _check_elements(model: Model, numbers: np.ndarray) -> None:
    symbols = sorted({app.Element.getByAtomicNumber(int(z)).symbol for z in numbers} - set(model.elements))
    if symbols:
        raise UnknownElementError(symbols, model.elements, f"model {model.path.name}")


def _check_periodic(model: Model) -> None:
    """A periodic force needs a model that allows periodic use (any box size: every image is in
    the graph; OpenMM itself refuses boxes without volume or not in reduced form)."""
    if model.metadata.get("periodic", True) is False:
        raise InvalidStructureError(
            f"model {model.path.name} is marked non-periodic (metadata 'periodic': false) but the "
            "system is periodic. Use a model trained on periodic structures, or simulate without "
            "a box (no box vectors in the topology, periodic=False)."
        )


def _resolve_kind(kind: str) -> str:
    if kind == "python":
        return "python"
    available = _openmmtorch() is not None
    if kind == "torch" and not available:
        raise ImportError(
            "kind='torch' needs OpenMM-Torch (`import openmmtorch` failed). Install a build that "
            "matches your torch (conda install -c conda-forge openmm-torch) or use kind='python'."
        )
    return "torch" if available else "python"


def _openmmtorch():
    try:
        import openmmtorch
    except Exception:  # a wheel built against another torch fails with OSError/ImportError
        return None
    return openmmtorch


def _torch_force(model: Model, spec: ForceSpec) -> openmm.Force:
    force = _openmmtorch().TorchForce(spec.module(model, select=True))
    force.setOutputsForces(True)
    force.setUsesPeriodicBoundaryConditions(spec.periodic)
    return force


def _python_force(model: Model, spec: ForceSpec) -> openmm.Force:
    computation = Compute(spec, model)
    force = openmm.PythonForce(computation)
    force.computation = computation  # on this Python object only: System.getForce(i) returns a new one
    force.setUsesPeriodicBoundaryConditions(spec.periodic)
    if spec.indices is not None:
        force.setParticles(list(spec.indices))
    return force


class Compute:
    """The ``PythonForce`` callback: OpenMM State → (energy kJ/mol, forces kJ/mol/nm).

    Picklable (OpenMM pickles it to serialize or copy the force): the pickle holds the
    :class:`ForceSpec`, and unpickling reloads the model file from its path.

    OpenMM calls this very object, so ``energy_uncertainty`` holds the model's energy
    uncertainty (eV) at the last positions it evaluated (a model with an ensemble energy head;
    NaN before the first call or without one): after ``context.getState(getEnergy=True)``, as a
    reporter asks, the current ones; after ``integrator.step`` alone, those the last step started
    from. The ``PythonForce`` that :func:`create_force` returns carries it as ``force.computation``.
    """

    def __init__(self, spec: ForceSpec, model: Model | None = None):
        self.spec = spec
        self.module = spec.module(model, select=False)
        self.device = next(self.module.buffers()).device
        self.energy_uncertainty = float("nan")  #: eV, at the last call

    def __call__(self, state: openmm.State):
        positions = torch.from_numpy(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        box = None
        if self.spec.periodic:
            box = torch.from_numpy(np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))
        with torch_threads(self.spec.threads), modelfile.calling():
            energy, forces, out = self.module.evaluate(positions.to(self.device),
                                                       None if box is None else box.to(self.device))
        if "energy_uncertainty" in out:
            self.energy_uncertainty = float(out["energy_uncertainty"])
        return float(energy), forces.detach().cpu().numpy()

    def __getstate__(self):
        return {"spec": self.spec}

    def __setstate__(self, state):
        self.__init__(state["spec"])


def save_torchforce_module(model, topology, path: str | Path, *, atoms=None, total_charge: float = 0.0,
                           periodic: bool | None = None, dtype: str = "float32", device: str = "cpu") -> Path:
    """Write the OpenMM-convention module to a file that ``TorchForce(str(path))`` loads.

    Arguments as in :func:`create_force`. Use the file with ``setOutputsForces(True)`` and,
    when periodic, ``setUsesPeriodicBoundaryConditions(True)``.
    """
    model, spec = prepare(model, topology, atoms, total_charge, periodic, None, dtype, device)
    return wrapper.save(spec.module(model, select=True), path, model.metadata)
