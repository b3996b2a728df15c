"""The checkpoint of an OpenMM run (``nnp md --engine openmm``), and how a run restarts from one.

``checkpoint.npz`` (the ASE engine's name; ``meta["engine"]`` tells them apart) holds, read
with ``allow_pickle=False``:

- ``state``: OpenMM's own ``State`` as XML (``XmlSerializer``): positions, velocities, box, step,
  time and the integrator's parameters (the Nose-Hoover chain). Only a ``State`` is ever
  deserialised: a System's XML can embed a pickled ``PythonForce`` and is refused unread;
- the system it belongs to (atomic numbers, masses, starting cell, pbc, total charge, the frame
  rotation), whose SHA-256 ``run.json`` records: a checkpoint of another system is refused;
- how far the log and trajectory had been written (as :mod:`nnpcalc.workflows.md_state`).

It is written beside, flushed and moved into place (``md_rundir.atomic_write``), so a ``kill -9``
leaves a whole checkpoint. OpenMM's ``State`` has no random-generator state, so at every
checkpoint a run *restarts*: the integrator (and barostat) get the seed :func:`segment_seed` of
``(seed, step)``, the Context is rebuilt and the State set from that XML. A resume does exactly
this from the file, so it continues as the uninterrupted run did, for every ensemble.
"""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
from ase import Atoms

from ..errors import CheckpointError
from ..workflows import md_rundir as rd
from ..workflows import md_state
from ..workflows.md_state import OUTPUT_KEYS

ENGINE = "openmm"
#: the run.json record naming the system of the run
RECORD = "system"
_SYSTEM_KEYS = ("numbers", "masses", "cell", "pbc", "rotation")


@dataclass
class OpenMMCheckpoint:
    step: int
    state_xml: str  #: ``XmlSerializer.serialize(State)``
    system: dict[str, np.ndarray]  #: numbers, masses, cell (at the start), pbc, rotation
    total_charge: float
    outputs: dict[str, int]  #: log_bytes, trajectory_bytes, trajectory_frames

    def atoms(self, positions: np.ndarray) -> Atoms:
        """The run's starting structure (cell, masses, charge) at ``positions`` (Å, ASE's frame)."""
        s = self.system
        atoms = Atoms(numbers=s["numbers"], positions=positions, cell=s["cell"], pbc=s["pbc"], masses=s["masses"])
        atoms.info["charge"] = self.total_charge
        return atoms


def system_arrays(atoms: Atoms, rotation: np.ndarray) -> dict[str, np.ndarray]:
    return {"numbers": np.asarray(atoms.numbers, dtype=np.int64), "masses": atoms.get_masses().astype(float),
            "cell": atoms.cell.array.astype(float), "pbc": np.asarray(atoms.pbc, dtype=bool),
            "rotation": np.asarray(rotation, dtype=float)}


def system_record(system: dict[str, np.ndarray], total_charge: float) -> dict:
    """What run.json records of the system: its formula, size and a SHA-256 of everything that defines it."""
    digest = hashlib.sha256(repr(float(total_charge)).encode())
    for key in _SYSTEM_KEYS:
        digest.update(np.ascontiguousarray(system[key]).tobytes())
    formula = Atoms(numbers=system["numbers"]).get_chemical_formula()
    return {"formula": formula, "atoms": int(len(system["numbers"])), "sha256": digest.hexdigest()}


def save(rundir: Path, checkpoint: OpenMMCheckpoint) -> None:
    meta = {"engine": ENGINE, "step": checkpoint.step, "total_charge": checkpoint.total_charge,
            "outputs": checkpoint.outputs}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), state=np.array(checkpoint.state_xml), **checkpoint.system)
    rd.atomic_write(rd.inside(rundir, rd.CHECKPOINT), buffer.getvalue())


def load(rundir: Path, record: dict | None) -> OpenMMCheckpoint:
    """The run's checkpoint, validated, and refused unless it is of the system ``record`` (run.json) names."""
    path = md_state.checkpoint_file(rundir)
    try:
        arrays, meta = md_state.read_arrays(path)
        if meta.get("engine") != ENGINE:
            raise CheckpointError(f"{path} was written by the ASE engine, but {rd.SETTINGS} says engine openmm: "
                                  "it does not belong to this run; restore the run's own checkpoint, or resume "
                                  "the run it came from with its own run.json")
        checkpoint = _checkpoint(arrays, meta)
    except CheckpointError:
        raise
    except (*md_state.READ_ERRORS, ET.ParseError) as err:
        raise md_state.damaged(path, err) from err
    _match(checkpoint, record, path)
    return checkpoint


def _checkpoint(arrays: dict, meta: dict) -> OpenMMCheckpoint:
    n = len(arrays["numbers"])
    shapes = {"masses": (n,), "cell": (3, 3), "pbc": (3,), "rotation": (3, 3)}
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{key} has shape {arrays[key].shape}, expected {shape}")
    step, outputs, charge = meta["step"], meta["outputs"], meta["total_charge"]
    counts = [step, *(outputs[k] for k in OUTPUT_KEYS)]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ValueError(f"step and output sizes must be whole numbers >= 0, got {counts}")
    if not isinstance(charge, (int, float)) or not np.isfinite(charge):
        raise ValueError(f"total_charge must be a finite number, got {charge!r}")
    xml = str(arrays.pop("state"))
    _check_state_xml(xml, n, step)
    system = {k: arrays[k] for k in _SYSTEM_KEYS}
    return OpenMMCheckpoint(step, xml, system, float(charge), {k: outputs[k] for k in OUTPUT_KEYS})


