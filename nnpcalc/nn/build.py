"""Build a :class:`Potential` from a plain, JSON-able architecture description.

The same description is written into every model file's metadata, so a file can be rebuilt
as an eager module (for training, fine-tuning or ``torch.compile``) from its own weights.
What the file states about the model (cutoff, elements, outputs, heads) is not read from
the description: the built potential states it (``Potential.capabilities``) and the
metadata writer copies that.

A new head kind is one row of :data:`HEAD_KINDS`: a factory ``(spec, HeadInputs) -> module``
(the module a :class:`~nnpcalc.nn.heads.Head` that states its outputs), whether users name
it, and the kinds it needs before it.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Callable

from ase.data import atomic_numbers

from . import heads as H
from .potential import Potential
from .priors import ZBLRepulsion
from .torchmd_priors import TorchMDCoulomb, TorchMDD2, TorchMDRepulsion, TorchMDZBL
from .radial import DEFAULT_CUTOFF
from .uncertainty import EnsembleEnergyHead

#: backbone name → "module:Class"; imported only when chosen
BACKBONES = {
    "tensornet": "nnpcalc.nn.tensornet:TensorNet",
    "et": "nnpcalc.nn.et:EquivariantTransformer",
    "tensornet2": "nnpcalc.nn.tensornet2:TensorNet2",  # torchmd-net's, for imported checkpoints
    "graph-network": "nnpcalc.nn.graph_network:GraphNetwork",
    # not rotation-equivariant: train it with trainer.augment_rotations (nnpcalc.equivariance measures it)
    "cartesian-mpnn": "nnpcalc.nn.cartesian_mpnn:CartesianMPNN",
}


@dataclass
class Architecture:
    """Everything needed to rebuild the module (weights aside)."""

    elements: list[str]
    backbone: str = "tensornet"
    #: the backbone's keyword arguments; ``cutoff_upper`` (Å) defaults to ``radial.DEFAULT_CUTOFF``
    backbone_kwargs: dict = field(default_factory=dict)
    #: head specs: a kind ("energy", "charges", "dipole") or a dict such as
    #: {"kind": "scalar", "name": "gap", "unit": "eV"} for the kinds users name (HEAD_KINDS);
    #: imported torchmd-net models use {"kind": "torchmd_scalar", "name": "energy", ...}
    heads: list = field(default_factory=lambda: ["energy", "charges", "dipole"])
    #: long-range Coulomb energy of the charge head's charges, added after every head: "none",
    #: "coulomb" (molecules) or "ewald" (molecules and periodic cells); see nn/electrostatics.py
    electrostatics: str = "none"
    #: its options: damping_radius (Å, default the cutoff), accuracy (1e-6), ewald_cutoff (Å or "auto"),
    #: self_energy (false; true adds the learned charge self-energy Σ χ_Z q + ½ J_Z q²)
    electrostatics_kwargs: dict = field(default_factory=dict)
    fidelities: list[str] = field(default_factory=lambda: ["default"])
    context_channels: int = 8
    head_hidden: int = 64

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def cutoff(self) -> float:
        return float(self.backbone_kwargs.get("cutoff_upper", DEFAULT_CUTOFF))


@dataclass(frozen=True)
class HeadInputs:
    """What a head factory may use besides its spec."""

    width: int  # per-atom feature width (backbone + context channels)
    hidden: int  # Architecture.head_hidden
    max_z: int  # the largest atomic number of the model's elements
    num_fidelities: int
    cutoff: float  # Å


@dataclass(frozen=True)
class HeadKind:
    """One row of the head registry."""

    make: Callable[[dict, HeadInputs], H.Head]
    named: bool = False  # the spec must give a "name" (the output it writes)
    requires: tuple[str, ...] = ()  # kinds that must be listed before it
    provides: tuple[str, ...] = ()  # other kinds it stands in for in ``requires`` (an ensemble energy head: energy)


def _torchmd(cls, with_layers: bool):
    """torchmd-net's output models (imported checkpoints): one fidelity, no context channels."""

    def make(spec: dict, given: HeadInputs):
        if given.num_fidelities != 1:
            raise ValueError(f"head {spec['kind']!r} serves one fidelity, got {given.num_fidelities}")
        layers = (int(spec.get("num_hidden_layers", 0)),) if with_layers else ()
        return cls(given.width, spec.get("activation", "silu"), *layers, given.max_z, spec.get("reduce", "sum"))

    return make


