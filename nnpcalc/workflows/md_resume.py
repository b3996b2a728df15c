"""What both MD engines check before a resume continues a run: one preamble for ASE's and OpenMM's.

:func:`prepare_resume` runs under the run's lock: the recorded settings with the changes a resume
may make (another device, a new total of steps), the engine's checkpoint, the run's own model
and the uncertainty watch (refused, with its frames file linked out of the run, before anything
is cut or rewritten). The engine then rebuilds its integrator from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import OptionError, RunDirectoryError
from . import md_rundir as rd
from .common import as_model
from .md_settings import MDSettings
from .uncertainty_watch import UncertaintyWatch, md_watcher


@dataclass
class Resume:
    settings: MDSettings  #: the run's, with the new device and total of steps
    checkpoint: Any  #: the engine's checkpoint (it has ``step``)
    model: Any  #: the run's model, loaded (a ``runtime.Model``)
    watch: UncertaintyWatch | None  #: ``max_uncertainty``'s watch, or None


def prepare_resume(rundir: Path, engine: str, wrong_engine: Callable[[str], str], load: Callable[[MDSettings], Any],
                   steps: int | None, model, changes: dict) -> Resume:
    """The checked state a resume of ``rundir`` by ``engine`` starts from; call it under ``rd.RunLock(rundir)``.

    ``wrong_engine``: the refusal's message, given the engine the run records; ``load``: the
    engine's checkpoint of the run (given its settings); ``steps``: a new total (None: the run's);
    ``model``: the run's file if it has moved (default: the one in ``run.json``); ``changes``:
    settings given again, refused unless they are the run's (a device may change).
    """
    settings = rd.read_settings(rundir)
    rd.refuse_changes(settings, changes, rundir)
    if changes.get("device") is not None:  # resumable: the run continues on another device
        settings = replace(settings, device=changes["device"]).validate()
    if settings.engine != engine:
        raise RunDirectoryError(wrong_engine(settings.engine))
    checkpoint = load(settings)
    if steps is not None:
        if steps < checkpoint.step:
            raise OptionError(f"{rundir} is already at step {checkpoint.step}; give a total of at least that many steps")
        settings = replace(settings, steps=steps).validate()
    model = as_model(model or settings.model, settings.dtype, settings.device)
    rd.check_model(settings, model.path, rundir)
    watch = md_watcher(rundir, settings, model)  # its frames file linked out of the run: refused before any cut
    return Resume(settings, checkpoint, model, watch)
