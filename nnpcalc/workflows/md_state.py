"""The state of an MD run: its checkpoint, and the log and trajectory written up to it.

``checkpoint.npz`` holds positions, momenta, cell, masses, the step, the integrator's own state
(``md_ensembles.STATE``), the random generator's state and how far the log and trajectory had
been written. It is written beside, flushed to disk and moved into place (``os.replace``), so a
process killed at any moment (``kill -9``) leaves the previous checkpoint or the new one, never
half of one. Loading validates it: a damaged or foreign file is a :class:`CheckpointError`
naming the file. On resume whatever the log and trajectory gained after the checkpoint is cut
away, so the resumed files match an uninterrupted run record for record.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import jsonio

from ..errors import CheckpointError, RunDirectoryError
from .io import FrameWriter
from .md_ensembles import STATE
from .md_rundir import CHECKPOINT, LOG, SETTINGS, inside, log_header, log_line, sync_directory
from .md_settings import ENGINES, MDSettings

#: what ``outputs`` of a checkpoint records
OUTPUT_KEYS = ("log_bytes", "trajectory_bytes", "trajectory_frames")


@dataclass
class Checkpoint:
    step: int
    atoms: Atoms
    integrator: dict[str, np.ndarray]
    rng_state: dict
    outputs: dict[str, int]  #: log_bytes, trajectory_bytes, trajectory_frames


def save_checkpoint(rundir: Path, checkpoint: Checkpoint) -> None:
    a = checkpoint.atoms
    meta = {"step": checkpoint.step, "rng_state": checkpoint.rng_state, "outputs": checkpoint.outputs,
            "info": jsonio.encode(a.info), "custom_masses": a.has("masses")}
    arrays = {"positions": a.positions, "momenta": a.get_momenta(), "cell": a.cell.array, "pbc": a.pbc,
              "numbers": a.numbers, "masses": a.get_masses(),
              **{f"state:{k}": v for k, v in checkpoint.integrator.items()}}
    path = inside(rundir, CHECKPOINT)
    tmp = path.with_name(CHECKPOINT + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


#: what reading a damaged checkpoint file can raise
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, TypeError)


def checkpoint_file(rundir: Path) -> Path:
    """The run's checkpoint path (inside the run directory), refused when there is none yet."""
    path = inside(rundir, CHECKPOINT)
    if not path.is_file():
        raise RunDirectoryError(f"{rundir} has no {CHECKPOINT}: the run stopped before its first checkpoint; "
                                "start it again (with --overwrite)")
    return path


def read_arrays(path: Path) -> tuple[dict, object]:
    """The arrays and the JSON ``meta`` of a checkpoint ``.npz`` (never unpickled), for either engine."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def damaged(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path} is damaged or not an nnpcalc MD checkpoint ({type(err).__name__}: "
                           f"{err}); the run cannot continue from it. Restore the file, or start a new run "
                           "from the trajectory's last frame")


def load_checkpoint(rundir: Path, settings: MDSettings | None = None) -> Checkpoint:
    """The run's checkpoint, validated (against ``settings`` when given)."""
    path = checkpoint_file(rundir)
    try:
        arrays, meta = read_arrays(path)
        engine = meta.get("engine", "ase") if isinstance(meta, dict) else "ase"  # the ASE engine's: no "engine"
        if engine not in ENGINES:
            raise ValueError(f"it names an unknown engine {engine!r}")
        checkpoint = _checkpoint(arrays, meta) if engine == "ase" else None
    except READ_ERRORS as err:
        raise damaged(path, err) from err
    if checkpoint is None:
        raise _other_engine(path, engine, rundir)
    if settings is not None:
        _match(checkpoint, settings, path)
    return checkpoint


def _other_engine(path: Path, engine, rundir: Path) -> CheckpointError:
    """The ASE engine was asked to resume from a checkpoint another engine (OpenMM) wrote."""
    return CheckpointError(
        f"{path} was written by the {engine} engine, but {SETTINGS} gives engine ase (the default when it names "
        f"none): the run was made with `nnp md --engine {engine}` and only that engine can continue it. Put "
        f"\"engine\": \"{engine}\" back in {Path(rundir) / SETTINGS} and resume with `nnp md --resume {rundir}`; "
        "if the checkpoint was copied in from another run instead, restore this run's own checkpoint")


