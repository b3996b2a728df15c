"""Build a :class:`Potential` from a plain, JSON-able architecture description.

The same description is written into every model file's metadata, so a file can be rebuilt
as an eager module (for training, fine-tuning or ``torch.compile``) from its own weights.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field

from ase.data import atomic_numbers, chemical_symbols

from ..properties import describe
from .heads import HEADS, NAMED, REQUIRES
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
    #: head specs: a kind ("energy", "charges", "dipole") or a dict such as
    #: {"kind": "scalar", "name": "gap", "unit": "eV"} for the named kinds in heads.NAMED;
    #: imported torchmd-net models use {"kind": "torchmd_scalar", "name": "energy", ...}
    heads: list = field(default_factory=lambda: ["energy", "charges", "dipole"])
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


def head_spec(head) -> dict:
    """A head spec as a dict with at least ``kind`` (and ``name`` for the named kinds)."""
    spec = {"kind": head} if isinstance(head, str) else dict(head)
    kind = spec.get("kind")
    if kind not in HEADS:
        raise ValueError(f"unknown head kind {kind!r}; choose from {', '.join(HEADS)}")
    if kind in NAMED and not spec.get("name"):
        raise ValueError(f"a {kind!r} head needs a 'name' (the output it writes)")
    return spec


def _check_heads(specs: list[dict]) -> None:
    kinds = [s["kind"] for s in specs]
    if not any("energy" in getattr(HEADS[kind], "outputs", ()) for kind in kinds):
        raise ValueError("every model needs the 'energy' head (forces and stress derive from it)")
    for i, kind in enumerate(kinds):
        for need in REQUIRES.get(kind, ()):
            if need not in kinds[:i]:
                raise ValueError(f"head {kind!r} needs head {need!r} listed before it")


def _make_head(spec: dict, width: int, arch: Architecture, max_z: int):
    kind, hidden = spec["kind"], arch.head_hidden
    if kind == "energy":
        return HEADS[kind](width, hidden, max_z=max_z, num_fidelities=len(arch.fidelities))
    if kind == "dipole":
        return HEADS[kind]()
    if kind.startswith("torchmd_"):
        return _make_torchmd_head(spec, width, arch, max_z)
    if kind == "charges":
        return HEADS[kind](width, hidden)
    if kind == "scalar":
        return HEADS[kind](width, hidden, spec["name"], spec.get("reduce", "mean"))
    if kind == "classifier":
        return HEADS[kind](width, hidden, spec["name"], int(spec.get("num_classes", 1)))
    return HEADS[kind](width, hidden, spec["name"], arch.cutoff)  # vector heads


def _make_torchmd_head(spec: dict, width: int, arch: Architecture, max_z: int):
    """torchmd-net's output models (imported checkpoints): one fidelity, no context channels."""
    if len(arch.fidelities) != 1:
        raise ValueError(f"head {spec['kind']!r} serves one fidelity, got {arch.fidelities}")
    kind, activation, reduce = spec["kind"], spec.get("activation", "silu"), spec.get("reduce", "sum")
    if kind == "torchmd_scalar":
        return HEADS[kind](width, activation, int(spec.get("num_hidden_layers", 0)), max_z, reduce)
    return HEADS[kind](width, activation, max_z, reduce)


def build_potential(arch: Architecture) -> Potential:
    specs = [head_spec(h) for h in arch.heads]
    _check_heads(specs)
    unknown = [s for s in arch.elements if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbol(s) {unknown}")
    numbers = sorted(atomic_numbers[s] for s in arch.elements)
    kwargs = {"cutoff_upper": arch.cutoff, "max_z": max(numbers) + 1, **arch.backbone_kwargs}
    backbone = backbone_class(arch.backbone)(**kwargs)
    multi = len(arch.fidelities) > 1
    context = arch.context_channels if multi else 0
    width = backbone.hidden_channels + context
    heads = [_make_head(spec, width, arch, max(numbers)) for spec in specs]
    return Potential(backbone, heads, numbers, arch.cutoff, len(arch.fidelities), context)


def symbols(numbers: list[int]) -> list[str]:
    return [chemical_symbols[z] for z in numbers]


#: shape and default unit of the named head kinds' outputs
_NAMED_OUTPUTS = {
    "scalar": ("", "", False),
    "classifier": ("C", "logit", False),
    "direct_forces": ("N,3", "eV/Angstrom", True),
    "denoise": ("N,3", "Angstrom", True),
}


def output_table(arch: Architecture) -> dict[str, dict]:
    """Every output of the model: name → shape, unit, per_atom (for the metadata)."""
    table: dict[str, dict] = {}
    for spec in map(head_spec, arch.heads):
        if spec["kind"] in _NAMED_OUTPUTS:
            shape, unit, per_atom = _NAMED_OUTPUTS[spec["kind"]]
            table[spec["name"]] = {"shape": shape, "unit": spec.get("unit", unit), "per_atom": per_atom}
        else:
            table.update(describe(list(HEADS[spec["kind"]].outputs)))
    return table | describe(["forces", "stress"])


def export(potential: Potential, arch: Architecture, path, provenance: dict | None = None, dtype=None):
    """Write ``potential`` as a model file (float32 unless ``dtype`` says otherwise)."""
    import copy

    import torch

    from .. import modelfile

    dtype = dtype or torch.float32
    module = copy.deepcopy(potential).to(dtype).eval()
    metadata = modelfile.make_metadata(arch.to_dict(), output_table(arch), dtype, provenance)
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