def _check_state_xml(xml: str, n: int, step: int) -> None:
    """An OpenMM State of ``n`` particles at ``step``, with finite positions and velocities (nothing else)."""
    root = ET.fromstring(xml)
    if root.tag != "State" or root.get("type") != "State":
        raise ValueError(f"the saved state is a <{root.tag}>, not an OpenMM <State>")
    if int(root.get("stepCount", -1)) != step:
        raise ValueError(f"the saved state is at step {root.get('stepCount')}, the checkpoint says {step}")
    for group in ("Positions", "Velocities"):
        values = [float(v) for e in root.iterfind(f"{group}/*") for v in (e.get("x"), e.get("y"), e.get("z"))]
        if len(values) != 3 * n:
            raise ValueError(f"the saved state has {len(values) // 3} {group.lower()}, expected {n}")
        if not np.isfinite(values).all():
            raise ValueError(f"the saved state's {group.lower()} hold NaN or inf")


def _match(checkpoint: OpenMMCheckpoint, record: dict | None, path: Path) -> None:
    mine = system_record(checkpoint.system, checkpoint.total_charge)
    if not record or mine["sha256"] != record.get("sha256"):
        ran = f"{record.get('formula')} ({record.get('atoms')} atoms)" if record else "an unrecorded system"
        raise CheckpointError(
            f"{path} is a checkpoint of {mine['formula']} ({mine['atoms']} atoms, charge "
            f"{checkpoint.total_charge:g} e), but {rd.SETTINGS} records a run of {ran}: it is the checkpoint of "
            "another system (copied from another run?). Restore this run's own checkpoint, or start a new run")


def state_from_xml(xml: str) -> openmm.State:
    """OpenMM's State from checked XML: only the State deserialiser runs (never a System's, which unpickles)."""
    return openmm.XmlSerializer._deserializeState(xml)


def segment_seed(seed: int, step: int) -> int:
    """The random seed of the stretch of run after the checkpoint at ``step``: 1..2**31-1 (OpenMM reads
    0 as "pick one at random", which would make no two runs alike)."""
    digest = hashlib.sha256(f"nnpcalc-openmm:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**31 - 1) + 1


def restart(simulation, xml: str, seed: int) -> None:
    """Rebuild the Context with ``seed`` for every random generator and set the State ``xml``: what a
    run does at each checkpoint and a resume does from the file, so that the two continue alike."""
    integrator = simulation.integrator
    if hasattr(integrator, "setRandomNumberSeed"):
        integrator.setRandomNumberSeed(seed)
    for force in simulation.system.getForces():
        if isinstance(force, openmm.MonteCarloBarostat):
            force.setRandomNumberSeed(seed)
    simulation.context.reinitialize(preserveState=False)
    simulation.context.setState(state_from_xml(xml))


class Checkpoints:
    """What a run (fresh or resumed) does at each checkpoint: save the State, then restart from it."""

    def __init__(self, rundir: Path, seed: int, system: dict[str, np.ndarray], total_charge: float):
        self.rundir, self.seed, self.system, self.total_charge = rundir, seed, system, total_charge

    def save(self, simulation, outputs: dict[str, int]) -> str:
        """Write the checkpoint of the Context's state; returns its XML."""
        state = simulation.context.getState(getPositions=True, getVelocities=True, getIntegratorParameters=True)
        xml = openmm.XmlSerializer.serialize(state)
        save(self.rundir, OpenMMCheckpoint(state.getStepCount(), xml, self.system, self.total_charge, outputs))
        return xml

    def save_and_restart(self, simulation, outputs: dict[str, int]) -> None:
        xml = self.save(simulation, outputs)
        restart(simulation, xml, segment_seed(self.seed, simulation.currentStep))


def trim_outputs(rundir: Path, settings, outputs: dict[str, int]) -> None:
    """Cut the log and trajectory back to the checkpoint (``md_state.cut_outputs``: a shorter file is
    refused); a ``.dcd`` also gets its header's frame count and last step back."""
    from ..workflows.md_state import cut_outputs

    cut_outputs(rundir, settings, outputs)
    trajectory = rd.inside(rundir, settings.trajectory)
    frames = outputs["trajectory_frames"]
    if trajectory.suffix.lower() == ".dcd" and outputs["trajectory_bytes"] > 0:
        with open(trajectory, "r+b") as fh:  # DCDFile: frame count at byte 8, last step at byte 20
            fh.seek(8)
            fh.write(int(frames).to_bytes(4, "little", signed=True))
            fh.seek(20)
            fh.write(int(frames * settings.trajectory_interval).to_bytes(4, "little", signed=True))
