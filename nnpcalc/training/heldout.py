"""What a model card reports: held-out errors per data subset, and properties against the reference.

``subset_errors`` re-reads a recipe's data and split (same seed, same grouping) and scores a
model file on the test frames, per ``info["subset"]``. ``frequency_errors`` compares harmonic
frequencies of small molecules (each relaxed with its own method) with GFN2-xTB's;
``metal_properties`` compares surface, vacancy and cohesive energies with EMT's::

    python -m nnpcalc.training.heldout models/hcno-gfn2.yaml models/hcno-gfn2.pt
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from ase import Atoms

#: ASE's J/m² from eV/Å²
EV_PER_A2_TO_J_PER_M2 = 16.021766


def test_frames(config_path) -> list[Atoms]:
    """The test split of a training recipe (as ``nnp train`` draws it)."""
    from .data import recipe_frames
    from .train import load_config

    return recipe_frames(load_config(config_path), "test")


def subset_errors(model, frames: list[Atoms]) -> dict[str, dict[str, float]]:
    """Per subset: frames, energy MAE (meV/atom), force MAE/RMSE (eV/Å), charge MAE (e)."""
    from ..runtime import Model

    model = model if isinstance(model, Model) else Model(model, dtype="float64")
    sums: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for frame in frames:
        (out,) = model.compute([frame], total_charge=[frame.info.get("charge", 0.0)], stress=False)
        s = sums[frame.info.get("subset", "all")]
        s["energy"].append(abs(out["energy"] - frame.info["ref_energy"]) / len(frame) * 1e3)
        s["forces"].append((out["forces"] - frame.arrays["ref_forces"]).ravel())
        if "charges" in out and "ref_charges" in frame.arrays:
            s["charges"].append(np.abs(out["charges"] - frame.arrays["ref_charges"]))
    return {name: _summary(s) for name, s in sorted(sums.items())}


def _summary(s: dict) -> dict[str, float]:
    forces = np.concatenate(s["forces"])
    row = {"frames": len(s["energy"]), "energy_mae_meV_atom": float(np.mean(s["energy"])),
           "forces_mae": float(np.abs(forces).mean()), "forces_rmse": float(np.sqrt((forces**2).mean()))}
    if s["charges"]:
        row["charges_mae"] = float(np.concatenate(s["charges"]).mean())
    return row


def frequencies(calc, atoms: Atoms) -> np.ndarray:
    """Harmonic frequencies (cm⁻¹, real modes above 50 cm⁻¹) at ``calc``'s own minimum."""
    import tempfile

    from ase.optimize import BFGS
    from ase.vibrations import Vibrations

    atoms = atoms.copy()
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=500)
    with tempfile.TemporaryDirectory() as tmp:
        vib = Vibrations(atoms, name=f"{tmp}/vib", delta=0.005)
        vib.run()
        energies = vib.get_frequencies()
    real = np.real(energies[np.isreal(energies) | (np.abs(np.imag(energies)) < 1e-6)])
    return np.sort(real[real > 50.0])


def frequency_errors(calc, names=("H2O", "NH3", "CH4", "CH3OH", "H2CO", "CH3CH2OH")) -> dict[str, float]:
    """Mean |Δν| (cm⁻¹) per molecule against GFN2-xTB, modes matched by order."""
    from ase.build import molecule

    from .reference import calculator

    out = {}
    for name in names:
        model, ref = frequencies(calc, molecule(name)), frequencies(calculator("GFN2-xTB"), molecule(name))
        n = min(len(model), len(ref))
        out[name] = float(np.abs(model[-n:] - ref[-n:]).mean())
    return out


def _relaxed_energy(calc, atoms: Atoms, fmax: float = 1e-3) -> float:
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=300)
    return float(atoms.get_potential_energy())


def lattice_constant(calc, element: str) -> float:
    """fcc lattice constant (Å) from an equation of state fitted over ±4 % of ASE's value."""
    from ase.build import bulk
    from ase.eos import EquationOfState

    guess = bulk(element, "fcc").cell.cellpar()[0] * np.sqrt(2)
    volumes, energies = [], []
    for a in guess * np.linspace(0.96, 1.04, 9):
        cell = bulk(element, "fcc", a=a)
        cell.calc = calc
        volumes.append(cell.get_volume())
        energies.append(cell.get_potential_energy())
    volume, _, _ = EquationOfState(volumes, energies).fit()
    return float((4 * volume) ** (1 / 3))


def metal_properties(calc, element: str) -> dict[str, float]:
    """Lattice constant (Å), fcc(111) surface energy (J/m², unrelaxed), relaxed vacancy formation
    and cohesive energies (eV), all at the calculator's own lattice constant."""
    from ase.build import bulk, fcc111

    unit = bulk(element, "fcc", a=lattice_constant(calc, element), cubic=True)
    unit.calc = calc
    per_atom = unit.get_potential_energy() / len(unit)
    slab = fcc111(element, (1, 1, 6), a=unit.cell[0, 0], vacuum=8.0, periodic=True)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    slab.calc = calc
    surface = (slab.get_potential_energy() - len(slab) * per_atom) / (2 * area) * EV_PER_A2_TO_J_PER_M2
    cell = unit.repeat((3, 3, 3))
    del cell[0]
    vacancy = _relaxed_energy(calc, cell) - len(cell) * per_atom
    atom = Atoms(element)
    atom.calc = calc
    return {"a0": float(unit.cell[0, 0]), "surface_J_m2": float(surface), "vacancy_eV": float(vacancy),
            "cohesive_eV": float(atom.get_potential_energy() - per_atom)}


def main(argv=None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Held-out errors per subset of a recipe's test split.")
    parser.add_argument("config")
    parser.add_argument("model")
    args = parser.parse_args(argv)
    print(json.dumps(subset_errors(args.model, test_frames(args.config)), indent=1))


if __name__ == "__main__":
    main()
