"""Choosing frames to label: the most uncertain, and unlike each other.

:func:`select` keeps the candidates whose score (largest per-atom force uncertainty, eV/Å)
reaches ``min_score``, takes the ``pool_factor * count`` highest-scoring ones and picks
``count`` of them by farthest-point sampling on a structural fingerprint, starting from the
most uncertain: a run that sits in one uncertain state for many frames gives one frame, not
ten copies of it. The fingerprint is a smoothed histogram of interatomic distances per
element pair (within ``cutoff``, per atom), plus the composition; cheap and rotation- and
permutation-invariant.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list


def fingerprint(atoms: Atoms, elements: list[int], cutoff: float = 5.0, bins: int = 24) -> np.ndarray:
    """Distance histogram per element pair (Gaussian-smoothed, per atom) and composition."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    centres = np.linspace(0.0, cutoff, bins)
    width = cutoff / bins
    index = {z: k for k, z in enumerate(elements)}
    pairs = len(elements) ** 2
    hist = np.zeros((pairs, bins))
    if len(d):
        weights = np.exp(-0.5 * ((d[:, None] - centres[None, :]) / width) ** 2)
        slot = np.array([index[a] * len(elements) + index[b] for a, b in zip(atoms.numbers[i], atoms.numbers[j])])
        np.add.at(hist, slot, weights)
    composition = np.array([np.mean(atoms.numbers == z) for z in elements])
    return np.concatenate([hist.ravel() / max(len(atoms), 1), composition])


def farthest_points(features: np.ndarray, count: int) -> list[int]:
    """``count`` row indices: row 0 first, then each time the row farthest from those chosen."""
    chosen = [0]
    distance = np.linalg.norm(features - features[0], axis=1)
    while len(chosen) < min(count, len(features)):
        k = int(np.argmax(distance))
        if distance[k] <= 0:  # only duplicates left
            break
        chosen.append(k)
        distance = np.minimum(distance, np.linalg.norm(features - features[k], axis=1))
    return chosen


def select(frames: list[Atoms], scores: np.ndarray, count: int, min_score: float = 0.0,
           pool_factor: int = 4, cutoff: float = 5.0) -> list[int]:
    """Indices into ``frames`` of up to ``count`` uncertain, diverse frames (most uncertain first)."""
    scores = np.asarray(scores, dtype=float)
    order = [int(k) for k in np.argsort(-scores, kind="stable") if scores[k] >= min_score]
    pool = order[: max(count * pool_factor, count)]
    if not pool:
        return []
    elements = sorted({int(z) for k in pool for z in frames[k].numbers})
    features = np.stack([fingerprint(frames[k], elements, cutoff) for k in pool])
    return [pool[k] for k in farthest_points(features, count)]
