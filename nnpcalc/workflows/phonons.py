"""Harmonic phonons with phonopy: force constants from the model, bands, DOS, thermal properties.

phonopy makes the displaced supercells; the model evaluates them in batches (one
``Model.compute`` call per ``batch_size`` supercells). The band path is ASE's automatic path
for the primitive cell's Bravais lattice (no seekpath needed). Units are phonopy's with ASE
input (eV, Å, amu): frequencies in THz, thermal properties per mole of phonopy's primitive
cell in kJ/mol and J/K/mol. Needs the ``materials`` extra (phonopy); plots need matplotlib.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..charge import total_charge
from ..errors import OptionError
from ..runtime import Model
from . import io
from .common import as_model, optional, progress_bar


@dataclass
class PhononResult:
    phonopy: object  #: the ``phonopy.Phonopy`` object, with force constants
    band: dict  #: distances, frequencies (THz) per segment, labels, connections
    dos: dict  #: frequency_THz, dos (states/THz per unit cell)
    thermal: dict  #: temperature_K, free_energy_kJ_per_mol, entropy_J_per_K_mol, heat_capacity_J_per_K_mol
    min_frequency_THz: float
    imaginary_tolerance_THz: float

    @property
    def has_imaginary_modes(self) -> bool:
        return self.min_frequency_THz < -self.imaginary_tolerance_THz

    def write(self, outdir: str | Path) -> dict[str, Path]:
        """band.png, band.csv, dos.csv, thermal.csv and phonopy_params.yaml in ``outdir``."""
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        files = {"band_plot": outdir / "band.png", "band": outdir / "band.csv", "dos": outdir / "dos.csv",
                 "thermal": outdir / "thermal.csv", "phonopy": outdir / "phonopy_params.yaml"}
        plot_band(self.band, files["band_plot"])
        _write_band_csv(self.band, files["band"])
        _write_csv(files["dos"], self.dos)
        _write_csv(files["thermal"], self.thermal)
        self.phonopy.save(files["phonopy"])
        return files


def phonons(structure, model: str | Path | Model | None = None, *, supercell=(2, 2, 2), displacement: float = 0.01,
            mesh: float | tuple = 30.0, band_points: int = 51, t_min: float = 0.0, t_max: float = 1000.0,
            t_step: float = 10.0, primitive="auto", imaginary_tolerance_THz: float = 0.05,
            dtype: str = "float64", device: str = "cpu", batch_size: int = 32, progress: bool = False) -> PhononResult:
    """Phonons of a periodic ``structure`` (ASE atoms or pymatgen Structure), ideally relaxed first.

    Args:
        supercell: 3 repetitions (or a 3×3 matrix) of the unit cell for the force constants.
        displacement: atomic displacement in Å.
        mesh: q-point mesh for the DOS and thermal properties (3 ints, or a length in Å).
        band_points: q-points per band-path segment.
        primitive: phonopy's primitive matrix ("auto", None for the cell as given, or a 3×3).
    """
    atoms = io.to_atoms(structure)
    io.require_3d_cell(atoms, "phonons")
    matrix = supercell_matrix(supercell)
    _check_options(displacement, mesh, band_points, t_min, t_max, t_step, batch_size)
    model = as_model(model, dtype, device)
    model.check(atoms)
    ph = _displaced(atoms, matrix, displacement, primitive)
    ph.forces = _supercell_forces(model, ph, total_charge(atoms) / len(atoms), batch_size, progress)
    ph.produce_force_constants(show_drift=False)
    band = _band_structure(ph, band_points)
    ph.run_mesh(mesh, is_gamma_center=True)
    ph.run_total_dos()
    ph.run_thermal_properties(t_min=t_min, t_max=t_max, t_step=t_step, exclude_gamma_acoustic=True)
    result = PhononResult(ph, band, _dos(ph), _thermal(ph), _min_frequency(ph, band), imaginary_tolerance_THz)
    if result.has_imaginary_modes:
        warnings.warn(imaginary_warning(result), RuntimeWarning, stacklevel=2)
    return result


def supercell_matrix(supercell) -> np.ndarray:
    """The 3×3 integer supercell matrix of 3 repetitions or a matrix; a typed error for one with no volume."""
    try:
        values = np.asarray(supercell)
        ok = values.shape in ((3,), (3, 3)) and values.dtype != bool and np.all(values == np.round(values))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise OptionError(f"supercell must be 3 whole repetitions (e.g. 2 2 2) or a 3×3 integer matrix, got {supercell!r}")
    matrix = np.diag(values) if values.ndim == 1 else values
    matrix = matrix.astype(int)
    if (values.ndim == 1 and np.any(values < 1)) or round(np.linalg.det(matrix)) < 1:
        raise OptionError(f"supercell {np.asarray(supercell).tolist()} has no volume (a repetition < 1, or a "
                         "singular or left-handed matrix); give repetitions of 1 or more, e.g. 2 2 2")
    return matrix


def _check_options(displacement, mesh, band_points, t_min, t_max, t_step, batch_size) -> None:
    numbers = {"displacement": displacement, "t_min": t_min, "t_max": t_max, "t_step": t_step}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise OptionError(f"{name} must be a finite number, got {value!r}")
    if not displacement > 0 or not t_step > 0:
        raise OptionError(f"displacement ({displacement} Å) and t_step ({t_step} K) must be above 0 (e.g. 0.01, 10)")
    if not 0 <= t_min <= t_max:
        raise OptionError(f"temperatures need 0 <= t_min <= t_max, got t_min {t_min} K, t_max {t_max} K")
    if np.ndim(mesh) == 0 and not (np.isfinite(mesh) and mesh > 0):
        raise OptionError(f"mesh as a sampling length must be above 0 Å, got {mesh!r}")
    if np.ndim(mesh) != 0 and (np.shape(mesh) != (3,) or np.any(np.asarray(mesh) < 1)):
        raise OptionError(f"mesh must be 3 whole numbers >= 1 or a length in Å, got {mesh!r}")
    for name, value in {"band_points": (band_points, 2), "batch_size": (batch_size, 1)}.items():
        if isinstance(value[0], bool) or not isinstance(value[0], (int, np.integer)) or value[0] < value[1]:
            raise OptionError(f"{name} must be a whole number >= {value[1]}, got {value[0]!r}")


def imaginary_warning(result: PhononResult) -> str:
    return (f"imaginary modes: the lowest frequency is {result.min_frequency_THz:.3g} THz (below "
            f"-{result.imaginary_tolerance_THz:g} THz). The structure may not be at a minimum (relax it first, "
            "with the cell) or may be dynamically unstable; a larger supercell can also help.")


def _displaced(atoms: Atoms, matrix: np.ndarray, displacement: float, primitive):
    phonopy = optional("phonopy")
    from phonopy.structure.atoms import PhonopyAtoms

    unitcell = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                            scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())
    with warnings.catch_warnings():  # "auto" is our explicit choice, not phonopy 3's default
        warnings.filterwarnings("ignore", message="primitive_matrix defaulted to 'auto'")
        ph = phonopy.Phonopy(unitcell, supercell_matrix=matrix, primitive_matrix=primitive)
    ph.generate_displacements(distance=displacement)
    return ph


def _supercell_forces(model: Model, ph, charge_per_atom: float, batch_size: int, progress: bool) -> np.ndarray:
    """Forces of every displaced supercell; each carries the unit cell's charge times its size."""
    cells = [Atoms(c.symbols, cell=c.cell, scaled_positions=c.scaled_positions, pbc=True)
             for c in ph.supercells_with_displacements]
    forces = []
    with progress_bar(len(cells), "phonons", progress, unit="supercell") as bar:
        for start in range(0, len(cells), batch_size):
            chunk = cells[start:start + batch_size]
            charges = [charge_per_atom * len(cell) for cell in chunk]
            forces += [out["forces"].astype(float) for out in model.compute(chunk, charges, stress=False)]
            bar.update(len(chunk))
    return np.array(forces)


