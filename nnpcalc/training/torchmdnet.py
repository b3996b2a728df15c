"""torchmd-net checkpoints (written by ``torchmd-train``) → nnpcalc model files.

Supported: the representation models ``tensornet``, ``tensornet2`` and
``equivariant-transformer`` with output model ``Scalar`` (upstream gives ET its
``EquivariantScalar``) or, for ``tensornet2``, ``ScalarPlusWeightedCoulomb`` (its charge
channels and Coulomb energy: a ``torchmd_scalar_coulomb`` head), ``reduce_op`` add/sum/mean,
standardisation (the ``std``/``mean`` buffers), ``Atomref`` priors and the molecule-wise
``ZBL``, ``D2`` and ``Coulomb`` priors (``torchmd_zbl``, ``torchmd_d2`` and ``torchmd_coulomb``
heads after the energy head; D2 and Coulomb serve molecules only, as upstream computes them
without periodic boundaries). The ``Coulomb`` prior reads per-atom partial charges given with
every structure: the file takes them as its optional input ``atom_charges`` (metadata
``inputs``; ASE's ``initial_charges``, docs/electrostatics.md). The
exported file computes upstream's ``TorchMD_Net.forward`` energy: the backbone is nnpcalc's
port with upstream's parameter names, the head (``torchmd_scalar``,
``torchmd_equivariant_scalar`` or ``torchmd_scalar_coulomb``) is upstream's output model plus
std, mean and atomref; TensorNet2's ``repulsion=True`` ZBL is a ``torchmd_repulsion`` head after it.

Upstream behaviour kept: an Atomref prior disabled at training (``--remove-ref-energy``) stays
disabled, as ``load_model`` leaves it; a TensorNet trained without ``charge`` ignores the
total charge (it saw 0); ``Scalar`` ignores ``output_mlp_num_layers`` (torchmd-net 3.1 builds
it without hidden layers); old-layout TensorNet checkpoints (``check_errors`` in their
hyperparameters) are remixed as ``load_model`` does.

Elements: a checkpoint does not list the elements it was trained on. ``elements=`` wins;
otherwise the atomic numbers with a non-zero Atomref value (any Atomref prior); otherwise
:data:`DEFAULT_ELEMENTS` below ``max_z``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from ase.data import atomic_numbers, chemical_symbols

from ..errors import ModelFileError
from ..nn.build import Architecture, build_potential, export

#: torchmd-net ``model`` → nnpcalc backbone
MODELS = {"tensornet": "tensornet", "tensornet2": "tensornet2", "equivariant-transformer": "et"}
#: torchmd-net ``output_model`` → the nnpcalc head that ports it (None: the backbone's default)
OUTPUT_MODELS = {"Scalar": None, "ScalarPlusWeightedCoulomb": "torchmd_scalar_coulomb"}
#: molecule-wise priors → nnpcalc head kind and the upstream buffers it holds
MOLECULE_PRIORS = {"ZBL": ("torchmd_zbl", ("atomic_number",)), "D2": ("torchmd_d2", ("Z_map", "C_6", "R_r")),
                   "Coulomb": ("torchmd_coulomb", ())}
#: the torchmd-train prior_args each molecule-wise prior needs (it stores them all)
PRIOR_ARGS = {"ZBL": ("cutoff_distance", "distance_scale", "energy_scale", "atomic_number"),
              "D2": ("cutoff_distance", "distance_scale", "energy_scale", "atomic_number"),
              "Coulomb": ("lower_switch_distance", "upper_switch_distance", "max_num_neighbors",
                          "distance_scale", "energy_scale")}
#: upstream's D2 table ends at iodine/xenon (Z 54)
D2_MAX_Z = 54
#: torchmd-net aliases of tensornet2 (load_model renames them)
_TENSORNET2_ALIASES = ("tensornetv2_alt", "tensornet-nqe")
#: the elements served when neither ``elements=`` nor an Atomref prior says otherwise
#: prior names read as per-element reference energies
ATOMREFS = ("Atomref", "LearnableAtomref")
DEFAULT_ELEMENTS = ["H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"]
#: torchmd-net renamed these output-network keys (torchmd-net PR 314); ``load_model`` maps them
_LEGACY_KEYS = [
    (r"output_model.output_network.(\d+).update_net.(\d+).", r"output_model.output_network.\1.update_net.layers.\2."),
    (r"output_model.output_network.([02]).(weight|bias)", r"output_model.output_network.layers.\1.\2"),
]


def load_checkpoint(checkpoint) -> dict:
    """The checkpoint dict (a path is loaded on the CPU; a dict is returned as is)."""
    if isinstance(checkpoint, dict):
        return checkpoint
    from .checkpoint import read_checkpoint

    raw = read_checkpoint(checkpoint, "a torchmd-net checkpoint")  # weights only: no code from the file runs
    if not isinstance(raw, dict) or "state_dict" not in raw or "hyper_parameters" not in raw:
        raise ModelFileError(
            f"{checkpoint} is not a torchmd-net training checkpoint (no 'state_dict' and "
            "'hyper_parameters'); pass a .ckpt written by torchmd-train"
        )
    return raw


def hyperparameters(raw: dict) -> dict:
    """The torchmd-train arguments stored in a checkpoint, as a plain dict."""
    hparams = raw["hyper_parameters"]
    return dict(vars(hparams) if isinstance(hparams, argparse.Namespace) else hparams)


def priors(hparams: dict) -> list[tuple[str, dict]]:
    """(name, arguments) of every prior model, parsed as upstream's ``create_prior_models``."""
    spec = hparams.get("prior_model") or []
    names, args = [], []
    for prior in spec if isinstance(spec, list) else [spec]:
        items = prior.items() if isinstance(prior, dict) else [(prior, None)]
        for name, value in items:
            names.append(name)
            args.append(value or {})
    if hparams.get("prior_args") is not None:
        stored = hparams["prior_args"]
        args = stored if isinstance(stored, list) else [stored]
    return list(zip(names, [a or {} for a in args]))


