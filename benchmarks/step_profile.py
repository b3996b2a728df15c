"""Figure 2: where one ASE MD step of nnpcalc goes, and the host overhead.

Run: /work/bench-venv/bin/python benchmarks/step_profile.py --threads 2

Each stage of ``Model.compute`` is wrapped with a timer (input checks, numpy → tensors,
neighbour list, the model file's ``forward_batch``, tensors → numpy) and the step itself is
timed around ``VelocityVerlet.run(1)``. The model's forward and backward are split by timing
``forward_batch`` without derivatives on the same inputs, interleaved with the full call.
Host overhead = step time − ``forward_batch`` time (everything that is not the model).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def options(parser):
    parser.add_argument("--workloads", nargs="+", default=["ethanol", "water192", "cu256", "cu864"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ops", action="store_true", help="also print torch.profiler's top operators per workload")


class _Timed:
    def __init__(self, times, key, fn):
        self.times, self.key, self.fn = times, key, fn

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.times[self.key] += time.perf_counter() - t0
        return out


class _ModuleProxy:
    def __init__(self, module, times):
        self._module, self.forward_batch = module, _Timed(times, "model forward+backward", module.forward_batch)

    def __getattr__(self, name):
        return getattr(self._module, name)


def profile(wname, args):
    import numpy as np
    import torch
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    import nnpcalc.runtime as runtime

    calc = C.nnpcalc_calculator()
    model, times = calc.model, defaultdict(float)
    atoms = C.WORKLOADS[wname]()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(3)  # warm-up
    model.check = _Timed(times, "input checks", model.check)
    model._batch_inputs = _Timed(times, "numpy → tensors", model._batch_inputs)
    runtime.neighbor_graph, nl = _Timed(times, "neighbour list", runtime.neighbor_graph), runtime.neighbor_graph
    runtime._split, split = _Timed(times, "tensors → numpy", runtime._split), runtime._split
    model.module, module = _ModuleProxy(model.module, times), model.module
    steps, forward_only = [], []
    try:
        for _ in range(args.steps):
            t0 = time.perf_counter()
            dyn.run(1)
            steps.append(time.perf_counter() - t0)
            inputs = model._batch_inputs.fn([atoms], None, None)
            graph = nl(inputs[0], inputs[2], inputs[3], inputs[5], model.cutoff, model.neighbors)
            with model._calling(graph[0].shape[1]):  # as Model.compute calls: same threads
                t0 = time.perf_counter()
                module.forward_batch(*inputs, *graph, compute_forces=False, compute_stress=False)
                forward_only.append(time.perf_counter() - t0)
    finally:
        runtime.neighbor_graph, runtime._split, model.module = nl, split, module
    if args.ops:
        from torch.profiler import profile as torch_profile

        with torch_profile() as prof:
            dyn.run(1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    n = args.steps
    step = C.median(steps)
    mean_step = sum(steps) / n
    parts = {k: v / n for k, v in times.items()}
    model_t = parts["model forward+backward"]
    fwd = min(C.median(forward_only), model_t)
    compute = sum(parts.values())
    rows = [
        ["input checks", parts["input checks"]], ["numpy → tensors", parts["numpy → tensors"]],
        ["neighbour list", parts["neighbour list"]], ["model forward", fwd],
        ["model backward (forces, stress)", model_t - fwd], ["tensors → numpy", parts["tensors → numpy"]],
        ["ASE, calculator, Python", mean_step - compute],
    ]
    del torch
    return step, mean_step, model_t, [[wname, len(atoms), name, t * 1e3, 100 * t / mean_step] for name, t in rows]


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    rows, summary = [], []
    for wname in args.workloads:
        step, mean_step, model_t, part_rows = profile(wname, args)
        rows += part_rows
        summary.append([wname, part_rows[0][1], step * 1e3, model_t * 1e3, 100 * (mean_step - model_t) / mean_step])
        print(C.table(part_rows, ["workload", "atoms", "stage", "ms per step", "% of step"]), flush=True)
    print("\n## Where an MD step goes (nnpcalc, ASE VelocityVerlet), threads =", args.threads)
    print(C.table(rows, ["workload", "atoms", "stage", "ms per step", "% of step"]))
    print("\n## Host overhead (step − model call)")
    print(C.table(summary, ["workload", "atoms", "median step ms", "model call ms", "host overhead %"]))


if __name__ == "__main__":
    main()
