"""Build a :class:`Potential` from a plain, JSON-able architecture description.

The same description is written into every model file's metadata, so a file can be rebuilt
as an eager module (for training, fine-tuning or ``torch.compile``) from its own weights.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field

from ase.data import atomic_numbers, chemical_symbols

from .heads import HEADS, REQUIRES
from .potential import Potential

#: backbone name → "module:Class"; imported only when chosen
BACKBONES = {
    "tensornet": "nnpcalc.nn.tensornet:TensorNet",
    "et": "nnpcalc.nn.et:EquivariantTransformer",
    "graph-network": "nnpcalc.nn.graph_network:GraphNetwork",
}


@dataclass
class Architecture:
    """Everything needed to rebuild the module (weights aside)."""

    elements: list[str]
    backbone: str = "tensornet"
    backbone_kwargs: dict = field(default_factory=dict)
    heads: list[str] = field(default_factory=lambda: ["energy", "charges", "dipole"])
    fidelities: list[str] = field(default_factory=lambda: ["default"])
    context_channels: int = 8
    head_hidden: int = 64

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def cutoff(self) -> float:
        return float(self.backbone_kwargs.get("cutoff_upper", 5.0))


def backbone_class(name: str):
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    module, cls = BACKBONES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _check_heads(heads: list[str]) -> None:
    if "energy" not in heads:
        raise ValueError("every model needs the 'energy' head (forces and stress derive from it)")
    for i, name in enumerate(heads):
        if name not in HEADS:
            raise ValueError(f"unknown head {name!r}; choose from {', '.join(HEADS)}")
        for need in REQUIRES.get(name, ()):
            if need not in heads[:i]:
                raise ValueError(f"head {name!r} needs head {need!r} listed before it")


def build_potential(arch: Architecture) -> Potential:
    _check_heads(arch.heads)
    unknown = [s for s in arch.elements if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbol(s) {unknown}")
    numbers = sorted(atomic_numbers[s] for s in arch.elements)
    kwargs = {"cutoff_upper": arch.cutoff, "max_z": max(numbers) + 1, **arch.backbone_kwargs}
    backbone = backbone_class(arch.backbone)(**kwargs)
    multi = len(arch.fidelities) > 1
    context = arch.context_channels if multi else 0
    width = backbone.hidden_channels + context
    heads = []
    for name in arch.heads:
        if name == "energy":
            heads.append(HEADS[name](width, arch.head_hidden, max_z=max(numbers)))
        elif name == "dipole":
            heads.append(HEADS[name]())
        else:
            heads.append(HEADS[name](width, arch.head_hidden))
    return Potential(backbone, heads, numbers, arch.cutoff, len(arch.fidelities), context)


def symbols(numbers: list[int]) -> list[str]:
    return [chemical_symbols[z] for z in numbers]


def output_names(arch: Architecture) -> list[str]:
    names: list[str] = []
    for head in arch.heads:
        names += list(HEADS[head].outputs)
    return names + ["forces", "stress"]


def export(potential: Potential, arch: Architecture, path, provenance: dict | None = None, dtype=None):
    """Write ``potential`` as a model file (float32 unless ``dtype`` says otherwise)."""
    import copy

    import torch

    from .. import modelfile

    dtype = dtype or torch.float32
    module = copy.deepcopy(potential).to(dtype).eval()
    metadata = modelfile.make_metadata(arch.to_dict(), output_names(arch), dtype, provenance)
    return modelfile.save(module, path, metadata)


def rebuild(path) -> Potential:
    """An eager :class:`Potential` with the weights of the model file at ``path``."""
    from .. import modelfile

    scripted, metadata = modelfile.load(path)
    potential = build_potential(Architecture(**metadata["architecture"]))
    potential.load_state_dict(scripted.state_dict())
    return potential.to(scripted.dtype_probe.dtype).eval()