def _torchmd_coulomb(spec: dict, given: HeadInputs):
    """torchmd-net's ``ScalarPlusWeightedCoulomb`` (nn/torchmd_coulomb.py) on TensorNet2's charge channels."""
    from .torchmd_coulomb import TorchMDScalarCoulombHead

    if given.num_fidelities != 1:
        raise ValueError(f"head {spec['kind']!r} serves one fidelity, got {given.num_fidelities}")
    cutoff = spec.get("coulomb_cutoff")
    return TorchMDScalarCoulombHead(
        given.width, spec.get("activation", "silu"), int(spec.get("num_hidden_layers", 0)), given.max_z,
        spec.get("reduce", "sum"), int(spec["charge_channels"]), None if cutoff is None else float(cutoff),
        float(spec.get("epsilon_solvent", 78.3)),
    )


#: head kind → how to build it. Add a kind here (its class lives in heads.py or its own module).
HEAD_KINDS: dict[str, HeadKind] = {
    "energy": HeadKind(lambda s, g: H.EnergyHead(g.width, g.hidden, max_z=g.max_z, num_fidelities=g.num_fidelities)),
    # the energy as the mean of a shallow ensemble, with its uncertainty (nn/uncertainty.py)
    "energy_ensemble": HeadKind(lambda s, g: EnsembleEnergyHead(
        g.width, g.hidden, g.max_z, g.num_fidelities, int(s.get("members", 8))), provides=("energy",)),
    "charges": HeadKind(lambda s, g: H.ChargeHead(g.width, g.hidden)),
    "dipole": HeadKind(lambda s, g: H.DipoleHead(), requires=("charges",)),
    "scalar": HeadKind(
        lambda s, g: H.ScalarHead(g.width, g.hidden, s["name"], s.get("reduce", "mean"), s.get("unit", "")),
        named=True),
    "classifier": HeadKind(
        lambda s, g: H.ClassifierHead(g.width, g.hidden, s["name"], int(s.get("num_classes", 1)),
                                      s.get("unit", "logit")),
        named=True),
    "direct_forces": HeadKind(
        lambda s, g: H.VectorHead(g.width, g.hidden, s["name"], g.cutoff, s.get("unit", "eV/Angstrom")),
        named=True),
    "denoise": HeadKind(
        lambda s, g: H.VectorHead(g.width, g.hidden, s["name"], g.cutoff, s.get("unit", "Angstrom")),
        named=True),
    "torchmd_scalar": HeadKind(_torchmd(H.TorchMDScalarHead, with_layers=True)),
    "torchmd_equivariant_scalar": HeadKind(_torchmd(H.TorchMDEquivariantScalarHead, with_layers=False)),
    # screened nuclear repulsion added to the energy head's energies (nn/priors.py)
    "zbl": HeadKind(lambda s, g: ZBLRepulsion(g.max_z, float(s.get("radius_factor", 1.0))), requires=("energy",)),
    # torchmd-net's ZBL prior, ported for imported checkpoints (nn/torchmd_priors.py)
    "torchmd_zbl": HeadKind(lambda s, g: TorchMDZBL(
        s["cutoff_distance"], s["distance_scale"], s["energy_scale"], int(s["num_types"]))),
    # torchmd-net's D2 prior (molecules only) and ScalarPlusWeightedCoulomb output model
    "torchmd_d2": HeadKind(lambda s, g: TorchMDD2(
        s["cutoff_distance"], s["distance_scale"], s["energy_scale"], int(s["num_types"]))),
    "torchmd_scalar_coulomb": HeadKind(_torchmd_coulomb),
    # torchmd-net's Coulomb prior (molecules only): reads the optional per-atom input atom_charges
    "torchmd_coulomb": HeadKind(lambda s, g: TorchMDCoulomb(
        s["lower_switch_distance"], s["upper_switch_distance"], int(s["max_num_neighbors"]),
        s["distance_scale"], s["energy_scale"])),
    # TensorNet2's in-backbone ZBL repulsion (repulsion=True), scaled like the energy head's atoms
    "torchmd_repulsion": HeadKind(lambda s, g: TorchMDRepulsion(
        int(s["num_elements"]), float(s.get("cutoff_lower", 0.0)), s.get("reduce", "sum"))),
}


