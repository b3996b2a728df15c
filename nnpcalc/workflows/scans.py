"""Holes in a model, found the way a user would meet them: atoms pushed together, and an MD run.

* :func:`dimer_curve` and :func:`bond_curve`: energies along a dimer separation from 0.5 Å, a
  bond compressed to half its length, or a whole cell compressed (:func:`compression_curve`).
  :func:`wall_check` turns a curve into a pass/fail row: below the curve's minimum the energy
  must rise monotonically towards short distances and by at least ``min_rise`` eV.
* :func:`fused_md_check`: Langevin MD that watches the closest pair (in units of the sum of
  covalent radii, as ``nnp md`` does) and fails when two atoms fuse.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ..testing import Check
from ..units import FS_TO_ASE_TIME

#: dimer scans start here (Å)
SCAN_START = 0.5
#: the least energy (eV) the wall must climb from the curve's minimum to its shortest point
MIN_RISE = 1.0


def _energy(calc, atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def dimer_curve(calc, a: str, b: str, distances) -> np.ndarray:
    """Energies (eV) of the isolated dimer ``a``–``b`` at ``distances`` (Å); NaN where the
    calculator gives up (a reference SCF that does not converge)."""
    from ase.calculators.calculator import CalculationFailed

    out = []
    for d in distances:
        try:
            out.append(_energy(calc, Atoms(a + b, [[0, 0, 0], [d, 0, 0]])))
        except CalculationFailed:
            out.append(np.nan)
    return np.array(out)


def bond_curve(calc, atoms: Atoms, i: int, j: int, scales) -> np.ndarray:
    """Energies with bond i–j set to ``scale`` × its length (atom j moves, nothing else)."""
    from ..training.sampling import bond_scan

    return np.array([_energy(calc, a) for a in bond_scan(atoms, i, j, scales)])


def compression_curve(calc, atoms: Atoms, scales) -> np.ndarray:
    """Energies of ``atoms`` (a periodic cell) uniformly scaled by ``scales``."""
    out = []
    for s in scales:
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * s, scale_atoms=True)
        out.append(_energy(calc, scaled))
    return np.array(out)


def wall_check(name: str, coordinates, energies, min_rise: float = MIN_RISE) -> Check:
    """The wall below the minimum of ``energies`` (``coordinates`` increasing): the error is the
    energy (eV) missing from a monotonic rise of at least ``min_rise`` towards the start."""
    energies = np.asarray(energies, dtype=float)
    lowest = int(np.argmin(energies))
    inward = energies[:lowest + 1]
    drops = np.diff(inward)  # must all be negative: energy falls as the coordinate grows
    rise = float(inward[0] - inward[-1])
    error = float(max(drops.max(initial=0.0), 0.0) + max(min_rise - rise, 0.0))
    return Check(f"{name}: minimum at {coordinates[lowest]:.3g}, wall {rise:.3g} eV (error: eV short of a "
                 f"monotonic ≥ {min_rise:g} eV rise)", error, 0.0)


def dimer_checks(calc, elements: list[str], points: int = 24, end: float = 4.0) -> list[Check]:
    """One wall check per pair of ``elements``, from :data:`SCAN_START` to ``end`` Å."""
    distances = np.linspace(SCAN_START, end, points)
    pairs = [(a, b) for k, a in enumerate(elements) for b in elements[k:]]
    return [wall_check(f"dimer {a}-{b} (Å)", distances, dimer_curve(calc, a, b, distances)) for a, b in pairs]


def bond_checks(calc, atoms: Atoms, points: int = 8) -> list[Check]:
    """Molecules: each bond compressed from its length to half of it. Cells: the whole cell
    compressed to 60 % of its size."""
    from ..training.sampling import bonds

    if atoms.pbc.any():
        scales = np.linspace(0.6, 1.0, points)
        return [wall_check("cell compressed (scale)", scales, compression_curve(calc, atoms, scales))]
    scales = np.linspace(0.5, 1.0, points)
    symbols = atoms.get_chemical_symbols()
    return [wall_check(f"bond {symbols[i]}{i}-{symbols[j]}{j} compressed (× length)", scales,
                       bond_curve(calc, atoms, i, j, scales)) for i, j in bonds(atoms)]


def fused_md_check(calc, atoms: Atoms, steps: int = 200, temperature_K: float = 300.0, timestep_fs: float = 0.5,
                   factor: float = 0.5, seed: int = 0) -> Check:
    """Langevin MD; the error is the number of steps with two atoms closer than ``factor`` × the
    sum of their covalent radii (the closest approach is in the name)."""
    from ase.md.langevin import Langevin

    from .md import thermalize

    moving = atoms.copy()
    moving.calc = calc
    rng = np.random.default_rng(seed)
    thermalize(moving, temperature_K, rng)
    dyn = Langevin(moving, timestep_fs * FS_TO_ASE_TIME, temperature_K=temperature_K, friction=0.01 / FS_TO_ASE_TIME,
                   rng=rng, fixcm=False)
    fused, closest = 0, np.inf
    for _ in range(steps):
        dyn.run(1)
        ratio = closest_ratio(moving)
        closest, fused = min(closest, ratio), fused + (ratio < factor)
    return Check(f"MD {steps} × {timestep_fs:g} fs at {temperature_K:g} K: closest pair {closest:.2f} × covalent "
                 f"radii (steps with a pair below {factor:g})", float(fused), 0.0)


def closest_ratio(atoms: Atoms) -> float:
    """min over pairs of distance / (r_i + r_j) (covalent radii), 1 when no pair is closer."""
    from .md_watch import closest_fused_pair

    pair = closest_fused_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, 1.0)
    return 1.0 if pair is None else float(pair[2] / pair[3])


def water_geometry(atoms: Atoms) -> tuple[float, float]:
    """(closest O–O distance, longest O–H bond) in Å: each O's two nearest H are its bonds
    (minimum image under PBC). Intact liquid water: O–O > 2.3 Å, O–H < 1.25 Å."""
    from ase.geometry import get_distances

    symbols = np.array(atoms.get_chemical_symbols())
    oxygens, hydrogens = atoms.positions[symbols == "O"], atoms.positions[symbols == "H"]
    cell, pbc = atoms.cell, atoms.pbc
    _, oo = get_distances(oxygens, cell=cell, pbc=pbc)
    _, oh = get_distances(oxygens, hydrogens, cell=cell, pbc=pbc)
    closest_oo = float((oo + 1e3 * np.eye(len(oxygens))).min())
    longest_oh = float(np.sort(oh, axis=1)[:, :2].max())
    return closest_oo, longest_oh


def water_md(calc, atoms: Atoms, steps: int, temperature_K: float = 300.0, timestep_fs: float = 0.5,
             seed: int = 0, every: int = 10) -> dict:
    """Langevin MD of liquid water: the closest O–O and longest O–H over the run (every
    ``every`` steps) and the step at which a molecule first fused or broke (None: never)."""
    from ase.md.langevin import Langevin

    from .md import thermalize

    moving = atoms.copy()
    moving.calc = calc
    rng = np.random.default_rng(seed)
    thermalize(moving, temperature_K, rng)
    dyn = Langevin(moving, timestep_fs * FS_TO_ASE_TIME, temperature_K=temperature_K,
                   friction=0.01 / FS_TO_ASE_TIME, rng=rng, fixcm=False)
    closest, longest, failed = np.inf, 0.0, None
    for step in range(every, steps + 1, every):
        dyn.run(every)
        oo, oh = water_geometry(moving)
        closest, longest = min(closest, oo), max(longest, oh)
        if failed is None and (oo < 2.0 or oh > 1.5):
            failed = step
    return {"closest_OO": closest, "longest_OH": longest, "failed_at_step": failed,
            "time_ps": steps * timestep_fs / 1000.0}
