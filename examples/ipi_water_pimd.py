"""i-PI path-integral MD of a water molecule, forces from a model file through i-PI's own driver.

    .venv/bin/python examples/ipi_water_pimd.py [--model hcno-gfn2] [--beads 8] [--steps 20] [--outdir DIR]

Needs the `ipi` extra (`pip install 'nnpcalc[ipi]'`, i-PI 3.3). This script does what you would
do in two shells: `i-pi input.xml`, then
`i-pi-py_driver -m custom -P "$(python -m nnpcalc.ipi_driver)" -u -a nnp -o template=...,model=...`.
They talk over a unix socket in the output folder; i-PI stops after `--steps` and tells the driver.
Outputs (in DIR): sim.out (bead-averaged potential), sim.pos_*/sim.frc_* (each bead, extxyz).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ase.build import molecule
from ase.io import write

from nnpcalc import ipi_driver

BIN = Path(sys.executable).parent  # i-pi and i-pi-py_driver live beside this Python
INPUT = """<simulation verbosity='low' sockets_prefix='{prefix}' safe_stride='100'>
  <output prefix='sim'>
    <properties stride='1' filename='out'> [ step, time{{femtosecond}}, temperature{{kelvin}}, potential{{electronvolt}} ] </properties>
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


def write_inputs(outdir: Path, beads: int, steps: int):
    """i-PI's input and starting structure, and the driver's template (a molecule: no pbc)."""
    water = molecule("H2O")
    atoms = "".join(f"{s} {x:.15f} {y:.15f} {z:.15f}\n" for s, (x, y, z) in zip(water.symbols, water.positions))
    (outdir / "init.xyz").write_text(
        f"{len(water)}\n# CELL(abcABC): 20.0 20.0 20.0 90.0 90.0 90.0 positions{{angstrom}} cell{{angstrom}}\n" + atoms)
    write(outdir / "template.xyz", water)
    (outdir / "input.xml").write_text(INPUT.format(prefix=f"{outdir}/", steps=steps, beads=beads))


def main(model="hcno-gfn2", beads=8, steps=20, outdir=None, timeout_s=600):
    """Run i-PI and the driver to the end; returns the output folder."""
    outdir = Path(outdir or tempfile.mkdtemp(prefix="ipi-water-")).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    write_inputs(outdir, beads, steps)
    (outdir / "nnp").unlink(missing_ok=True)  # a socket left by an earlier run
    server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=outdir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        wait_for_socket(outdir / "nnp", server)
        driver = subprocess.Popen(
            [str(BIN / "i-pi-py_driver"), "-m", "custom", "-P", ipi_driver.__file__, "-u", "-a", "nnp",
             "-S", f"{outdir}/", "-o", f"template=template.xyz,model={model}"],
            cwd=outdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        log, _ = server.communicate(timeout=timeout_s)
        driver_log, _ = driver.communicate(timeout=60)
    finally:
        for process in (server, driver):
            if process is not None and process.poll() is None:
                process.kill()
    if server.returncode != 0 or "Traceback" in log or driver.returncode != 0:
        raise RuntimeError(f"i-PI or the driver failed:\n{log}\n{driver_log}")
    last = (outdir / "sim.out").read_text().splitlines()[-1].split()
    print(f"{beads} beads, {steps} steps: T = {float(last[2]):.0f} K, <V> = {float(last[3]):.4f} eV; outputs in {outdir}")
    return outdir


def wait_for_socket(socket: Path, server: subprocess.Popen, seconds: float = 120.0) -> None:
    """Until i-PI has opened its socket (it exits on a bad input instead)."""
    deadline = time.monotonic() + seconds
    while not socket.exists():
        if server.poll() is not None:
            raise RuntimeError(f"i-PI exited before opening {socket}:\n{server.communicate()[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"i-PI did not open {socket} within {seconds} s")
        time.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hcno-gfn2", help="model file or shipped model knowing H and O")
    parser.add_argument("--beads", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--outdir", default=None, help="output folder (default: a new temporary one)")
    args = parser.parse_args()
    main(args.model, args.beads, args.steps, args.outdir)
