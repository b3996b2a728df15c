"""Figure 1: MD steps/s through ASE (VelocityVerlet, 1 fs) and single-point latency, vs peers.

Run (both thread counts are reported in docs/benchmarks.md):
    /work/bench-venv/bin/python benchmarks/md_speed.py --threads 2
    /work/bench-venv/bin/python benchmarks/md_speed.py --threads 1 --workloads cu256 water192

Engines are interleaved (A B C ... A B C ...) in ``--rounds`` rounds; each round times
``steps`` MD steps of every engine one by one (steps chosen so a round costs about
``--budget-s`` per engine). Medians over all timed steps. Single point = energy + forces
(+ stress where the engine has it) on a fresh calculation, also interleaved.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def _nnpcalc_artifact(artifact: str):
    """nnpcalc with one artifact: "torchscript" (the model file) or "compiled" (AOTInductor; built
    into the cache on first use, minutes). The plain "nnpcalc" engine takes a cached compiled
    program when there is one (``artifact="auto"``, as ``nnp``)."""
    def make():
        from nnpcalc import Model, NNPCalculator

        return NNPCalculator(Model(str(C.nnpcalc_model_file("float32")), artifact=artifact))
    return make


C.ENGINES.setdefault("nnpcalc-torchscript", _nnpcalc_artifact("torchscript"))
C.ENGINES.setdefault("nnpcalc-compiled", _nnpcalc_artifact("compiled"))


def options(parser):
    parser.add_argument("--workloads", nargs="+", default=["cu256", "cu864", "water192", "water1536", "ethanol"])
    parser.add_argument("--engines", nargs="+", default=[e for e in C.ENGINES if not e.startswith("nnpcalc-")])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=2.0, help="seconds of MD per engine per round")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--reference", default="nnpcalc", help="the engine the ratios divide by")


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    import os

    print(f"# load average at start: {os.getloadavg()}", flush=True)
    import numpy as np
    from ase import units
    from ase.calculators.calculator import all_changes
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    engines = C.make_engines(args.engines)
    rows, ratio_rows = [], []
    for wname in args.workloads:
        runs = {}
        for name, calc in engines.items():
            atoms = C.WORKLOADS[wname]()
            MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
            atoms.calc = calc
            dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
            try:
                t0 = time.perf_counter()
                dyn.run(1)  # first force call + one step: warm-up (not timed)
                first = time.perf_counter() - t0
                dyn.run(1)
            except Exception as err:  # noqa: BLE001 - a peer that cannot run a workload is reported
                print(f"# {name} on {wname}: fails ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
                continue
            steps = max(1, min(args.max_steps, round(args.budget_s / max(first / 2, 1e-4))))
            runs[name] = {"atoms": atoms, "dyn": dyn, "steps": steps, "md": [], "sp": []}
        props = ["energy", "forces", "stress"]
        for _ in range(args.rounds):
            for name, run in runs.items():
                run["md"] += C.timed(lambda: run["dyn"].run(1), run["steps"])
            for name, run in runs.items():
                calc, atoms = engines[name], run["atoms"]
                want = [p for p in props if p in calc.implemented_properties and (p != "stress" or atoms.pbc.any())]
                run["sp"] += C.timed(lambda: calc.calculate(atoms, want, all_changes), 2)
        n = len(C.WORKLOADS[wname]())
        ref = runs.get(args.reference)
        for name, run in runs.items():
            md, sp = C.median(run["md"]), C.median(run["sp"])
            rows.append([wname, n, name, 1 / md, sp * 1e3, len(run["md"])])
            if ref and name != args.reference:
                ratio_rows.append([wname, name, md / C.median(ref["md"]), sp / C.median(ref["sp"])])
        print(C.table(rows[-len(runs):], ["workload", "atoms", "engine", "MD steps/s", "single point ms", "steps timed"]), flush=True)
    print("\n## MD steps/s and single-point latency, threads =", args.threads)
    print(C.table(rows, ["workload", "atoms", "engine", "MD steps/s", "single point ms", "steps timed"]))
    print(f"\n## {args.reference} speed-up over each engine (its time / {args.reference}'s; > 1: {args.reference} is faster)")
    print(C.table(ratio_rows, ["workload", "peer", "MD ratio", "single-point ratio"]))


if __name__ == "__main__":
    main()
    print(f"# load average at end: {__import__('os').getloadavg()}")
