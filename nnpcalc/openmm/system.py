"""An OpenMM System + Topology for a pure-NNP simulation, from ASE atoms or a structure file.

The System has one particle per atom (masses from ASE, or from the elements of a PDB), the
periodic box, the model's force and (optionally) a ``CMMotionRemover``: nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
from ase import Atoms

from ..charge import total_charge as read_total_charge
from ..errors import InvalidChargeError
from .forces import create_force
from .topology import from_atoms


@dataclass
class OpenMMSetup:
    """What :func:`create_system` builds; ``rotation`` maps ASE's frame to OpenMM's.

    OpenMM positions are ``ase_positions @ rotation.T`` (identity for molecules, PDB files and
    cells already lower-triangular, as ``ase.build`` makes them); forces rotate back with
    ``openmm_forces @ rotation``.
    """

    system: openmm.System
    topology: app.Topology
    positions: unit.Quantity
    rotation: np.ndarray
    force: openmm.Force


def create_system(
    source,
    model=None,
    *,
    total_charge: float | None = None,
    kind: str = "auto",
    dtype: str = "float32",
    device: str = "cpu",
    threads: int | None = 1,
    remove_cm_motion: bool = True,
) -> OpenMMSetup:
    """A System where the model computes every interaction.

    Args:
        source: ASE atoms, or a structure file: ``.pdb`` is read by OpenMM (residues and box
            from CRYST1 kept), anything else by ``ase.io.read``.
        model: model file, shipped model name, loaded :class:`nnpcalc.Model` or None (default).
        total_charge: e; None reads the atoms' charge (:func:`nnpcalc.charge.total_charge`; 0 for a PDB).
        kind, dtype, device, threads: as in :func:`nnpcalc.openmm.create_force`.
        remove_cm_motion: add a ``CMMotionRemover`` (3 fewer degrees of freedom).
    """
    topology, positions, masses, rotation, charge = _read(source)
    charge = charge if total_charge is None else float(total_charge)
    if not np.isfinite(charge):
        raise InvalidChargeError(f"total_charge is {charge}; give a finite charge in e (e.g. 0)")
    force = create_force(model, topology, total_charge=charge, kind=kind, dtype=dtype,
                         device=device, threads=threads)
    system = openmm.System()
    for mass in masses:
        system.addParticle(mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    system.addForce(force)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return OpenMMSetup(system, topology, positions, rotation, force)


def _read(source):
    """(topology, positions nm, masses, rotation, total charge) of atoms or a file."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".pdb":
        pdb = app.PDBFile(str(source))
        # a particle without an element gets mass 0 here; create_force refuses it by name
        masses = [a.element.mass if a.element else 0.0 * unit.dalton for a in pdb.topology.atoms()]
        return pdb.topology, pdb.getPositions(asNumpy=True), masses, np.eye(3), 0.0
    if isinstance(source, (str, Path)):
        from ase.io import read

        source = read(source)
    if not isinstance(source, Atoms):
        raise TypeError(f"source must be ase.Atoms or a structure file path, got {type(source).__name__}")
    topology, positions, rotation = from_atoms(source)
    masses = [float(m) * unit.dalton for m in source.get_masses()]
    return topology, positions, masses, rotation, read_total_charge(source)
