"""Figure 3: per-atom cost from ~1k to 32k atoms (O(N) or not) and peak memory.

Run: /work/bench-venv/bin/python benchmarks/scaling.py --threads 2

Cu fcc cubic supercells (4 n³ atoms), cutoff 5 Å, energy + forces + stress through
``NNPCalculator`` (float32). Each size runs in its own process (so its peak RSS is its own),
capped at ``--memory-gb`` of address space; one warm-up call, then ``--calls`` timed calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
import torch
torch.set_num_threads({threads})
import _common as C
from ase.calculators.calculator import all_changes
atoms = C.copper({n})
calc = C.ENGINES[{engine!r}]()
props = [p for p in ("energy", "forces", "stress") if p in calc.implemented_properties]
base = C.peak_rss_mb()
t0 = time.perf_counter(); calc.calculate(atoms, props, all_changes); first = time.perf_counter() - t0
times = C.timed(lambda: calc.calculate(atoms, props, all_changes), {calls})
print(json.dumps({{"first": first, "call": C.median(times), "rss": C.peak_rss_mb(), "base": base}}))
"""


def options(parser):
    parser.add_argument("--sizes", nargs="+", type=int, default=[1372, 4000, 8788, 16384, 32000])
    parser.add_argument("--engines", nargs="+", default=["nnpcalc"])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--memory-gb", type=float, default=20.0)


def run(n, engine, args):
    import resource

    limit = int(args.memory_gb * 2**30)
    code = CHILD.format(here=str(Path(__file__).resolve().parent), threads=args.threads, n=n,
                        engine=engine, calls=args.calls)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1][:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    rows = []
    for engine in args.engines:
        first_per_atom = None
        for n in args.sizes:
            r = run(n, engine, args)
            if "error" in r:
                rows.append([engine, n, float("nan"), float("nan"), float("nan"), float("nan"), r["error"]])
                print(rows[-1], flush=True)
                continue
            per_atom = r["call"] / n * 1e6
            first_per_atom = first_per_atom or per_atom
            rows.append([engine, n, r["call"], per_atom, per_atom / first_per_atom, r["rss"] / 1024, ""])
            print(rows[-1], flush=True)
    print(f"\n## Per-atom cost and peak memory (Cu fcc, cutoff 5 Å, E+F+S), threads = {args.threads}")
    print(C.table(rows, ["engine", "atoms", "s per call", "µs per atom", "per-atom vs smallest", "peak RSS GB", "note"]))


if __name__ == "__main__":
    main()
