"""Structures in and out: any file ASE or pymatgen reads, pymatgen objects, trajectory writers.

Formats come from the file name (``.extxyz``, ``.xyz``, ``.traj``, ``.cif``, ``POSCAR``/``.vasp``,
anything else ``ase.io`` knows). ASE reads first; pymatgen (optional) is tried when ASE cannot.
Every structure read carries ``info["source"]`` (``file`` or ``file[frame]``) so results can
name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.formats import filetype, ioformats

from ..charge import total_charge
from ..errors import InvalidStructureError, OutputPathError
from .common import optional

#: results copied into written frames
FRAME_PROPERTIES = ("energy", "forces", "stress", "charges", "dipole")
HINT = "use .extxyz, .xyz, .traj, .cif or POSCAR/.vasp"


def read_structures(paths: Iterable[str | Path]) -> list[Atoms]:
    """Every frame of every file, in order."""
    return [atoms for path in paths for atoms in read_file(path)]


def read_file(path: str | Path) -> list[Atoms]:
    """All frames of one file; a typed error naming the file when nothing in it parses."""
    path = Path(path)
    if not path.is_file():
        raise InvalidStructureError(f"structure file {path} does not exist")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as ase_error:  # noqa: BLE001 - any parser failure means "cannot read"
        frames = _read_with_pymatgen(path, ase_error)
    if not frames:
        raise InvalidStructureError(f"{path} holds no structure")
    for i, atoms in enumerate(frames):
        atoms.info["source"] = path.name if len(frames) == 1 else f"{path.name}[{i}]"
    return frames


def _read_with_pymatgen(path: Path, ase_error: Exception) -> list[Atoms]:
    reason = f"{type(ase_error).__name__}: {ase_error}".strip().rstrip(":")
    try:
        core = optional("pymatgen.core")
    except ImportError:
        raise InvalidStructureError(f"could not read {path} ({reason}); {HINT}") from ase_error
    for cls in (core.Structure, core.Molecule):
        try:
            return [to_atoms(cls.from_file(path))]
        except Exception:  # noqa: BLE001, S112 - try the next reader
            continue
    raise InvalidStructureError(f"could not read {path} with ASE ({reason}) or pymatgen; {HINT}") from ase_error


def to_atoms(structure) -> Atoms:
    """A copy as ASE atoms, from ASE atoms or a pymatgen Structure/Molecule.

    The total charge lands in ``info["charge"]`` (:mod:`nnpcalc.charge`): a pymatgen Molecule's
    ``charge`` (the adaptor sets it as ``atoms.charge``, which ``copy()`` would drop) included.
    """
    if isinstance(structure, Atoms):
        atoms = structure.copy()
    elif type(structure).__module__.startswith("pymatgen"):
        adaptor = optional("pymatgen.io.ase").AseAtomsAdaptor
        atoms = adaptor.get_atoms(structure)
        atoms.calc = None
        if getattr(structure, "charge", None) and "charge" not in atoms.__dict__:  # a Structure's: not copied
            atoms.info["charge"] = float(structure.charge)
    else:
        raise TypeError(f"expected ase.Atoms or a pymatgen Structure/Molecule, got {type(structure).__name__}")
    charge = total_charge(structure if isinstance(structure, Atoms) else atoms)
    if charge or "charge" in atoms.info:
        atoms.info["charge"] = charge
    if "charge" in atoms.__dict__:
        del atoms.charge  # now in info: one place
    return atoms


def to_pymatgen(atoms: Atoms):
    """A pymatgen Structure (periodic) or Molecule (no periodic axis) of ``atoms``, with its total charge.

    The charge (:func:`nnpcalc.charge.total_charge`) becomes ``Structure.charge`` or ``Molecule.charge``;
    a Molecule gets the lowest spin multiplicity its electron count allows (1 even, 2 odd: pymatgen's
    choice when none is given), and a fractional charge skips pymatgen's charge/spin parity check,
    which only whole electron counts can pass.
    """
    core = optional("pymatgen.core")
    charge = total_charge(atoms)
    species = atoms.get_chemical_symbols()
    if atoms.pbc.any():
        lattice = core.Lattice(atoms.cell.array, pbc=tuple(bool(p) for p in atoms.pbc))
        return core.Structure(lattice, species, atoms.positions, charge=charge or None, coords_are_cartesian=True)
    return core.Molecule(species, atoms.positions, charge=charge, charge_spin_check=float(charge).is_integer())


def is_pymatgen(structure) -> bool:
    return type(structure).__module__.startswith("pymatgen")


def require_3d_cell(atoms: Atoms, what: str) -> None:
    """Refuse, naming ``what`` needs it, a structure without a periodic cell of nonzero volume."""
    volume = abs(np.linalg.det(atoms.cell.array))
    if not atoms.pbc.all() or volume < 1e-6:
        name = atoms.info.get("source", atoms.get_chemical_formula())
        raise InvalidStructureError(
            f"{name}: {what} needs a periodic cell with volume in all three directions, but pbc="
            f"{atoms.pbc.tolist()} and the cell volume is {volume:.3g} Å³. Give the structure a 3D "
            "periodic cell (a molecule: a box with vacuum around it)."
        )


def output_format(path: str | Path) -> str:
    """The ase.io format of a file to write, from its name."""
    try:
        fmt = filetype(str(path), read=False)
    except Exception:  # noqa: BLE001 - ASE's guess failed: same answer as an unknown name
        fmt = None
    if fmt not in ioformats:
        raise ValueError(f"cannot tell the format of {path} from its name; {HINT}")
    return "extxyz" if fmt == "xyz" else fmt


def check_writable(path: str | Path, folder: bool = False) -> Path:
    """Refuse, before any work, a file (or with ``folder``, a folder) that cannot be written there."""
    import os

    path = Path(path).absolute()
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if folder else "a file name"
        raise OutputPathError(f"{path} is {'a file' if folder else 'a directory'}; give {kind} for the output")
    if folder:
        parent = next(p for p in (path, *path.parents) if p.exists())
    else:
        parent = path.parent
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"cannot write {path}: {parent} is a file, not a folder")
        if not parent.is_dir():
            raise OutputPathError(f"folder {parent} does not exist; create it or write elsewhere")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.is_file() and not os.access(path, os.W_OK)):
        raise OutputPathError(f"cannot write {path}: permission denied in {parent}; choose a writable place")
    return path


def write_structures(path: str | Path, structures: Sequence[Atoms]) -> list[Path]:
    """Write structures to ``path``; single-frame formats get one file each (``NAME-0.cif``...)."""
    path = Path(path)
    fmt = output_format(path)
    frames = [snapshot(a) for a in structures]
    if len(frames) == 1 or not ioformats[fmt].single:
        ase.io.write(path, frames if len(frames) > 1 else frames[0], format=fmt)
        return [path]
    paths = [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(len(frames))]
    for p, atoms in zip(paths, frames):
        ase.io.write(p, atoms, format=fmt)
    return paths


def snapshot(atoms: Atoms) -> Atoms:
    """A plain copy of ``atoms`` (no constraints) carrying its calculator's current results."""
    copy = atoms.copy()
    copy.set_constraint()
    calc = atoms.calc
    if calc is not None and getattr(calc, "results", None):
        keep = {k: v for k, v in calc.results.items() if k in FRAME_PROPERTIES}
        copy.calc = SinglePointCalculator(copy, **keep)
    return copy


class FrameWriter:
    """Appends frames to a trajectory as they come: extended XYZ (text) or ASE ``.traj``.

    Each frame is flushed, so a killed process leaves every completed frame readable.
    """

    def __init__(self, path: str | Path, mode: str = "a"):
        self.path = Path(path)
        self.format = output_format(self.path)
        if self.format not in ("extxyz", "traj"):
            raise ValueError(f"trajectory {self.path}: format {self.format} cannot be appended to; "
                             "use .extxyz, .xyz or .traj")
        if self.format == "traj":
            self._file = ase.io.Trajectory(self.path, mode)
        else:
            self._file = open(self.path, mode)

    def write(self, atoms: Atoms) -> None:
        frame = snapshot(atoms)
        if self.format == "traj":
            self._file.write(frame)
        else:
            ase.io.write(self._file, frame, format="extxyz")
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
