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


INPUT = """<simulation verbosity='low' sockets_prefix='{prefix}' floatformat='%.15e' safe_stride='100'>
  <output prefix='sim'>
    <properties stride='1' filename='out'> [ step, potential{{electronvolt}} ] </properties>
    <trajectory filename='pos' stride='1' format='ase'> positions{{ase}} </trajectory>
    <trajectory filename='frc' stride='1' format='ase'> forces{{ase}} </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>12345</seed></prng>
  <ffsocket name='nnp' mode='unix' pbc='false'><address>nnp</address><latency>1e-4</latency></ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz' units='angstrom'>init.xyz</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='nnp'/></forces>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'>0.25</timestep>
        <thermostat mode='pile_l'><tau units='femtosecond'>100</tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
"""


def read_ipi_trajectory(path: Path, quantity: str) -> list[np.ndarray]:
    """Frames [N,3] of an i-PI trajectory written with format='ase' (extxyz, 8 decimals); ASE's
    reader files a column named ``forces`` as calculator results."""
    frames = read(path, index=":", format="extxyz")
    return [frame.get_forces() if quantity == "forces" else frame.positions for frame in frames]


@pytest.mark.slow  # ~10-25 s: i-PI and the driver each start Python and load the model
def test_pimd_over_a_unix_socket_agrees_with_direct_calls(tmp_path):
    """4-bead PIMD of a water molecule, 3 steps: every bead's forces as the ASE calculator's."""
    water, beads, steps = molecule("H2O"), 4, 3
    (tmp_path / "init.xyz").write_text(
        f"3\n# CELL(abcABC): 20.0 20.0 20.0 90.0 90.0 90.0 positions{{angstrom}} cell{{angstrom}}\n"
        + "".join(f"{s} {x:.15f} {y:.15f} {z:.15f}\n" for s, (x, y, z) in zip(water.symbols, water.positions))
    )
    write(tmp_path / "template.xyz", water)
    prefix = f"{tmp_path}/"
    (tmp_path / "input.xml").write_text(INPUT.format(prefix=prefix, steps=steps, beads=beads))
    server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        _wait_for(tmp_path / "nnp", server)
        driver = subprocess.Popen(
            [str(BIN / "i-pi-py_driver"), "-m", "custom", "-P", ipi_driver.__file__, "-u", "-a", "nnp",
             "-S", prefix, "-o", "template=template.xyz,model=hcno-gfn2"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        output, _ = server.communicate(timeout=180)  # i-PI stops after total_steps and tells the driver
        driver_output, _ = driver.communicate(timeout=30)
    finally:
        for process in (server, driver):
            if process is not None and process.poll() is None:
                process.kill()
    assert server.returncode == 0 and "Traceback" not in output, output
    assert driver.returncode == 0, driver_output
    calc = NNPCalculator("hcno-gfn2", dtype="float64")
    energies = np.zeros((beads, steps + 1))
    for bead in range(beads):
        positions = read_ipi_trajectory(tmp_path / f"sim.pos_{bead}.extxyz", "positions")
        forces = read_ipi_trajectory(tmp_path / f"sim.frc_{bead}.extxyz", "forces")
        assert len(positions) == len(forces) == steps + 1
        for step, (x, f) in enumerate(zip(positions, forces)):
            atoms = water.copy()
            atoms.positions = x
            atoms.calc = calc
            np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-6)  # 8 decimals in the files
            energies[bead, step] = atoms.get_potential_energy()
    potential = np.loadtxt(tmp_path / "sim.out", ndmin=2)[:, 1]  # i-PI's bead average, eV
    np.testing.assert_allclose(potential, energies.mean(axis=0), atol=1e-5)
    assert np.ptp(energies[:, -1]) > 1e-4  # the beads have spread: a real PIMD, not one structure


def _wait_for(socket: Path, server: subprocess.Popen, seconds: float = 60.0) -> None:
    """Until i-PI has opened its socket (it exits on a bad input instead)."""
    import time

    deadline = time.monotonic() + seconds
    while not socket.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"i-PI did not open {socket}: {server.communicate()[0] if server.poll() is not None else 'timeout'}")
        time.sleep(0.1)


def test_driver_path_is_printed():
    out = subprocess.run([sys.executable, "-m", "nnpcalc.ipi_driver"], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == Path(ipi_driver.__file__)
    assert shutil.which("i-pi-py_driver", path=str(BIN)) and os.access(ipi_driver.__file__, os.R_OK)
