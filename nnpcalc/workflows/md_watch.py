"""What stops an MD run: non-finite numbers, exploding forces or temperature, fused atoms.

:func:`why_stop` is asked after every step (by both engines); a reason stops the run with
"MD stopped at step N ...". Fused atoms are two atoms closer than ``fused_distance_factor`` ×
the sum of their covalent radii (ASE's ``covalent_radii``): a model without a repulsive wall
lets atoms merge while forces stay finite and the temperature sane, so nothing else would
notice. After a model call the calculator knows its graph's shortest pair (the runtime computes
every pair length for its overlap check): when that pair is longer than any fused limit, nothing
more is done. Otherwise the pairs come from the runtime's own neighbour list (``nnpcalc.neighbors``: vesin,
O(N)) at the largest fused distance of the elements present (≤ 1.5 Å for H, C, N, O, Cu), so
the list is nearly empty and the check costs far less than the step; no O(N²) matrix.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols, covalent_radii


def why_stop(atoms: Atoms, settings) -> str | None:
    """Why the current state is beyond sane, or None. ``atoms`` carries its calculator's results."""
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    if not (np.isfinite(forces).all() and np.isfinite(atoms.positions).all() and np.isfinite(energy)):
        return "positions, energy or forces are NaN or infinite"
    fused = fused_atoms(atoms, settings.fused_distance_factor)  # the cause, when forces then explode
    if fused:
        return fused
    largest = float(np.linalg.norm(forces, axis=1).max(initial=0.0))
    if largest > settings.max_force:
        return f"the largest force is {largest:.3g} eV/Å (limit {settings.max_force:g} eV/Å)"
    limit = settings.max_temperature_factor * max(settings.temperature_K, 100.0)
    temperature = atoms.get_temperature()
    if temperature > limit:
        return f"the temperature is {temperature:.4g} K (limit {limit:.4g} K)"
    return None


def fused_atoms(atoms: Atoms, factor: float) -> str | None:
    """A sentence naming the closest fused pair, or None (also when ``factor`` is 0)."""
    if factor <= 0 or _none_fused(atoms, factor):
        return None
    pair = closest_fused_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, factor)
    if pair is None:
        return None
    i, j, distance, limit = pair
    a, b = chemical_symbols[atoms.numbers[i]], chemical_symbols[atoms.numbers[j]]
    return (f"atoms {i} ({a}) and {j} ({b}) are {distance:.3g} Å apart, closer than {factor:g} × their covalent "
            f"radii ({limit:.3g} Å): the model lets atoms fuse (it has no repulsive wall here); use a model "
            "trained on compressed geometries, or lower fused_distance_factor (--fused-distance-factor, 0: off) "
            "if this is intended")


def _none_fused(atoms: Atoms, factor: float) -> bool:
    """True when the model call that gave ``atoms`` its results already shows no pair can be fused:
    its graph's shortest pair (``NNPCalculator.closest_pair``, every pair within the model's
    cutoff) is at least ``factor`` × twice the largest covalent radius present. False: look."""
    calc = atoms.calc
    closest = getattr(calc, "closest_pair", None)
    if closest is None or calc.atoms is None or calc.check_state(atoms):
        return False  # no call, or one on another geometry
    reach = factor * 2.0 * float(covalent_radii[atoms.numbers].max())
    return closest[2] >= reach and calc.model.cutoff >= reach


def closest_fused_pair(numbers, positions, cell, pbc, factor: float):
    """(i, j, distance, limit) of the pair deepest below ``factor`` × (r_i + r_j), or None."""
    pbc = np.asarray(pbc, dtype=bool)
    if factor <= 0 or (len(numbers) < 2 and not pbc.any()):
        return None
    radii = covalent_radii[np.asarray(numbers)]
    i, j, d = _pairs(np.asarray(positions, dtype=float), np.asarray(cell, dtype=float), pbc,
                     float(factor * 2 * radii.max()))
    if len(d) == 0:
        return None
    limits = factor * (radii[i] + radii[j])
    k = int(np.argmin(d / limits))
    return (int(i[k]), int(j[k]), float(d[k]), float(limits[k])) if d[k] < limits[k] else None


def _pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """Pairs (i, j, distance) closer than ``cutoff``, from the runtime's neighbour list."""
    import torch

    from ..neighbors import neighbor_graph

    pos = torch.from_numpy(positions)
    edges, shifts = neighbor_graph(pos, torch.from_numpy(cell)[None], torch.from_numpy(pbc)[None],
                                   torch.zeros(len(positions), dtype=torch.long), cutoff)
    i, j = edges[0].numpy(), edges[1].numpy()
    vectors = positions[j] - positions[i] + shifts.numpy() @ cell
    return i, j, np.linalg.norm(vectors, axis=1)
