"""Small example systems used by examples, tests and the reference-data generators."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import molecule


def water_box(n: int = 2, spacing: float = 3.1, seed: int = 0) -> Atoms:
    """n³ randomly oriented waters on a cubic grid; 3.1 Å spacing is about 1 g/cm³.

    ``water_box()`` is 8 waters in a 6.2 Å cell, ``water_box(3)`` 27 waters in 9.3 Å.
    """
    rng = np.random.default_rng(seed)
    atoms = Atoms(cell=np.eye(3) * spacing * n, pbc=True)
    for index in np.ndindex(n, n, n):
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        water.translate((np.array(index) + 0.5) * spacing)
        atoms += water
    return atoms