def _check_supported(hparams: dict) -> None:
    model = hparams.get("model")
    if model in _TENSORNET2_ALIASES:
        hparams["model"] = model = "tensornet2"
    if model not in MODELS:
        raise ModelFileError(
            f"torchmd-net model {model!r} cannot be exported; nnpcalc serves {', '.join(MODELS)}"
        )
    output = hparams.get("output_model", "Scalar")
    if output not in OUTPUT_MODELS:
        raise ModelFileError(
            f"torchmd-net output model {output!r} cannot be exported; nnpcalc serves energy models "
            f"({', '.join(OUTPUT_MODELS)})"
        )
    if output == "ScalarPlusWeightedCoulomb" and model != "tensornet2":
        raise ModelFileError(
            f"torchmd-net output model ScalarPlusWeightedCoulomb reads the charge channels of model "
            f"tensornet2, not {model!r} (upstream cannot run this combination either)"
        )
    if hparams.get("reduce_op", "add") not in ("add", "sum", "mean"):
        raise ModelFileError(f"torchmd-net reduce_op {hparams['reduce_op']!r} is not one of add, sum, mean")
    if hparams.get("atom_filter", -1) > -1:
        raise ModelFileError(
            f"torchmd-net atom_filter={hparams['atom_filter']} cannot be exported; retrain without it"
        )
    other = [name for name, _ in priors(hparams) if name not in ATOMREFS + tuple(MOLECULE_PRIORS)]
    if other:
        raise ModelFileError(
            f"torchmd-net prior model(s) {other} cannot be exported; nnpcalc serves Atomref, ZBL, D2 and Coulomb priors"
        )
    for name, args in priors(hparams):
        missing = [k for k in PRIOR_ARGS.get(name, ()) if k not in args]
        if missing:
            raise ModelFileError(f"torchmd-net {name} prior_args lack {missing}; they are stored by torchmd-train")
        if name == "ZBL":
            _check_zbl(args, hparams)


def _check_zbl(args: dict, hparams: dict) -> None:
    if float(args["cutoff_distance"]) > float(hparams["cutoff_upper"]):
        raise ModelFileError(
            f"torchmd-net ZBL cutoff_distance {args['cutoff_distance']} exceeds the model's cutoff_upper "
            f"{hparams['cutoff_upper']}; nnpcalc's graph stops there"
        )