def band_path(cell: np.ndarray, points: int) -> tuple[list[np.ndarray], list[str], list[bool]]:
    """ASE's special-point path for ``cell``: q-point segments (reduced), labels, connections."""
    from ase.cell import Cell
    from ase.dft.kpoints import parse_path_string

    path = Cell(cell).bandpath(npoints=0)
    segments, labels, connections = [], [], []
    for group in (g for g in parse_path_string(path.path) if len(g) > 1):
        for a, b in zip(group[:-1], group[1:]):
            segments.append(np.linspace(path.special_points[a], path.special_points[b], points))
            connections.append(True)
        connections[-1] = False
        labels += ["Γ" if name == "G" else name for name in group]
    return segments, labels, connections


def _band_structure(ph, points: int) -> dict:
    segments, labels, connections = band_path(ph.primitive.cell, points)
    ph.run_band_structure(segments, path_connections=connections, labels=labels)
    bands = ph.band_structure
    return {"distances": [np.asarray(d) for d in bands.distances],
            "frequencies": [np.asarray(f) for f in bands.frequencies],
            "labels": labels, "connections": connections}


def _dos(ph) -> dict:
    return {"frequency_THz": ph.total_dos.frequency_points, "dos": ph.total_dos.dos}


def _thermal(ph) -> dict:
    t = ph.thermal_properties
    return {"temperature_K": t.temperatures, "free_energy_kJ_per_mol": t.free_energy,
            "entropy_J_per_K_mol": t.entropy, "heat_capacity_J_per_K_mol": t.heat_capacity}


def _min_frequency(ph, band: dict) -> float:
    mesh = ph.mesh.frequencies
    return float(min(np.min(mesh), *(np.min(f) for f in band["frequencies"])))


def plot_band(band: dict, path: Path) -> None:
    """The band structure as a PNG (matplotlib's object API: no pyplot, no global backend)."""
    figure = optional("matplotlib.figure")
    fig = figure.Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for distances, frequencies in zip(band["distances"], band["frequencies"]):
        ax.plot(distances, frequencies, color="C0", lw=1)
    ticks, names = _ticks(band)
    ax.set_xticks(ticks, names)
    for tick in ticks:
        ax.axvline(tick, color="0.8", lw=0.5)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylabel("frequency (THz)")
    fig.savefig(path, dpi=120)


def _ticks(band: dict) -> tuple[list[float], list[str]]:
    labels = iter(band["labels"])
    ticks, names = [float(band["distances"][0][0])], [next(labels)]
    for distances, connected in zip(band["distances"], band["connections"]):
        ticks.append(float(distances[-1]))
        name = next(labels)
        following = None if connected else next(labels, None)
        names.append(name if following is None else f"{name}|{following}")
    return ticks, names


def _write_csv(path: Path, columns: dict) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(zip(*(np.asarray(v).tolist() for v in columns.values())))


def _write_band_csv(band: dict, path: Path) -> None:
    nbands = band["frequencies"][0].shape[1]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["segment", "distance", *(f"band{i + 1}_THz" for i in range(nbands))])
        for i, (d, f) in enumerate(zip(band["distances"], band["frequencies"])):
            writer.writerows([i, x, *row] for x, row in zip(d.tolist(), f.tolist()))
