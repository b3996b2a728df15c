"""Least-squares start of the charge self-energy (``electrostatics_kwargs: {self_energy: true}``).

Fine-tuning a model that gains the term Σ_i (χ_Z q_i + ½ J_Z q_i²) from χ = 0 is slow: Adam moves
χ by ~lr × CHI_SCALE a step, while ions want χ of 5-30 eV/e. So, like the atomref fit before a
training, fit the term once on the recipe's *train* split (dimers and isolated atoms left out),
with the charges the source model serves and its energy without the term::

    E_ref − E_model(χ = J = 0) ≈ Σ_Z n_Z ΔE_Z + Σ_i χ_Z q_i + ½ J_Z q_i²

and write the source weights with those χ, J (J clamped ≥ ``MIN_HARDNESS``) and atomref + ΔE
as the start (``init_from``) of the recipe. The default model's start (recipe
``models/hcno-gfn2.yaml``, from the previous model file) was made by exactly this.

    python -m nnpcalc.training.self_energy_fit RECIPE SOURCE_MODEL OUTPUT
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

#: the fitted hardness is clamped to at least this (eV/e²): the term stays convex in q
MIN_HARDNESS = 0.5
#: subsets left out of the fit: far from where the charges mean anything
SKIPPED_SUBSETS = ("dimers", "atoms")


def _potential(recipe: dict, source: Path):
    """The recipe's potential (with the self-energy) holding the weights of ``source``."""
    from ..nn.build import Architecture, build_potential
    from .module import _load_whole, _weights

    fields = Architecture.__dataclass_fields__
    arch = Architecture(**{k: v for k, v in recipe["architecture"].items() if k in fields})
    potential = build_potential(arch)
    _load_whole(potential, _weights(source))
    term = potential.heads[-1]
    if term.name != "self_energy":
        raise ValueError("the recipe's architecture has no charge self-energy "
                         "(electrostatics_kwargs: {self_energy: true})")
    return potential, arch, term


def train_frames(recipe: dict, skipped=SKIPPED_SUBSETS) -> list:
    """The frames of the recipe's train split, without the ``skipped`` subsets."""
    from .data import recipe_frames

    return [f for f in recipe_frames(recipe, "train") if f.info.get("subset") not in skipped]


def design_matrix(model, frames, elements: list[int], energy_key: str = "ref_energy"):
    """(X, y, total charges): X's columns are n_Z, Σ q (per Z), ½ Σ q² (per Z); y = E_ref − E_model."""
    rows, residual, charge = [], [], []
    for f in frames:
        total = float(f.info.get("charge", 0.0))
        (out,) = model.compute([f], total_charge=[total], stress=False, forces=False)
        q, n = out["charges"], f.numbers
        rows.append([(n == z).sum() for z in elements] + [q[n == z].sum() for z in elements]
                    + [0.5 * (q[n == z] ** 2).sum() for z in elements])
        residual.append(f.info[energy_key] - out["energy"])
        charge.append(total)
    return np.array(rows, dtype=float), np.array(residual, dtype=float), np.array(charge)


def solve(X: np.ndarray, y: np.ndarray, min_hardness: float = MIN_HARDNESS):
    """(ΔE, χ, J) per element by least squares; J clamped to ≥ ``min_hardness`` afterwards."""
    k = X.shape[1] // 3
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return coef[:k], coef[k:2 * k], np.maximum(coef[2 * k:], min_hardness)


def _report(X, y, charge, symbols, shift, chi, hardness) -> dict:
    k = len(symbols)
    fit = X[:, :2 * k] @ np.concatenate([shift, chi]) + X[:, 2 * k:] @ hardness
    report = {"frames": len(y), "shift_eV": dict(zip(symbols, shift.round(3).tolist())),
              "chi_eV_per_e": dict(zip(symbols, chi.round(3).tolist())),
              "J_eV_per_e2": dict(zip(symbols, hardness.round(3).tolist()))}
    for c in sorted(set(charge.tolist())):
        s = charge == c
        report[f"train MAE eV/frame, charge {c:+.0f}"] = [round(float(np.abs(y[s]).mean()), 3),
                                                         round(float(np.abs(y[s] - fit[s]).mean()), 3)]
    return report


def _set_term(potential, term, elements, shift, chi, hardness) -> None:
    import torch

    with torch.no_grad():
        for k, z in enumerate(elements):
            term.electronegativity[z] = float(chi[k]) / term.chi_scale
            term.hardness[z] = math.log(math.expm1(float(hardness[k]) / term.hardness_scale))  # softplus⁻¹
            potential.heads[0].atomref[:, z] += float(shift[k])


def fit_self_energy_start(recipe, source_model, output, frames=None) -> dict:
    """Write ``output``: ``source_model``'s weights in ``recipe``'s architecture, with the
    self-energy's χ, J and per-element energy shifts fitted by least squares (module docstring).

    ``recipe``: a recipe path or dict (its data, seed, split and architecture are used);
    ``frames``: fit on these instead of the recipe's train split (tests). Returns the report
    (also stored in the output's provenance): the fitted values, the MAE per total charge before → after.
    """
    import torch

    from ..nn.build import export
    from ..runtime import Model
    from .train import load_config

    config = load_config(recipe)
    potential, arch, term = _potential(config, Path(source_model))
    with torch.no_grad():  # χ = 0, J ≈ 0: the energy without the term
        term.electronegativity.zero_()
        term.hardness.fill_(-30.0)
    frames = train_frames(config) if frames is None else frames
    elements = _numbers(arch.elements)
    with tempfile.TemporaryDirectory() as tmp:
        probe = export(potential, arch, Path(tmp) / "probe.pt", dtype=torch.float64)
        X, y, charge = design_matrix(Model(probe, dtype="float64"), frames, elements)
    shift, chi, hardness = solve(X, y)
    symbols = list(arch.elements)
    report = _report(X, y, charge, symbols, shift, chi, hardness)
    _set_term(potential, term, elements, shift, chi, hardness)
    export(potential, arch, output, dtype=torch.float32,
           provenance={"init": f"{source_model} + {arch.electrostatics} + self-energy fitted by least squares",
                       **report})
    return report | {"fit": {"shift": shift.tolist(), "chi": chi.tolist(), "J": hardness.tolist()}}


def _numbers(symbols) -> list[int]:
    from ase.data import atomic_numbers

    return [atomic_numbers[s] for s in symbols]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnpcalc.training.self_energy_fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="training recipe (YAML) whose architecture has the self-energy")
    parser.add_argument("source", help="model file or nnpcalc checkpoint to start from")
    parser.add_argument("output", help="model file to write (the recipe's init_from)")
    args = parser.parse_args(argv)
    report = fit_self_energy_start(args.recipe, args.source, args.output)
    report.pop("fit")
    print(json.dumps(report, indent=1))
    print("wrote", args.output)


if __name__ == "__main__":
    main()