def _backbone_kwargs(hparams: dict) -> dict:
    kwargs = {
        "hidden_channels": int(hparams["embedding_dimension"]),
        "num_layers": int(hparams["num_layers"]),
        "num_rbf": int(hparams["num_rbf"]),
        "rbf_type": hparams["rbf_type"],
        "trainable_rbf": bool(hparams["trainable_rbf"]),
        "activation": hparams["activation"],
        "cutoff_lower": float(hparams["cutoff_lower"]),
        "cutoff_upper": float(hparams["cutoff_upper"]),
        "max_z": int(hparams["max_z"]),
    }
    if hparams["model"] in ("tensornet", "tensornet2"):
        kwargs |= {
            "equivariance_invariance_group": hparams.get("equivariance_invariance_group", "O(3)"),
            "total_charge": bool(hparams.get("charge", False)),
        }
    if hparams["model"] == "tensornet2":  # upstream: output_charges when "Coul" is in the output model's name
        kwargs |= {"q_dim": int(hparams.get("q_dim", 0)), "output_charges": "Coul" in hparams.get("output_model", "Scalar")}
    if hparams["model"] in ("tensornet", "tensornet2"):
        return kwargs
    return kwargs | {
        "attn_activation": hparams["attn_activation"],
        "neighbor_embedding": bool(hparams["neighbor_embedding"]),
        "num_heads": int(hparams["num_heads"]),
        "distance_influence": hparams["distance_influence"],
        "vector_cutoff": bool(hparams.get("vector_cutoff", False)),
    }


def _check_elements(elements: list[str], max_z: int, hparams: dict | None = None) -> list[str]:
    bad = [s for s in elements if atomic_numbers.get(s, 0) < 1 or atomic_numbers[s] >= max_z]
    if bad or not elements:
        raise ValueError(
            f"elements {bad or elements} cannot be served by this checkpoint: its embedding "
            f"covers atomic numbers 1..{max_z - 1}; pass elements= with symbols in that range"
        )
    for name, args in priors(hparams or {}):
        if name == "D2":
            table = list(args["atomic_number"])
            bad = [s for s in elements if atomic_numbers[s] >= len(table) or table[atomic_numbers[s]] > D2_MAX_Z]
            if bad:
                raise ValueError(
                    f"elements {bad} cannot be served by this checkpoint's D2 prior: its table covers "
                    f"atomic numbers 1..{D2_MAX_Z}; pass elements= without them"
                )
    return sorted(set(elements), key=atomic_numbers.__getitem__)


def architecture_from_hparams(hparams: dict, elements: list[str] | None = None) -> Architecture:
    """The nnpcalc architecture of a torchmd-train run (``elements`` default: DEFAULT_ELEMENTS)."""
    _check_supported(hparams)
    max_z = int(hparams["max_z"])
    if elements is None:
        elements = [s for s in DEFAULT_ELEMENTS if atomic_numbers[s] < max_z]
    head = {
        "kind": "torchmd_equivariant_scalar" if hparams["model"] == "equivariant-transformer" else "torchmd_scalar",
        "name": "energy",
        "activation": hparams["activation"],
        "reduce": "mean" if hparams.get("reduce_op", "add") == "mean" else "sum",
    }
    if hparams.get("output_model", "Scalar") == "ScalarPlusWeightedCoulomb":
        head |= _coulomb_head(hparams)
    return Architecture(
        elements=_check_elements(list(elements), max_z, hparams), backbone=MODELS[hparams["model"]],
        backbone_kwargs=_backbone_kwargs(hparams), heads=[head] + _repulsion_heads(hparams) + _prior_heads(hparams),
        fidelities=["default"],
    )


def _repulsion_heads(hparams: dict) -> list[dict]:
    """TensorNet2's ``repulsion=True`` ZBL term as a head after the energy head (none otherwise)."""
    if hparams["model"] != "tensornet2" or not hparams.get("repulsion", False):
        return []
    from ase.data import covalent_radii

    return [{"kind": "torchmd_repulsion", "num_elements": min(int(hparams["max_z"]), len(covalent_radii)),
             "cutoff_lower": float(hparams["cutoff_lower"]),
             "reduce": "mean" if hparams.get("reduce_op", "add") == "mean" else "sum"}]


