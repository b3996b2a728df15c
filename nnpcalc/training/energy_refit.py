"""Per-element energy zero of a checkpoint, refitted on the recipe's *train* split.

A fine-tuning leg can leave every energy of an element shifted by one constant (the spread
unchanged): the metals model's leg 3, which fixed the isolated atoms, moved each element's
condensed energies by -2.4..-6.1 meV/atom. So, like the atomref fit before a training, set::

    atomref[Z] += mean over the train frames of element Z of (E_ref − E_model) / N

on single-element frames only, of the chosen subsets (and, optionally, one data file). Forces,
stresses and every energy difference at fixed composition are unchanged; only the output
checkpoint is written (the model is evaluated from a temporary file, deleted afterwards). Step 4
of ``models/metals-emt.yaml`` (the shipped metals model) is exactly this::

    python -m nnpcalc.training.energy_refit RECIPE CKPT_IN CKPT_OUT [--subsets S ...] [--data-file F]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

#: the energy head's per-element energy zero in the checkpoint's state_dict: shape (fidelities, max_z + 1)
ATOMREF_KEY = "potential.heads.0.atomref"


def refit_frames(recipe: dict, subsets=None, data_file: str | None = None) -> list:
    """The recipe's train-split frames of ``subsets`` (all when None) from ``data_file`` (all when None)."""
    from .data import recipe_frames

    return [f for f in recipe_frames(recipe, "train")
            if (subsets is None or f.info.get("subset") in subsets)
            and (data_file is None or f.info.get("data_file") == data_file)]


def residuals(model_path, frames, energy_key: str = "ref_energy") -> dict[int, list[float]]:
    """{Z: [(E_ref − E_model)/N per single-element frame]}: frames with several elements are skipped."""
    from ..calculator import NNPCalculator
    from ..runtime import Model

    calc = NNPCalculator(Model(str(model_path), artifact="torchscript"))  # the file itself; no cache read or written
    out: dict[int, list[float]] = {}
    for f in frames:
        numbers = set(f.numbers.tolist())
        if len(numbers) != 1:
            continue
        a = f.copy()
        a.calc = calc
        out.setdefault(numbers.pop(), []).append((f.info[energy_key] - a.get_potential_energy()) / len(f))
    return out


def refit_energy_zero(recipe, checkpoint, output, subsets=None, data_file: str | None = None,
                      frames=None) -> dict[str, dict]:
    """Write ``output``: ``checkpoint`` with atomref[Z] shifted by the mean per-atom energy residual
    of element Z (module docstring). ``recipe``: a path or dict (data, seed, split, energy label);
    ``frames``: use these instead of the recipe's train split (tests). Returns
    {symbol: {"frames", "shift_eV", "sd_eV"}}.
    """
    import torch
    from ase.data import chemical_symbols

    from ..nn.build import export
    from .checkpoint import read_checkpoint
    from .module import PotentialModule
    from .train import load_config

    config = load_config(recipe)
    if frames is None:
        frames = refit_frames(config, subsets, data_file)
    energy_key = config["data"].get("labels", {}).get("energy", "ref_energy")
    raw = read_checkpoint(checkpoint)  # weights only: no code from the file runs
    if ATOMREF_KEY not in raw.get("state_dict", {}):
        raise ValueError(f"{checkpoint} has no {ATOMREF_KEY} (not an nnpcalc checkpoint with an energy head)")
    module = PotentialModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:  # the model file `nnp export` writes (float32)
        probe = export(module.potential, module.architecture, Path(tmp) / "probe.pt")
        errors = residuals(probe, frames, energy_key)
    if not errors:
        raise ValueError("no single-element train frames to refit on (check --subsets / --data-file)")
    atomref = raw["state_dict"][ATOMREF_KEY]
    report = {}
    for z, values in sorted(errors.items(), key=lambda kv: chemical_symbols[kv[0]]):
        shift = float(np.mean(values))
        atomref[0, z] += shift
        report[chemical_symbols[z]] = {"frames": len(values), "shift_eV": shift, "sd_eV": float(np.std(values))}
    torch.save(raw, str(output))
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnpcalc.training.energy_refit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="training recipe (YAML): its data, seed and split give the train frames")
    parser.add_argument("checkpoint", help="nnpcalc training checkpoint (.ckpt) to refit")
    parser.add_argument("output", help="checkpoint to write (export it with `nnp export`)")
    parser.add_argument("--subsets", nargs="+", default=None, help="info['subset'] values to use (default: all)")
    parser.add_argument("--data-file", default=None, help="use only frames of this data file (as the recipe names it)")
    args = parser.parse_args(argv)
    report = refit_energy_zero(args.recipe, args.checkpoint, args.output, args.subsets, args.data_file)
    for symbol, r in report.items():
        print(f"{symbol}: {r['frames']} train frames, atomref += {1000 * r['shift_eV']:+.2f} meV "
              f"(sd {1000 * r['sd_eV']:.2f})")
    print("wrote", args.output)


if __name__ == "__main__":
    main()
