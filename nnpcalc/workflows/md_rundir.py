"""An MD run directory: what it holds, who may write it, its settings file, log and trajectory.

A run directory holds ``run.json`` (the :class:`~.md_settings.MDSettings`), ``md.log``, the
trajectory, ``checkpoint.npz`` (:mod:`.md_state`), ``run.lock`` and, with ``max_uncertainty``, the
frames to label (``uncertain.extxyz``, :mod:`.uncertainty_watch`). Both engines write the same
log (:data:`LOG_COLUMNS`). Rules that keep a run from being damaged:

- every file is a plain name inside the directory, and none may be a symbolic link: a run, or
  a resume of a directory someone else prepared, never writes outside it;
- the process writing a run holds an exclusive ``fcntl.flock`` on ``run.lock`` (released by the
  kernel when the process ends, even by ``kill -9``): a second writer is refused;
- ``--overwrite`` only replaces an earlier run (a directory with ``run.json``) or an empty one;
- a resume cuts the log and trajectory back to what the checkpoint recorded; a file shorter
  than that was cut or replaced by someone else and is refused, never padded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .. import __version__
from ..errors import RunDirectoryError, UnknownOptionError
from .md_settings import RESUMABLE, MDSettings

SETTINGS = "run.json"
LOG = "md.log"
LOCK = "run.lock"
CHECKPOINT = "checkpoint.npz"
EXPLODED = "exploded.extxyz"
LOG_COLUMNS = ("step", "time_ps", "Epot_eV", "Ekin_eV", "Etot_eV", "Econserved_eV", "T_K", "P_GPa", "V_A3")


def log_header() -> str:
    return "# " + " ".join(f"{c:>16}" for c in LOG_COLUMNS)[2:] + "\n"


def log_line(row) -> str:
    """One log row (the values of LOG_COLUMNS) as written by both engines."""
    return f"{int(row[0]):>16d} " + " ".join(f"{float(v):16.8f}" for v in row[1:]) + "\n"


class RunLock:
    """An exclusive lock on ``RUNDIR/run.lock`` for as long as this process writes the run."""

    def __init__(self, rundir: Path):
        import fcntl

        self.path = Path(rundir) / LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise RunDirectoryError(f"cannot open the lock file {self.path} ({err.strerror}); "
                                    "check that the run directory is writable and run.lock is a plain file") from err
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise RunDirectoryError(f"{rundir} is being written by another process (pid {holder}); wait for it "
                                    "to finish or stop it before resuming or overwriting this run") from err
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def check_new_rundir(path: Path, overwrite: bool) -> None:
    """Refuse, before any work, a run directory that cannot be (re)created."""
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{path} is a file; give a directory for the run (-o/--output-dir)")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise RunDirectoryError(f"{path} already holds files; continue that run with `nnp md --resume {path}` "
                                    "(resume_md), choose another output directory, or overwrite it (--overwrite)")
        if not (path / SETTINGS).is_file():
            raise RunDirectoryError(f"{path} holds files but no {SETTINGS}: it is not an MD run directory, and "
                                    "--overwrite only replaces an earlier run; choose another output directory")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"cannot write the run directory {path}: {existing} is not writable; "
                                "choose another output directory")


def claim_new_rundir(path: Path, overwrite: bool) -> RunLock:
    """Create (or, with ``overwrite``, empty) the run directory and lock it; the caller releases the lock."""
    check_new_rundir(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(path)
    for child in path.iterdir():
        if child.name == LOCK:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return lock


def open_rundir(path) -> Path:
    """An existing run directory to resume (resolved), or a typed error saying what it lacks."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirectoryError(f"{path} is not an MD run directory (no such directory); "
                                "pass the --output-dir of an earlier `nnp md` run")
    if not (path / SETTINGS).is_file():
        raise RunDirectoryError(f"{path} is not an MD run directory (no {SETTINGS}); "
                                "pass the --output-dir of an earlier `nnp md` run")
    return path.resolve()


def inside(rundir: Path, name: str) -> Path:
    """``rundir/name``, refused when it is a symbolic link or resolves outside ``rundir``."""
    path = Path(rundir) / name
    if path.is_symlink() or path.resolve().parent != Path(rundir).resolve():
        raise RunDirectoryError(f"{path} points outside the run directory {rundir}; a run only writes its own "
                                "files: replace the link by the file itself or start a new run")
    return path


def write_settings(rundir: Path, settings: MDSettings, **records) -> None:
    """``run.json``: the settings, and ``records`` an engine keeps about the run (OpenMM: its system)."""
    text = json.dumps({"nnpcalc_version": __version__, **settings.as_dict(), **records}, indent=2)
    atomic_write(inside(rundir, SETTINGS), text.encode())


def read_record(rundir: Path, name: str):
    """A record :func:`write_settings` kept in ``run.json`` (None when absent); call after :func:`read_settings`."""
    value = json.loads(inside(rundir, SETTINGS).read_text()).get(name)
    return value if isinstance(value, dict) else None


def read_settings(rundir: Path) -> MDSettings:
    path = inside(rundir, SETTINGS)
    try:
        return MDSettings.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise RunDirectoryError(f"{path} is damaged or was edited into something invalid ({err}); restore it "
                                "or start a new run") from err


def refuse_changes(settings: MDSettings, changes: dict, rundir: Path) -> None:
    """A resume continues the run as it was set up: any other value of a physics setting is refused."""
    for name, value in changes.items():
        if name in RESUMABLE or value is None:
            continue
        if name not in settings.as_dict():
            raise UnknownOptionError(f"unknown MD setting {name!r}; valid: {', '.join(settings.as_dict())}")
        recorded = getattr(settings, name)
        if value != recorded:
            raise RunDirectoryError(
                f"{rundir} was run with {name} = {recorded!r} ({SETTINGS}); a resume continues that run exactly "
                f"and cannot change it to {value!r}. Start a new run instead, from the last frame: "
                f"`nnp md {Path(rundir) / settings.trajectory} -o NEW_DIR ...` (resume may only change "
                f"{', '.join(RESUMABLE)})")


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(settings: MDSettings, model_path, rundir: Path) -> None:
    """The model of a resume is the run's model file (moved or not), byte for byte."""
    if settings.model_sha256 and file_sha256(model_path) != settings.model_sha256:
        raise RunDirectoryError(f"{model_path} is not the model {rundir} was run with ({settings.model}, "
                                f"sha256 {settings.model_sha256[:12]}...); resume with that file, or start a "
                                "new run with this model")


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside, flush to disk, then move into place: a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