def _coulomb_head(hparams: dict) -> dict:
    """The ``ScalarPlusWeightedCoulomb`` part of the energy head's spec (charge channels, Coulomb mode)."""
    cutoff = hparams.get("coulomb_cutoff")
    return {
        "kind": "torchmd_scalar_coulomb",
        # create_model builds this MLP with output_mlp_num_layers hidden layers (Scalar ignores them)
        "num_hidden_layers": int(hparams.get("output_mlp_num_layers", 0)),
        "charge_channels": (int(hparams["num_layers"]) + 1) * int(hparams.get("q_dim", 0)),
        "coulomb_cutoff": None if cutoff is None else float(cutoff),
        # create_model does not pass coulomb_epsilon_solvent: upstream's default holds
        "epsilon_solvent": 78.3,
    }


def _prior_heads(hparams: dict) -> list[dict]:
    """Head specs of the molecule-wise priors (ZBL, D2, Coulomb), in upstream's order."""
    return [_prior_head(name, a) for name, a in priors(hparams) if name in MOLECULE_PRIORS]


def _prior_head(name: str, a: dict) -> dict:
    scales = {"distance_scale": float(a["distance_scale"]), "energy_scale": float(a["energy_scale"])}
    if name == "Coulomb":  # the per-atom charges come with every structure (the file's input atom_charges)
        return {"kind": "torchmd_coulomb", "lower_switch_distance": float(a["lower_switch_distance"]),
                "upper_switch_distance": float(a["upper_switch_distance"]),
                "max_num_neighbors": int(a["max_num_neighbors"])} | scales
    return {"kind": MOLECULE_PRIORS[name][0], "cutoff_distance": float(a["cutoff_distance"]),
            "num_types": len(a["atomic_number"])} | scales


