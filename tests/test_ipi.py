"""i-PI: nnpcalc's driver under i-PI's own `i-pi-py_driver -m custom`, molecules and cells."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

from nnpcalc import NNPCalculator
from nnpcalc.systems import water_box

pytest.importorskip("ipi", reason="i-PI is in the test extra (nnpcalc[ipi])")
from nnpcalc import ipi_driver  # noqa: E402

from ipi.utils.units import unit_to_internal, unit_to_user  # noqa: E402  (i-PI's own constants)

BIN = Path(sys.executable).parent


def to_bohr(x):
    return unit_to_internal("length", "angstrom", np.asarray(x))


def from_ipi(energy, forces, virial):
    """(eV, eV/Å, eV) from i-PI's atomic units."""
    ev = lambda value: unit_to_user("energy", "electronvolt", value)  # noqa: E731
    return ev(energy), unit_to_user("force", "ev/ang", forces), ev(virial)


def driver_for(atoms, tmp_path, **kwargs):
    write(tmp_path / "template.xyz", atoms)
    return ipi_driver.NNPDriver(str(tmp_path / "template.xyz"), model="hcno-gfn2", **kwargs)


def ipi_cell(atoms):
    """i-PI's cell: lattice vectors as columns, in bohr."""
    return to_bohr(atoms.cell.array.T)


def test_molecule_has_zero_virial_and_ase_forces(tmp_path):
    water = molecule("H2O")
    energy, forces, virial = from_ipi(*driver_for(water, tmp_path).compute(np.eye(3) * 20, to_bohr(water.positions))[:3])
    water.calc = NNPCalculator("hcno-gfn2", dtype="float64")
    assert energy == pytest.approx(water.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(forces, water.get_forces(), atol=1e-10)
    assert np.all(virial == 0.0) and virial.shape == (3, 3)


def test_periodic_cell_virial_is_minus_stress_times_volume(tmp_path):
    box = water_box()
    box.info["charge"] = 0.0
    driver = driver_for(box, tmp_path)
    energy, forces, virial = from_ipi(*driver.compute(ipi_cell(box), to_bohr(box.positions))[:3])
    box.calc = NNPCalculator("hcno-gfn2", dtype="float64")
    np.testing.assert_allclose(np.reshape(virial, (3, 3)), -box.get_stress(voigt=False) * box.get_volume(), atol=1e-10)
    np.testing.assert_allclose(forces, box.get_forces(), atol=1e-10)
    assert energy == pytest.approx(box.get_potential_energy(), abs=1e-9)


def test_has_stress_false_gives_a_zero_virial_i_pi_accepts(tmp_path):
    box = water_box()
    virial = driver_for(box, tmp_path, has_stress=False).compute(ipi_cell(box), to_bohr(box.positions))[2]
    assert np.shape(virial) == (3, 3) and not np.any(virial)


def test_charge_option_reaches_the_model(tmp_path):
    ion = molecule("CH3OH")
    energy = from_ipi(*driver_for(ion, tmp_path, charge=1)(np.eye(3) * 20, to_bohr(ion.positions))[:3])[0]
    ion.info["charge"] = 1.0
    ion.calc = NNPCalculator("hcno-gfn2", dtype="float64")
    assert energy == pytest.approx(ion.get_potential_energy(), abs=1e-10)


def read_ipi_trajectory(path: Path, quantity: str) -> list[np.ndarray]:
    """Frames [N,3] of an i-PI trajectory written with format='ase' (extxyz, 8 decimals); ASE's
    reader files a column named ``forces`` as calculator results."""
    frames = read(path, index=":", format="extxyz")
    return [frame.get_forces() if quantity == "forces" else frame.positions for frame in frames]


@pytest.mark.slow  # ~10-45 s: i-PI and the driver each start Python and load the model
def test_pimd_over_a_unix_socket_agrees_with_direct_calls(tmp_path):
    """examples/ipi_water_pimd.py, 4 beads, 3 steps: every bead's forces as the ASE calculator's."""
    import runpy

    beads, steps = 4, 3
    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "ipi_water_pimd.py"))
    outdir = example["main"]("hcno-gfn2", beads=beads, steps=steps, outdir=tmp_path, timeout_s=300)
    water, calc = molecule("H2O"), NNPCalculator("hcno-gfn2", dtype="float64")
    energies = np.zeros((beads, steps + 1))
    for bead in range(beads):
        positions = read_ipi_trajectory(outdir / f"sim.pos_{bead}.extxyz", "positions")
        forces = read_ipi_trajectory(outdir / f"sim.frc_{bead}.extxyz", "forces")
        assert len(positions) == len(forces) == steps + 1
        for step, (x, f) in enumerate(zip(positions, forces)):
            atoms = water.copy()
            atoms.positions = x
            atoms.calc = calc
            np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-6)  # 8 decimals in the files
            energies[bead, step] = atoms.get_potential_energy()
    potential = np.loadtxt(outdir / "sim.out", ndmin=2)[:, 3]  # i-PI's bead average, eV
    np.testing.assert_allclose(potential, energies.mean(axis=0), atol=1e-5)
    assert np.ptp(energies[:, -1]) > 1e-4  # the beads have spread: a real PIMD, not one structure


def test_driver_path_is_printed():
    out = subprocess.run([sys.executable, "-m", "nnpcalc.ipi_driver"], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == Path(ipi_driver.__file__)
    assert shutil.which("i-pi-py_driver", path=str(BIN)) and os.access(ipi_driver.__file__, os.R_OK)
