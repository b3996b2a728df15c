"""What an MD run directory holds, how it is written, checkpointed and picked up again.

A run directory has ``run.json`` (the settings), ``md.log``, the trajectory and
``checkpoint.npz``. The checkpoint is replaced atomically (written beside, then
``os.replace``), so a process killed at any moment (``kill -9``) leaves either the previous
checkpoint or the new one, never half of one. It holds positions, momenta, cell, masses, the
step, the integrator's own state (``md_ensembles.STATE``), the random generator's state and
how far the log and trajectory had been written; on resume, whatever was written after the
checkpoint is cut away, so the resumed files match an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import jsonio

from .. import __version__
from .io import FrameWriter
from .md_ensembles import check_ensemble

SETTINGS = "run.json"
CHECKPOINT = "checkpoint.npz"
LOG = "md.log"
EXPLODED = "exploded.extxyz"
LOG_COLUMNS = ("step", "time_ps", "Epot_eV", "Ekin_eV", "Etot_eV", "Econserved_eV", "T_K", "P_GPa", "V_A3")


@dataclass
class MDSettings:
    """Everything that defines a run (written to ``run.json``); units in the names."""

    ensemble: str = "nve"
    temperature_K: float = 300.0
    pressure_GPa: float = 0.0
    timestep_fs: float = 0.5
    steps: int = 1000
    seed: int = 0
    trajectory: str = "trajectory.extxyz"
    trajectory_interval: int = 10
    log_interval: int = 10
    checkpoint_interval: int = 100
    friction_per_fs: float = 0.01
    tau_t_fs: float = 100.0
    tau_p_fs: float = 1000.0
    max_force: float = 100.0  #: eV/Å; larger forces stop the run as exploded
    max_temperature_factor: float = 10.0  #: T above this × max(temperature_K, 100 K) stops the run
    model: str = ""
    dtype: str = "float64"
    device: str = "cpu"

    def validate(self) -> MDSettings:
        check_ensemble(self.ensemble)
        positive = {"timestep_fs": self.timestep_fs, "trajectory_interval": self.trajectory_interval,
                    "log_interval": self.log_interval, "checkpoint_interval": self.checkpoint_interval}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.steps < 0:
            raise ValueError(f"steps must be zero or more, got {self.steps}")
        if self.ensemble != "nve" and not self.temperature_K > 0:
            raise ValueError(f"ensemble {self.ensemble} needs a temperature_K above 0, got {self.temperature_K}")
        return self


def write_settings(rundir: Path, settings: MDSettings) -> None:
    text = json.dumps({"nnpcalc_version": __version__, **asdict(settings)}, indent=2)
    _atomic_write(rundir / SETTINGS, text.encode())


def read_settings(rundir: Path) -> MDSettings:
    path = Path(rundir) / SETTINGS
    if not path.is_file():
        raise FileNotFoundError(f"{rundir} is not an MD run directory (no {SETTINGS}); "
                                    "pass the --output-dir of an earlier `nnp md` run")
    data = json.loads(path.read_text())
    return MDSettings(**{f.name: data[f.name] for f in fields(MDSettings) if f.name in data}).validate()


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
    tmp = rundir / (CHECKPOINT + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, rundir / CHECKPOINT)


def load_checkpoint(rundir: Path) -> Checkpoint:
    path = Path(rundir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{rundir} has no {CHECKPOINT}: the run stopped before its first checkpoint; "
                                    "start it again")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        masses = data["masses"] if meta["custom_masses"] else None
        atoms = Atoms(numbers=data["numbers"], positions=data["positions"], cell=data["cell"],
                      pbc=data["pbc"], masses=masses, momenta=data["momenta"])
        state = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("state:")}
    atoms.info.update(jsonio.decode(meta["info"]))
    return Checkpoint(meta["step"], atoms, state, meta["rng_state"], meta["outputs"])


def rng_from_state(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def cut_outputs(rundir: Path, settings: MDSettings, outputs: dict[str, int]) -> None:
    """Drop what the log and trajectory gained after the checkpoint (a killed run writes on)."""
    _truncate(rundir / LOG, outputs["log_bytes"])
    trajectory = rundir / settings.trajectory
    if trajectory.suffix == ".traj":
        _keep_frames(trajectory, outputs["trajectory_frames"])
    else:
        _truncate(trajectory, outputs["trajectory_bytes"])


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def _keep_frames(path: Path, frames: int) -> None:
    import ase.io

    kept = ase.io.read(path, index=f":{frames}") if frames else []
    tmp = path.with_name(path.name + ".tmp.traj")
    with ase.io.Trajectory(tmp, "w") as traj:
        for atoms in kept:
            traj.write(atoms)
    os.replace(tmp, path)


class Outputs:
    """The log and the trajectory, appended and flushed as the run goes."""

    def __init__(self, rundir: Path, settings: MDSettings, outputs: dict | None):
        fresh = outputs is None
        self.frames = 0 if fresh else outputs["trajectory_frames"]
        self._log = open(rundir / LOG, "w" if fresh else "a")
        if fresh:
            self._log.write("# " + " ".join(f"{c:>16}" for c in LOG_COLUMNS)[2:] + "\n")
        self._traj = FrameWriter(rundir / settings.trajectory, "w" if fresh else "a")

    def log(self, row: list[float]) -> None:
        self._log.write(f"{int(row[0]):>16d} " + " ".join(f"{v:16.8f}" for v in row[1:]) + "\n")
        self._log.flush()

    def frame(self, atoms: Atoms) -> None:
        self._traj.write(atoms)
        self.frames += 1

    def position(self) -> dict[str, int]:
        traj = self._traj.path
        return {"log_bytes": self._log.tell(), "trajectory_frames": self.frames,
                "trajectory_bytes": traj.stat().st_size if traj.exists() else 0}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._log.close()
        self._traj.close()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
