"""The compiled program in slots (2-thread kernels) against the 1-thread compiled program, the
TorchScript file and EMT, for one model file: MD steps/s through ASE on an fcc Cu supercell.

Run: .venv/bin/python benchmarks/slots_md.py --threads 2 --model models/metals-emt.pt
     (builds both compiled programs into the cache first when missing: minutes)

Engines are interleaved round by round (VelocityVerlet, 1 fs, 300 K start; medians); energies of
the first step are printed, to show every engine evaluates the same model.
"""

from __future__ import annotations

import statistics
import time

import _common as C


def options(parser):
    parser.add_argument("--model", default="models/metals-emt.pt")
    parser.add_argument("--atoms", type=int, default=256, help="Cu fcc supercell size (256, 864, ...)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="MD steps per engine per round")


def engines(args) -> dict:
    from nnpcalc import Model, NNPCalculator, artifacts

    built = Model(args.model, dtype=args.dtype, artifact="compiled")  # builds both programs when missing
    if built.parallel_program is None:
        raise SystemExit(f"{args.model} has no program in slots (see nnpcalc.exported.slots_possible)")
    serial = Model(args.model, dtype=args.dtype, artifact="auto")
    serial.parallel_program = None  # the 1-thread program serves (it does while torch has <= 2 threads)
    print(f"# programs: {built.parallel_program.path.name} ({built.parallel_program.threads} threads), "
          f"{built.program.path.name} (1 thread); artifacts.PARALLEL_THREADS = {artifacts.PARALLEL_THREADS}")
    return {
        "nnpcalc, slots (2-thread kernels)": NNPCalculator(built),
        "nnpcalc, compiled (1-thread kernels)": NNPCalculator(serial),
        "nnpcalc, TorchScript file": NNPCalculator(Model(args.model, dtype=args.dtype, artifact="torchscript")),
        "EMT": C.emt_calculator(),
    }


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    runs = {}
    for name, calc in engines(args).items():
        atoms = C.copper(args.atoms)
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        dyn = VelocityVerlet(atoms, 1 * units.fs)
        dyn.run(2)  # warm-up: first calls, allocations
        runs[name] = (atoms, dyn, [])
        print(f"# {name}: energy after warm-up {atoms.get_potential_energy():.6f} eV")
    for _ in range(args.rounds):
        for atoms, dyn, rates in runs.values():
            start = time.perf_counter()
            dyn.run(args.steps)
            rates.append(args.steps / (time.perf_counter() - start))
    best = statistics.median(runs["nnpcalc, slots (2-thread kernels)"][2])
    rows = [(name, f"{statistics.median(r):.3g}", f"{best / statistics.median(r):.2f}") for name, (_, _, r) in runs.items()]
    print(C.table(rows, ["engine", "MD steps/s", "slots ÷ engine"]))


if __name__ == "__main__":
    main()