def _remix(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ordered [F, 3] → [3, F], as ``load_model``'s ``compatibility_load``."""
    a, b = weight.shape
    weight = weight.view(a // 3, 3, b).transpose(0, 1).reshape(a, b)
    return weight, bias.view(a // 3, 3).transpose(0, 1).reshape(a)


def _remix_old_tensornet(state: dict, hparams: dict) -> None:
    keys = ["representation_model.tensor_embedding.linears_scalar.1"]
    if hparams["model"] == "tensornet":  # TensorNet2's interaction layers kept their layout
        keys += [f"representation_model.layers.{i}.linears_scalar.2" for i in range(int(hparams["num_layers"]))]
    for key in keys:
        state[f"{key}.weight"], state[f"{key}.bias"] = _remix(state[f"{key}.weight"], state[f"{key}.bias"])


def state_dict_from_checkpoint(checkpoint) -> dict[str, torch.Tensor]:
    """Upstream ``TorchMD_Net``'s state dict, as ``load_model`` loads it (renames and remix applied)."""
    raw = load_checkpoint(checkpoint)
    state = {re.sub(r"^model\.", "", k): v for k, v in raw["state_dict"].items()}
    for pattern, replacement in _LEGACY_KEYS:
        state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
    hparams = hyperparameters(raw)
    if hparams.get("model") in ("tensornet", "tensornet2") + _TENSORNET2_ALIASES and "check_errors" in hparams:
        _remix_old_tensornet(state, hparams)
    return state


def _atomrefs(hparams: dict, state: dict, enabled_only: bool) -> list[torch.Tensor]:
    """The Atomref priors' tables [K] (enabled ones, or all)."""
    tables = []
    for i, (name, args) in enumerate(priors(hparams)):
        if name in ATOMREFS and (args.get("enable", True) or not enabled_only):
            tables.append(state[f"prior_model.{i}.atomref.weight"].reshape(-1).to(torch.float64))
    return tables


def atomref_elements(hparams: dict, state: dict) -> list[str] | None:
    """Symbols with a non-zero value in any Atomref prior below ``max_z``; None without one."""
    tables = _atomrefs(hparams, state, enabled_only=False)
    if not tables:
        return None
    nonzero = torch.zeros(max(map(len, tables)), dtype=torch.bool)
    for table in tables:
        nonzero[: len(table)] |= table != 0
    found = [chemical_symbols[z] for z in range(1, min(len(nonzero), int(hparams["max_z"]))) if nonzero[z]]
    return found or None


def _scalar(value: torch.Tensor, name: str) -> torch.Tensor:
    if value.numel() != 1:
        raise ModelFileError(f"torchmd-net {name} has shape {list(value.shape)}; nnpcalc serves one energy")
    return value.reshape(()).to(torch.float64)


def _renamed(state: dict) -> dict[str, torch.Tensor]:
    """Upstream's backbone and output-model weights under nnpcalc's names."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(("representation_model.distance.", "output_model.distance.", "prior_model.",
                           "representation_model.repulsion.")):
            continue  # the neighbour lists' boxes; the priors and TensorNet2's repulsion are read separately
        if key.startswith("representation_model."):
            renamed["backbone." + key.removeprefix("representation_model.")] = value
        elif key.startswith("output_model."):
            renamed["heads.0." + key.removeprefix("output_model.")] = value
        elif key not in ("std", "mean"):
            raise ModelFileError(f"unexpected torchmd-net weight {key!r}; this checkpoint's model is not supported")
    return renamed


def potential_state(potential, hparams: dict, state: dict) -> dict[str, torch.Tensor]:
    """``potential``'s state dict filled with the upstream weights in ``state``."""
    ours = dict(potential.state_dict())
    renamed = _renamed(state)
    head_buffers = {f"heads.0.{name}" for name in ("atomref", "scale", "shift", "mean")}
    wanted = {k for k in ours if k.startswith(("backbone.", "heads.0."))} - head_buffers
    if set(renamed) != wanted:
        raise ModelFileError(
            f"torchmd-net weights do not match its hyperparameters: missing {sorted(wanted - set(renamed))}, "
            f"unexpected {sorted(set(renamed) - wanted)}"
        )
    atomref = torch.zeros_like(potential.heads[0].atomref)
    for table in _atomrefs(hparams, state, enabled_only=True):
        width = min(len(table), atomref.shape[1])
        atomref[0, :width] += table[:width]
    ours |= renamed
    first = 1 + len(_repulsion_heads(hparams))
    if first == 2:  # TensorNet2's repulsion: its tables, and std (upstream scales it with the atoms' energies)
        for buffer in ("z_pow", "z_outer", "cutoff_ab"):
            ours[f"heads.1.{buffer}"] = state[f"representation_model.repulsion.{buffer}"]
        ours["heads.1.scale"] = _scalar(state.get("std", torch.ones(())), "std")
    molecule_wise = [(i, name) for i, (name, _) in enumerate(priors(hparams)) if name in MOLECULE_PRIORS]
    for head, (i, name) in enumerate(molecule_wise, start=first):
        for buffer in MOLECULE_PRIORS[name][1]:
            ours[f"heads.{head}.{buffer}"] = state[f"prior_model.{i}.{buffer}"]
    ours["heads.0.atomref"] = atomref
    ours["heads.0.scale"] = _scalar(state.get("std", torch.ones(())), "std")
    ours["heads.0.mean"] = _scalar(state.get("mean", torch.zeros(())), "mean")
    return ours


def _provenance(checkpoint, output, raw: dict, hparams: dict) -> dict:
    return {
        "source": "torchmd-net",
        "checkpoint": Path(str(checkpoint)).name,
        "model": hparams["model"],
        "output_model": hparams.get("output_model", "Scalar"),
        "priors": [name for name, _ in priors(hparams)],
        "epoch": raw.get("epoch"),
        "global_step": raw.get("global_step"),
        "command": f"nnp export {Path(str(checkpoint)).name} -o {Path(str(output)).name}",
    }


def export_torchmdnet_checkpoint(checkpoint, output, elements: list[str] | None = None) -> Path:
    """Write the model file of a ``torchmd-train`` checkpoint (float64 if trained in precision 64)."""
    raw = load_checkpoint(checkpoint)
    hparams = hyperparameters(raw)
    _check_supported(hparams)
    state = state_dict_from_checkpoint(raw)
    arch = architecture_from_hparams(hparams, elements or atomref_elements(hparams, state))
    potential = build_potential(arch).to(torch.float64)  # load upstream weights losslessly
    potential.load_state_dict(potential_state(potential, hparams, state), strict=True)
    dtype = torch.float64 if int(hparams.get("precision", 32)) == 64 else torch.float32
    return export(potential.eval(), arch, output, _provenance(checkpoint, output, raw, hparams), dtype=dtype)