def _checkpoint(arrays: dict, meta: dict) -> Checkpoint:
    n = len(arrays["numbers"])
    shapes = {"positions": (n, 3), "momenta": (n, 3), "cell": (3, 3), "pbc": (3,), "masses": (n,)}
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{key} has shape {arrays[key].shape}, expected {shape}")
    for key in ("positions", "momenta", "cell", "masses"):
        if not np.isfinite(arrays[key]).all():
            raise ValueError(f"{key} holds NaN or inf")
    step, outputs = meta["step"], meta["outputs"]
    counts = [step, *(outputs[k] for k in OUTPUT_KEYS)]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ValueError(f"step and output sizes must be whole numbers >= 0, got {counts}")
    atoms = Atoms(numbers=arrays["numbers"], positions=arrays["positions"], cell=arrays["cell"],
                  pbc=arrays["pbc"], masses=arrays["masses"] if meta["custom_masses"] else None,
                  momenta=arrays["momenta"])
    atoms.info.update(jsonio.decode(meta["info"]))
    state = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("state:")}
    rng_from_state(meta["rng_state"])  # a state numpy cannot take fails here, inside the try
    return Checkpoint(step, atoms, state, meta["rng_state"], {k: outputs[k] for k in OUTPUT_KEYS})


def _match(checkpoint: Checkpoint, settings: MDSettings, path: Path) -> None:
    missing = [k for k in STATE[settings.ensemble] if k not in checkpoint.integrator]
    if missing:
        raise CheckpointError(f"{path} lacks the {settings.ensemble} integrator's state ({', '.join(missing)}): it "
                              "does not belong to this run.json; restore the run's own checkpoint")


def rng_from_state(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def cut_outputs(rundir: Path, settings: MDSettings, outputs: dict[str, int]) -> None:
    """Drop what the log and trajectory gained after the checkpoint (a killed run writes on).

    Every file is checked before any is cut: a file shorter than the checkpoint recorded was cut or
    replaced by someone else, and the resume is refused with the files left as they are.
    """
    log, trajectory = inside(rundir, LOG), inside(rundir, settings.trajectory)
    frames = trajectory.suffix == ".traj"
    _require_at_least(log, outputs["log_bytes"], _size(log), "bytes")
    if frames:
        _require_at_least(trajectory, outputs["trajectory_frames"], _frame_count(trajectory), "frames")
    else:
        _require_at_least(trajectory, outputs["trajectory_bytes"], _size(trajectory), "bytes")
    _truncate(log, outputs["log_bytes"])
    if frames:
        _keep_frames(trajectory, outputs["trajectory_frames"])
    else:
        _truncate(trajectory, outputs["trajectory_bytes"])


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _frame_count(path: Path) -> int:
    import ase.io

    if not path.is_file():
        return 0
    try:
        with ase.io.Trajectory(path, "r") as traj:
            return len(traj)
    except Exception as err:  # noqa: BLE001 - any reader failure means a damaged file
        raise RunDirectoryError(f"{path} is damaged ({err}); the run cannot continue record for record. "
                                "Start a new run from the checkpoint's frame") from err


def _require_at_least(path: Path, recorded: int, actual: int, unit: str) -> None:
    if actual < recorded:
        raise RunDirectoryError(
            f"{path} holds {actual} {unit} but the checkpoint recorded {recorded}: the file was cut or replaced "
            "after the run wrote it, so the run cannot continue record for record. Restore the file, or start "
            "a new run from the last frame")


def _truncate(path: Path, size: int) -> None:
    if size == 0 and not path.exists():
        return
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _keep_frames(path: Path, frames: int) -> None:
    import ase.io

    kept = ase.io.read(path, index=f":{frames}") if frames else []
    tmp = path.with_name(path.name + ".tmp.traj")
    if tmp.is_symlink() or tmp.exists():  # a link planted there would be written through
        tmp.unlink()
    with ase.io.Trajectory(tmp, "w") as traj:
        for atoms in kept:
            traj.write(atoms)
    os.replace(tmp, path)


class Outputs:
    """The log and the trajectory, appended and flushed as the run goes."""

    def __init__(self, rundir: Path, settings: MDSettings, outputs: dict | None):
        fresh = outputs is None
        self.frames = 0 if fresh else outputs["trajectory_frames"]
        self._log = open(inside(rundir, LOG), "w" if fresh else "a")
        if fresh:
            self._log.write(log_header())
        self._traj = FrameWriter(inside(rundir, settings.trajectory), "w" if fresh else "a")

    def log(self, row: list[float]) -> None:
        self._log.write(log_line(row))
        self._log.flush()

    def frame(self, atoms: Atoms) -> None:
        self._traj.write(atoms)
        self.frames += 1

    def position(self) -> dict[str, int]:
        traj = self._traj.path
        return {"log_bytes": self._log.tell(), "trajectory_bytes": traj.stat().st_size if traj.exists() else 0,
                "trajectory_frames": self.frames}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._log.close()
        self._traj.close()