def backbone_class(name: str):
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    module, cls = BACKBONES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def head_spec(head) -> dict:
    """A head spec as a dict with at least ``kind`` (and ``name`` for the named kinds)."""
    spec = {"kind": head} if isinstance(head, str) else dict(head)
    kind = spec.get("kind")
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; choose from {', '.join(HEAD_KINDS)}")
    if HEAD_KINDS[kind].named and not spec.get("name"):
        raise ValueError(f"a {kind!r} head needs a 'name' (the output it writes)")
    return spec


def _check_order(specs: list[dict]) -> None:
    kinds = [s["kind"] for s in specs]
    for i, kind in enumerate(kinds):
        before = set(kinds[:i]).union(*(HEAD_KINDS[k].provides for k in kinds[:i]))
        for need in HEAD_KINDS[kind].requires:
            if need not in before:
                raise ValueError(f"head {kind!r} needs head {need!r} listed before it")


def _element_numbers(elements: list[str]) -> list[int]:
    unknown = [s for s in elements if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbol(s) {unknown}")
    return sorted(atomic_numbers[s] for s in elements)


def _electrostatics(arch: Architecture, specs: list[dict], max_z: int) -> list:
    """The Coulomb term of ``arch.electrostatics`` (and its charge self-energy); they read the charge head."""
    from .electrostatics import make_electrostatics

    terms = make_electrostatics(arch.electrostatics, arch.electrostatics_kwargs, arch.cutoff, max_z)
    if terms and "charges" not in [s["kind"] for s in specs]:
        raise ValueError(f"electrostatics {arch.electrostatics!r} needs the 'charges' head in heads")
    return terms


def build_potential(arch: Architecture) -> Potential:
    specs = [head_spec(h) for h in arch.heads]
    _check_order(specs)
    numbers = _element_numbers(arch.elements)
    kwargs = {"cutoff_upper": arch.cutoff, "max_z": max(numbers) + 1, **arch.backbone_kwargs}
    backbone = backbone_class(arch.backbone)(**kwargs)
    context = arch.context_channels if len(arch.fidelities) > 1 else 0
    given = HeadInputs(backbone.hidden_channels + context, arch.head_hidden, max(numbers),
                       len(arch.fidelities), arch.cutoff)
    heads = [HEAD_KINDS[spec["kind"]].make(spec, given) for spec in specs]
    heads += _electrostatics(arch, specs, max(numbers))
    if not any("energy" in head.describe() for head in heads):
        raise ValueError("every model needs the 'energy' head (forces and stress derive from it)")
    return Potential(backbone, heads, numbers, arch.cutoff, list(arch.fidelities), context)


def export(potential: Potential, arch: Architecture, path, provenance: dict | None = None, dtype=None):
    """Write ``potential`` as a model file (float32 unless ``dtype`` says otherwise).

    The metadata states what ``potential`` says of itself (``capabilities()``) and ``arch``,
    the description it is rebuilt from.
    """
    import copy

    import torch

    from .. import modelfile

    dtype = dtype or torch.float32
    module = copy.deepcopy(potential).to(dtype).eval()
    metadata = modelfile.make_metadata(potential.capabilities(), arch.to_dict(), dtype, provenance)
    return modelfile.save(module, path, metadata)


def rebuild(path, loaded=None) -> Potential:
    """An eager :class:`Potential` with the weights of the model file at ``path``.

    ``loaded``: the file's ``(module, metadata)`` when the caller has already loaded it.
    """
    from .. import modelfile

    scripted, metadata = loaded if loaded is not None else modelfile.load(path)
    potential = build_potential(Architecture(**metadata["architecture"]))
    potential.load_state_dict(scripted.state_dict())
    return potential.to(scripted.dtype_probe.dtype).eval()
