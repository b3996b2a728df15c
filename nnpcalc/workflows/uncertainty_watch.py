"""Watching a simulation's predicted uncertainty: flag, save the frame for labelling, or stop.

``nnp md --max-uncertainty`` and ``nnp learn``'s exploration both use :class:`UncertaintyWatch`:
every ``every`` steps it asks the calculator for ``forces_uncertainty`` (the model's calibrated
per-atom force error, eV/Å; see ``nnpcalc.nn.uncertainty``), and when the largest exceeds
``limit`` it records the step, appends the frame to ``frames_path`` (extended XYZ, ready to be
labelled) unless the action is ``flag``, and for ``stop`` returns the reason the run should end.
Only checked steps pay for the uncertainty (K - 1 extra backward passes). In an MD run directory
(``rundir``, both engines) the frames file keeps to :mod:`.md_rundir`'s rules: a plain file of
the directory, never a symbolic link, checked when the watch is made and at every write.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from ..charge import total_charge
from ..errors import OptionError, RunDirectoryError
from . import md_rundir as rd
from .choices import UNCERTAINTY_ACTIONS as ACTIONS

#: where ``nnp md --max-uncertainty`` writes the frames to label, in its run directory
MD_FRAMES = "uncertain.extxyz"


def require_uncertainty(model) -> None:
    """A typed error unless ``model`` (a runtime ``Model``) serves ``forces_uncertainty``."""
    if "forces_uncertainty" not in model.outputs:
        raise OptionError(
            f"model {model.path.name} has no uncertainty outputs (forces_uncertainty); train one with an "
            "ensemble energy head (task `{output: energy_ensemble, metric: nll}`, docs/uncertainty.md) "
            "or drop the uncertainty option"
        )


def largest_forces_uncertainty(atoms: Atoms) -> float:
    """The largest per-atom ``forces_uncertainty`` (eV/Å) of ``atoms``'s calculator, computed if needed."""
    sigma = atoms.calc.get_property("forces_uncertainty", atoms)
    return float(np.max(sigma)) if len(sigma) else 0.0


@dataclass
class UncertaintyWatch:
    """Checks the uncertainty every ``every`` steps; see the module docstring."""

    limit: float  #: eV/Å, largest per-atom forces_uncertainty allowed
    action: str = "save"
    frames_path: Path | None = None
    every: int = 10
    flagged: list[tuple[int, float]] = field(default_factory=list)  #: (step, largest sigma)
    rundir: Path | None = None  #: an MD run directory: frames go to its file of ``frames_path``'s name

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise OptionError(f"uncertainty action {self.action!r} unknown; choose from {', '.join(ACTIONS)}")
        if self.limit <= 0 or self.every < 1:
            raise OptionError(f"max uncertainty must be > 0 eV/Å and checked every >= 1 step, got "
                              f"{self.limit} every {self.every}")
        if self.action != "flag" and self.frames_path is None:
            raise OptionError(f"uncertainty action {self.action!r} needs a file for the frames")
        if self.action != "flag" and self.rundir is not None:
            # a link is refused now, before a resume cuts or writes anything
            self.frames_path = rd.inside(self.rundir, Path(self.frames_path).name)

    def check(self, atoms: Atoms, step: int) -> str | None:
        """Look at ``atoms`` (with its calculator) at ``step``; the reason to stop, or None."""
        if step % self.every:
            return None
        sigma = largest_forces_uncertainty(atoms)
        if sigma <= self.limit:
            return None
        self.flagged.append((step, sigma))
        message = f"step {step}: largest force uncertainty {sigma:.3g} eV/Å > {self.limit:g} eV/Å"
        if self.action != "flag":
            save_frame(atoms, self.frames_path, self.rundir, step=step, max_forces_uncertainty=sigma)
        if self.action == "stop":
            return message + f"; frame written to {self.frames_path} for labelling"
        warnings.warn(message, stacklevel=2)
        return None


def save_frame(atoms: Atoms, path: Path, rundir: Path | None = None, **info) -> None:
    """Append a bare copy of ``atoms`` (no model results: it is to be labelled) to ``path``; with
    ``rundir``, ``path`` must be a plain file of that run directory (``md_rundir.inside``)."""
    from ase.io import write

    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update({"charge": total_charge(atoms), **info})
    if rundir is None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write(path, frame, format="extxyz", append=True)
        return
    with _append_inside(rundir, Path(path).name) as fh:
        write(fh, frame, format="extxyz")


def _append_inside(rundir: Path, name: str):
    """``rundir/name`` opened to append, refusing a link planted since the last check (``O_NOFOLLOW``)."""
    path = rd.inside(rundir, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as err:
        raise RunDirectoryError(f"cannot append to {path} ({err.strerror}): a run only writes plain files of its "
                                "own directory; replace a link by the file itself, or start a new run") from err
    return os.fdopen(fd, "a")


def md_watcher(rundir: Path, settings, model) -> UncertaintyWatch | None:
    """The watch of an MD run (``MDSettings.max_uncertainty``, 0: none), checked every trajectory frame."""
    if not settings.max_uncertainty:
        return None
    require_uncertainty(model)
    return UncertaintyWatch(settings.max_uncertainty, settings.uncertainty_action, Path(rundir) / MD_FRAMES,
                            settings.trajectory_interval, rundir=Path(rundir))

