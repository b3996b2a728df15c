"""Figure 6: OpenMM (PythonForce; TorchForce where openmm-torch imports) vs the ASE path,
same model file, steps/s.

Run: /work/bench-venv/bin/python benchmarks/openmm_speed.py --threads 2

OpenMM: ``nnpcalc.openmm.create_system`` + ``VerletIntegrator`` (1 fs), Reference platform
(the model is the whole force field); ASE: ``NNPCalculator`` + ``VelocityVerlet`` (1 fs).
Interleaved in ``--rounds`` rounds of ``--steps`` steps; medians per step.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def options(parser):
    parser.add_argument("--workloads", nargs="+", default=["ethanol", "water192", "cu256"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)


def openmm_runner(atoms, kind, threads):
    import openmm
    import openmm.unit as u

    from nnpcalc.openmm import create_system

    setup = create_system(atoms, str(C.nnpcalc_model_file()), kind=kind, threads=threads)
    integrator = openmm.VerletIntegrator(1.0 * u.femtosecond)
    context = openmm.Context(setup.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(setup.positions)
    context.setVelocitiesToTemperature(300 * u.kelvin, 1)
    integrator.step(2)
    return lambda: (context, integrator.step(1))  # the closure keeps the Context alive


def ase_runner(atoms, threads):
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = C.nnpcalc_calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(2)
    return lambda: dyn.run(1)


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    from nnpcalc.openmm.forces import _openmmtorch

    kinds = ["python"] + (["torch"] if _openmmtorch() is not None else [])
    if len(kinds) == 1:
        print("# TorchForce not measured: openmmtorch does not import (no openmm-torch build for torch 2.13)")
    rows = []
    for wname in args.workloads:
        atoms = C.WORKLOADS[wname]()
        runners = {"ASE VelocityVerlet": ase_runner(atoms, args.threads)}
        for kind in kinds:
            runners[f"OpenMM {kind.capitalize()}Force"] = openmm_runner(atoms, kind, args.threads)
        times = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                times[name] += C.timed(run, args.steps)
        ase_t = C.median(times["ASE VelocityVerlet"])
        for name, t in times.items():
            rows.append([wname, len(atoms), name, 1 / C.median(t), ase_t / C.median(t)])
    print(f"\n## OpenMM vs ASE, same model file (TensorNet 128x2 float32), threads = {args.threads}")
    print(C.table(rows, ["workload", "atoms", "path", "steps/s", "speed vs ASE"]))


if __name__ == "__main__":
    main()
