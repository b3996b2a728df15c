"""Exploring with a model: short Langevin MD and relaxations that collect candidate frames.

Every start structure runs Langevin MD at each temperature (and, optionally, a FIRE
relaxation); a frame is kept every ``sample_every`` steps. A run stops early when its state is
beyond sane (non-finite numbers, a force above ``max_force``, two atoms closer than
``fused_factor`` × their covalent radii, or a pair of ``min_distances``, e.g. O–O under 2 Å
for fused water) or its energy uncertainty leaves the validated range
(``stop_factor`` × the largest validation sigma); those stops are the model's failures, and
the frame that stopped the run is kept as a candidate. All candidates are then scored in
batches with ``forces_uncertainty`` (``info["max_forces_uncertainty"]``, eV/Å).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers, covalent_radii
from ase.neighborlist import neighbor_list

from ..charge import total_charge
from ..errors import OptionError
from .common import progress_bar
from .uncertainty_watch import require_uncertainty


@dataclass
class ExploreSettings:
    temperatures_K: list = field(default_factory=lambda: [300.0])
    steps: int = 200  #: MD steps per run
    timestep_fs: float = 2.0
    friction_per_fs: float = 0.02
    sample_every: int = 10  #: steps between kept frames
    relax: bool = True  #: also a FIRE relaxation from every start
    relax_steps: int = 100
    max_force: float = 50.0  #: eV/Å
    fused_factor: float = 0.5
    stop_factor: float = 20.0  #: 0: runs never stop on uncertainty
    #: Å per element pair, e.g. ``{"O-O": 2.0}``: closer is a failure (fused water, which
    #: ``fused_factor`` × covalent radii, 0.66 Å for O–O, does not see)
    min_distances: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.steps < 1 or self.sample_every < 1 or self.timestep_fs <= 0:
            raise OptionError(f"explore: steps and sample_every must be >= 1 and timestep_fs > 0, got "
                              f"{self.steps}, {self.sample_every}, {self.timestep_fs}")
        for pair, distance in self.min_distances.items():
            symbols = str(pair).split("-")
            if len(symbols) != 2 or any(s not in atomic_numbers for s in symbols) or not float(distance) > 0:
                raise OptionError(f"explore: min_distances takes 'A-B': distance in Å > 0 (e.g. 'O-O': 2.0), "
                                  f"got {pair!r}: {distance!r}")


def explore(model, starts: list[Atoms], settings: ExploreSettings, seed: int = 0,
            progress: bool = False) -> tuple[list[Atoms], dict]:
    """Candidate frames (scored) and statistics: runs, how many stopped and why."""
    require_uncertainty(model)
    rng = np.random.default_rng(seed)
    candidates, reasons, runs = [], [], 0
    with progress_bar(len(starts) * len(settings.temperatures_K), "explore", progress, unit="run") as bar:
        for index, start in enumerate(starts):
            for temperature in settings.temperatures_K:
                frames, reason = run_md(model, start, float(temperature), settings, rng)
                _tag(frames, start, index, f"md-{temperature:g}K")
                candidates += frames
                runs += 1
                if reason:
                    reasons.append(f"start {index} at {temperature:g} K: {reason}")
                bar.update(1)
            if settings.relax:
                frames = run_relax(model, start, settings)
                candidates += _tag(frames, start, index, "relax")
    score(model, candidates)
    sigma = [c.info["max_forces_uncertainty"] for c in candidates]
    stats = {"runs": runs, "stopped": len(reasons), "reasons": reasons, "candidates": len(candidates),
             "max_forces_uncertainty_median": float(np.median(sigma)) if sigma else 0.0,
             "max_forces_uncertainty_max": float(np.max(sigma)) if sigma else 0.0}
    return candidates, stats


def _tag(frames: list[Atoms], start: Atoms, index: int, how: str) -> list[Atoms]:
    for frame in frames:
        frame.info.update(source=f"start-{index}-{how}", charge=total_charge(start))
        if "subset" in start.info:
            frame.info["subset"] = start.info["subset"]
    return frames


def run_md(model, start: Atoms, temperature_K: float, settings: ExploreSettings, rng) -> tuple[list[Atoms], str | None]:
    """Langevin MD from ``start``: kept frames and why it stopped early (None: it ran to the end)."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from ..calculator import NNPCalculator

    atoms = start.copy()
    atoms.calc = NNPCalculator(model, warn_uncertainty=0)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(atoms, settings.timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=settings.friction_per_fs / units.fs, rng=rng)
    frames = []
    for step in range(settings.sample_every, settings.steps + 1, settings.sample_every):
        dyn.run(settings.sample_every)
        frames.append(bare(atoms, step=step, temperature_K=temperature_K))
        reason = why_stop(atoms, model.metadata, settings)
        if reason:
            return frames, f"step {step}: {reason}"
    return frames, None


