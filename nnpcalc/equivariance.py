"""How far a model is from rotation invariance: energy spread and force error under random rotations.

An equivariant backbone (TensorNet, ET, GN) gives zero up to rounding; a non-equivariant one
(``cartesian-mpnn``) learns the symmetry from rotated data only approximately, and this is
the number to report beside its accuracy. For each structure and each of ``rotations`` random
proper rotations R (positions and cell turned together):

- ``energy_spread``: eV/atom, the mean over structures of (max − min) of the energy over the
  original and rotated copies, per atom;
- ``forces_rms``: eV/Å, the RMS of F(R·x) − R·F(x) over every atom, component and rotation;
- ``forces_relative``: ``forces_rms`` over the RMS force of the unrotated structures.

Works with any ASE calculator (``nnpcalc.NNPCalculator``, a reference code); no training needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms


@dataclass
class EquivarianceError:
    structures: int
    rotations: int
    energy_spread: float  # eV/atom
    forces_rms: float  # eV/Å
    forces_relative: float

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"equivariance error over {self.structures} structures x {self.rotations} rotations: "
                f"energy spread {self.energy_spread * 1e3:.3g} meV/atom, forces RMS {self.forces_rms:.3g} eV/A "
                f"({100 * self.forces_relative:.3g} % of the RMS force)")


def random_rotations(count: int, seed: int = 0) -> np.ndarray:
    """``count`` Haar-random proper rotations [count,3,3]."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q * np.linalg.det(q)[:, None, None]


def rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with positions and cell turned by ``rotation`` (row vectors: r Rᵀ)."""
    out = atoms.copy()
    out.positions = atoms.positions @ rotation.T
    out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return out


def equivariance_error(calc, structures, rotations: int = 8, seed: int = 0) -> EquivarianceError:
    """The energy spread and force error of ``calc`` over ``rotations`` random rotations of each of
    ``structures`` (an Atoms or a list of them); see the module docstring for the definitions."""
    structures = [structures] if isinstance(structures, Atoms) else list(structures)
    turns = random_rotations(rotations, seed)
    spreads, force_sq, reference_sq, count = [], 0.0, 0.0, 0
    for atoms in structures:
        energy, forces = _energy_forces(calc, atoms)
        energies = [energy]
        reference_sq += float((forces**2).sum())
        for rot in turns:
            e, f = _energy_forces(calc, rotated(atoms, rot))
            energies.append(e)
            force_sq += float(((f - forces @ rot.T) ** 2).sum())
        spreads.append((max(energies) - min(energies)) / len(atoms))
        count += forces.size
    forces_rms = (force_sq / max(count * rotations, 1)) ** 0.5
    reference = (reference_sq / max(count, 1)) ** 0.5
    return EquivarianceError(len(structures), rotations, float(np.mean(spreads)), forces_rms,
                             forces_rms / reference if reference > 0 else float("nan"))


def rotation_equivariant(backbone: str) -> bool:
    """Whether the backbone named ``backbone`` is rotation-equivariant by construction."""
    from .nn.build import backbone_class

    return bool(getattr(backbone_class(backbone), "rotation_equivariant", True))


def on_held_out_frames(model_path, config: dict, frames: int = 12, rotations: int = 8) -> dict:
    """The equivariance error of a model file on up to ``frames`` test frames of its training
    ``config`` (validation frames when there is no test split): what the model card reports."""
    from .calculator import NNPCalculator
    from .training.data import DataSpec, read_frames, split_indices

    spec = DataSpec(**config["data"])
    every = read_frames(spec, config["seed"])
    parts = split_indices(every, spec, config["seed"])
    split = "test" if parts["test"] else "val" if parts["val"] else "train"
    rng = np.random.default_rng(0)
    chosen = rng.choice(parts[split], size=min(frames, len(parts[split])), replace=False)
    error = equivariance_error(NNPCalculator(str(model_path)), [every[i] for i in chosen], rotations)
    return error.to_dict() | {"split": split}


def _energy_forces(calc, atoms: Atoms) -> tuple[float, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy()), np.asarray(atoms.get_forces(), dtype=float)
