"""Rotation augmentation: every structure of a training batch turned by its own random rotation.

For a backbone that is not rotation-equivariant (``cartesian-mpnn``) the data must teach the
symmetry: with ``trainer: {augment_rotations: true}`` each training batch's structures are
rotated (and, half of the time, reflected: a random element of O(3), as the energy of a real
system is invariant under both) before the model sees them. Positions and cells turn as
row vectors, ``r → r Rᵀ``; labels follow what they are: vectors (forces, dipole) as
``f Rᵀ``, the stress as ``R σ Rᵀ``, scalars (energy, charges) not at all. The neighbour graph
holds integer cell shifts, so it stays valid. Validation and test batches are never rotated,
and nothing of the augmentation is in the model file.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: labels that turn as vectors, per atom and per structure, and as rank-2 tensors (per structure)
ATOM_VECTORS = ("forces",)
STRUCTURE_VECTORS = ("dipole",)
STRUCTURE_TENSORS = ("stress",)


def random_orthogonal(count: int, dtype=torch.float64, reflections: bool = True) -> Tensor:
    """``count`` random 3×3 matrices, uniform (Haar) over SO(3), or O(3) with ``reflections``."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # Haar over O(3)
    if not reflections:
        q = q * torch.linalg.det(q)[:, None, None]  # -q for the reflections: a proper rotation
    return q.to(dtype)


def rotate_batch(batch: dict, rotations: Tensor) -> dict:
    """A copy of a collated ``batch`` with structure b turned by ``rotations[b]`` [B,3,3].

    Vector labels and the stress are turned with their structure; the input batch is unchanged.
    """
    per_atom = rotations[batch["batch"]]
    out = dict(batch)
    out["positions"] = _turn(batch["positions"], per_atom)
    out["cell"] = torch.bmm(batch["cell"], rotations.to(batch["cell"].dtype).transpose(1, 2))
    labels = dict(batch["labels"])
    for name, value in batch["labels"].items():
        if name in ATOM_VECTORS:
            labels[name] = _turn(value, per_atom)
        elif name in STRUCTURE_VECTORS:
            labels[name] = _turn(value, rotations)
        elif name in STRUCTURE_TENSORS:
            rot = rotations.to(value.dtype)
            labels[name] = rot @ value @ rot.transpose(1, 2)
    out["labels"] = labels
    return out


def _turn(vectors: Tensor, rotations: Tensor) -> Tensor:
    """Row vectors [M,3] times the transposes of their rotations [M,3,3]: v Rᵀ."""
    return torch.bmm(rotations.to(vectors.dtype), vectors.unsqueeze(2)).squeeze(2)