def run_relax(model, start: Atoms, settings: ExploreSettings) -> list[Atoms]:
    """Frames along a FIRE relaxation of ``start`` (every ``sample_every``-th step, and the last)."""
    from ase.optimize import FIRE

    from ..calculator import NNPCalculator

    atoms = start.copy()
    atoms.calc = NNPCalculator(model, warn_uncertainty=0)
    frames = []
    optimizer = FIRE(atoms, logfile=None)
    for step, _ in enumerate(optimizer.irun(fmax=0.05, steps=settings.relax_steps)):
        if step % settings.sample_every == 0:
            frames.append(bare(atoms, step=step))
        if why_stop(atoms, model.metadata, settings):
            break
    return frames + [bare(atoms, step=optimizer.nsteps)]


def bare(atoms: Atoms, **info) -> Atoms:
    """A copy without calculator or velocities: a frame to score and label."""
    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(info)
    return frame


def why_stop(atoms: Atoms, metadata: dict, settings: ExploreSettings) -> str | None:
    """Why a run must stop here (blown up, fused atoms, far outside the validated range), or None."""
    from ..nn.uncertainty import far_outside

    forces = atoms.get_forces()
    if not (np.isfinite(forces).all() and np.isfinite(atoms.positions).all()):
        return "non-finite positions or forces"
    largest = float(np.linalg.norm(forces, axis=1).max(initial=0.0))
    if largest > settings.max_force:
        return f"force {largest:.3g} eV/Å > {settings.max_force:g}"
    fused = closest_pair_ratio(atoms)
    if fused < settings.fused_factor:
        return f"two atoms at {fused:.2f} × their covalent radii (fused)"
    close = too_close(atoms, settings.min_distances)
    if close:
        return close
    if settings.stop_factor > 0:
        return far_outside(atoms.calc.results, metadata, len(atoms), settings.stop_factor)
    return None


def too_close(atoms: Atoms, min_distances: dict) -> str | None:
    """The first element pair of ``min_distances`` ("A-B": Å) closer than allowed, or None."""
    if not min_distances:
        return None
    i, j, d = neighbor_list("ijd", atoms, max(float(v) for v in min_distances.values()))
    for pair, limit in min_distances.items():
        a, b = (atomic_numbers[s] for s in pair.split("-"))
        mask = ((atoms.numbers[i] == a) & (atoms.numbers[j] == b)) & (d < float(limit))
        if mask.any():
            return f"{pair} at {d[mask].min():.2f} Å < {float(limit):g} Å (min_distances)"
    return None


def closest_pair_ratio(atoms: Atoms) -> float:
    """The smallest distance / (r_i + r_j) over pairs (covalent radii); inf for no pair within 3 Å."""
    i, j, d = neighbor_list("ijd", atoms, 3.0)
    if len(d) == 0:
        return float("inf")
    return float(np.min(d / (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])))


def score(model, frames: list[Atoms], batch_size: int = 16) -> None:
    """Set ``info["max_forces_uncertainty"]`` (eV/Å) and ``info["energy_uncertainty"]`` (eV) of ``frames``."""
    for begin in range(0, len(frames), batch_size):
        chunk = frames[begin:begin + batch_size]
        outputs = model.compute(chunk, stress=False, uncertainty=True)
        for frame, out in zip(chunk, outputs):
            frame.info["max_forces_uncertainty"] = float(np.max(out["forces_uncertainty"]))
            frame.info["energy_uncertainty"] = float(out["energy_uncertainty"])
