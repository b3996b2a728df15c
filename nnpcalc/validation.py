"""Physical sanity of a structure before (and, for overlaps, while) a model evaluates it.

Each check raises a typed error that names the atoms and the fix. The costly one, overlapping
atoms, reuses the neighbour graph the call builds anyway (one pass over its pairs), so nothing
O(N²) runs per step.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from .errors import DeviceError, InvalidStructureError, UnknownElementError

#: pairs of nuclei closer than this (Å) are refused: the shortest bond (H2) is 0.74 Å, and at
#: zero distance the pair direction is undefined, so energies and forces become NaN
MIN_DISTANCE = 0.1
#: fully periodic cells with less volume per atom (Å³) are refused: metallic hydrogen at
#: 500 GPa has ~1.3 Å³ per atom
MIN_VOLUME_PER_ATOM = 0.5
#: coordinates beyond this (Å, ~1 cm) are refused in any precision
MAX_COORDINATE = 1e8
#: in float32 a coordinate of x Å is resolved to ~6e-8 x Å: beyond this, distances are off by >1e-3 Å
MAX_COORDINATE_FLOAT32 = 1e4


def name(atoms: Atoms) -> str:
    """How a message names a structure: its source file, else its formula."""
    if atoms.info.get("source"):
        return str(atoms.info["source"])
    if len(atoms) and ((atoms.numbers < 1) | (atoms.numbers >= len(chemical_symbols))).any():
        return f"structure of {len(atoms)} atoms"  # ASE cannot write its formula
    return atoms.get_chemical_formula() or "empty structure"


def check_numbers(atoms: Atoms, known: set[int], elements: list[str], model: str) -> None:
    """Atomic numbers inside the periodic table and known to the model."""
    numbers = np.asarray(atoms.numbers)
    outside = np.where((numbers < 1) | (numbers >= len(chemical_symbols)))[0]
    if len(outside):
        raise InvalidStructureError(
            f"{name(atoms)}: atom(s) {outside[:10].tolist()} have atomic number(s) "
            f"{numbers[outside][:10].tolist()}, outside the periodic table (1–{len(chemical_symbols) - 1}); "
            "set real elements (atoms.numbers or atoms.symbols)."
        )
    unknown = sorted({chemical_symbols[z] for z in numbers if z not in known})
    if unknown:
        raise UnknownElementError(unknown, elements, model)


def check_positions(atoms: Atoms, dtype: torch.dtype) -> None:
    """Finite coordinates, within what the model's precision resolves."""
    positions = atoms.positions
    if not np.isfinite(positions).all():
        bad = np.where(~np.isfinite(positions).all(axis=1))[0]
        raise InvalidStructureError(
            f"{name(atoms)}: positions of atom(s) {bad[:10].tolist()} are NaN or inf; the structure may "
            "have exploded in a previous step. Restore a finite geometry."
        )
    largest = float(np.abs(positions).max(initial=0.0))
    limit = MAX_COORDINATE_FLOAT32 if dtype == torch.float32 else MAX_COORDINATE
    if largest > limit:
        fix = ("evaluate in float64 (dtype='float64'), or move the atoms near the origin"
               if dtype == torch.float32 else "move the atoms near the origin")
        raise InvalidStructureError(
            f"{name(atoms)}: coordinates reach {largest:.3g} Å, beyond the {limit:.0e} Å that "
            f"{str(dtype).removeprefix('torch.')} resolves to 1e-3 Å; {fix}."
        )


def check_density(atoms: Atoms) -> None:
    """A periodic cell no denser than matter: a cell of tiny volume has thousands of images per
    atom inside the cutoff (each costs a pair) and no physical meaning."""
    if not atoms.pbc.all() or len(atoms) == 0:
        return
    per_atom = abs(float(np.linalg.det(atoms.cell.array))) / len(atoms)
    if 1e-6 < per_atom * len(atoms) and per_atom < MIN_VOLUME_PER_ATOM:  # no volume at all: Model.check says so
        raise InvalidStructureError(
            f"{name(atoms)}: its cell gives each atom {per_atom:.3g} Å³, denser than any matter (≥ ~1 Å³ per "
            f"atom even at hundreds of GPa; refused below {MIN_VOLUME_PER_ATOM} Å³). Check the cell's units "
            "and vectors (atoms.cell), e.g. a cell given in nm or fractional units."
        )


def check_overlaps(structures, positions, cell, batch, edge_index, shifts) -> None:
    """Refuse pairs of the graph closer than :data:`MIN_DISTANCE`, naming them (one pass, O(pairs))."""
    if edge_index.shape[1] == 0:
        return
    i, j = edge_index[0], edge_index[1]
    with torch.no_grad():
        vec = positions[j] - positions[i]
        if cell.shape[0] == 1:
            vec += shifts.to(cell.dtype) @ cell[0]
        else:
            vec += (shifts.to(cell.dtype).unsqueeze(2) * cell[batch[i]]).sum(1)
        close = (vec * vec).sum(1) < MIN_DISTANCE**2
        if not bool(close.any()):
            return
        first = int(torch.nonzero(close)[0, 0])
    a, b, d = int(i[first]), int(j[first]), float(torch.linalg.norm(vec[first]))
    owner = int(batch[a])
    start = int((batch < owner).sum())
    image = "" if not bool(shifts[first].any()) else " (a periodic image)"
    raise InvalidStructureError(
        f"{name(structures[owner])}: atoms {a - start} and {b - start}{image} are {d:.3g} Å apart, closer "
        f"than {MIN_DISTANCE} Å (overlapping nuclei; energies would be NaN or meaningless). Remove "
        "duplicated atoms (e.g. ase.geometry.get_duplicate_atoms(atoms, delete=True)) or fix the geometry."
    )


def has_volume(atoms: Atoms) -> bool:
    """Whether a stress exists: a periodic structure whose cell spans a volume."""
    return bool(atoms.pbc.any()) and abs(float(np.linalg.det(atoms.cell.array))) > 1e-6


def empty_result(atoms: Atoms, outputs: dict[str, dict]) -> dict[str, np.ndarray]:
    """What a model gives for a structure with no atoms (ASE's convention: zero, empty arrays)."""
    shapes = {"": (), "N": (0,), "N,3": (0, 3), "3": (3,), "3,3": (3, 3)}
    result = {}
    for key, spec in outputs.items():
        shape = shapes.get(spec.get("shape", ""))
        if shape is None or (key == "stress" and not has_volume(atoms)):
            continue
        result[key] = np.zeros(shape)
    return result


def check_device(device) -> torch.device:
    """``device`` as a torch device this machine has; a typed error naming the fix otherwise."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {device!r} is not a torch device ({err}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(
                f"device {str(device)!r}: this torch ({torch.__version__}) sees no CUDA device; use "
                "device='cpu', or install a CUDA build of torch on a machine with a GPU"
            )
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {str(device)!r}: only {count} CUDA device(s) here (cuda:0–cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r}: MPS is not available here; use device='cpu'")
    return device
