"""Figure 2: where one ASE MD step of nnpcalc goes, and the host overhead.

Run: /work/bench-venv/bin/python benchmarks/step_profile.py --threads 2
     .venv/bin/python benchmarks/step_profile.py --threads 1 --model default --workloads ethanol \
         --dtype float32 float64 --artifact torchscript compiled      # figure 2b (small systems)

Each stage of one ``VelocityVerlet.run(1)`` is wrapped with a timer: ASE's ``check_state``,
the calculator (``Calculator.calculate``'s atoms copy, charge, stress decision), the runtime's
input checks, numpy → tensors, neighbour list, overlap check (one-structure calls: the kept
constants and the skin list with the overlap check on its pair lengths), the model call (TorchScript file
or exported/compiled program), tensors → numpy, storing results; ``--watch`` also times
``nnp md``'s per-step check (``md_watch.why_stop``). The rest of the step (ASE's integrator,
Python glue, the thread context) is "ASE integrator, Python". With the TorchScript file the
model call is split into forward and backward by timing ``forward_batch`` without derivatives
on the same inputs, interleaved with the full call.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

#: (label, module path, attribute): the stages timed, none inside another
STAGES = [
    ("ASE check_state", "nnpcalc.calculator:NNPCalculator", "check_state"),
    ("ASE atoms copy (Calculator.calculate)", "ase.calculators.calculator:Calculator", "calculate"),
    ("input checks", "nnpcalc.runtime:Model", "check"),
    ("input checks", "nnpcalc.runtime:Model", "_kept_constants"),  # one-structure path: kept constants
    ("neighbour list + overlap check", "nnpcalc.runtime:Model", "_one_graph"),  # one-structure path: skin list
    ("numpy → tensors", "nnpcalc.runtime:Model", "_batch_inputs"),
    ("neighbour list", "nnpcalc.runtime", "neighbor_graph"),
    ("overlap check", "nnpcalc.validation", "check_overlaps"),
    ("model call", "nnpcalc.runtime:Model", "_forward"),
    ("tensors → numpy", "nnpcalc.runtime", "_split"),
    ("store results", "nnpcalc.calculator:NNPCalculator", "store"),
    ("nnp md check (why_stop)", "nnpcalc.workflows.md_watch", "why_stop"),
]


def options(parser):
    parser.add_argument("--workloads", nargs="+", default=["ethanol", "water192", "cu256", "cu864"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default=None,
                        help="nnpcalc model file or shipped name ('default': the shipped default); "
                        "omitted: the TensorNet 128x2 benchmark model")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float64"])
    parser.add_argument("--artifact", nargs="+", default=["torchscript"], choices=["torchscript", "compiled", "exported"])
    parser.add_argument("--watch", action="store_true", help="also run nnp md's per-step check after every step")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: this thread's CPU time (a loaded machine's waits for a core are not counted); wall")
    parser.add_argument("--ops", action="store_true", help="also print torch.profiler's top operators per workload")


def _target(path: str):
    import importlib

    module, _, cls = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, cls) if cls else obj


#: the clock of every timing (``--clock``): on a machine loaded beyond its cores, a process waits
#: for a core for several ms within most steps, which wall time would count in whatever stage it hit
CLOCK = time.perf_counter


class _Timer:
    """Wraps the stages' functions; a stage called inside another counts for the outer one only."""

    def __init__(self):
        self.times, self.depth, self._saved = defaultdict(float), 0, []

    def wrap(self, label, owner, attribute):
        if not hasattr(owner, attribute):  # a stage of another version of the runtime
            return
        fn = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
        timer = self

        def timed(*args, **kwargs):
            timer.depth += 1
            t0 = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = CLOCK() - t0
                timer.depth -= 1
                if timer.depth == 0:  # a stage inside another counts for the outer one
                    timer.times[label] += elapsed
        self._saved.append((owner, attribute, fn))
        setattr(owner, attribute, timed)

    def restore(self):
        for owner, attribute, fn in reversed(self._saved):
            setattr(owner, attribute, fn)
        self._saved.clear()


def _calculator(args, dtype, artifact):
    import warnings

    from nnpcalc import NNPCalculator

    if args.model is None:
        return C.nnpcalc_calculator(dtype)  # the benchmark model: TorchScript file
    from nnpcalc.runtime import Model

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would time the TorchScript file under another name
        model = Model(None if args.model == "default" else args.model, dtype=dtype, artifact=artifact)
    return NNPCalculator(model)


def profile(wname, args, dtype, artifact):
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from nnpcalc.workflows import md_watch
    from nnpcalc.workflows.md_settings import MDSettings

    calc = _calculator(args, dtype, artifact)
    model = calc.model
    atoms = C.WORKLOADS[wname]()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    settings = MDSettings(temperature_K=300.0)
    dyn.run(5)  # warm-up
    timer = _Timer()
    for label, where, attribute in STAGES:
        if label.startswith("nnp md") and not args.watch:
            continue
        timer.wrap(label, _target(where), attribute)
    steps, forward_only, per_step = [], [], defaultdict(list)
    try:
        for _ in range(args.steps):
            before = dict(timer.times)
            t0 = CLOCK()
            dyn.run(1)
            if args.watch:
                md_watch.why_stop(atoms, settings)
            steps.append(CLOCK() - t0)
            for label, total in timer.times.items():
                per_step[label].append(total - before.get(label, 0.0))
            if model.program is None:  # the file: forward alone, for the forward/backward split
                timer.depth += 1  # its inputs and graph are not part of a step
                forward_only.append(_forward_only(model, atoms))
                timer.depth -= 1
    finally:
        timer.restore()
    if args.ops:
        from torch.profiler import profile as torch_profile

        with torch_profile() as prof:
            dyn.run(1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    # medians per stage and of the step: on a shared machine a step preempted by another process
    # (several ms) would dominate a mean; the rest is the median step less the stages' medians
    step_t = C.median(steps)
    parts = {label: C.median(per_step[label]) for label, _, _ in STAGES if label in per_step}
    model_t = parts.pop("model call")
    tag = f"{dtype}, {artifact if model.program is None or artifact != 'torchscript' else 'torchscript'}"
    rows = [[label, t] for label, t in parts.items()]
    if forward_only:
        fwd = min(C.median(forward_only), model_t)
        rows += [["model forward", fwd], ["model backward (forces, stress)", model_t - fwd]]
    else:
        rows += [[f"model call ({model.program.kind} program)", model_t]]
    rows.append(["ASE integrator, Python", step_t - sum(parts.values()) - model_t])
    table = [[wname, tag, name, t * 1e3, 100 * t / step_t] for name, t in rows]
    summary = [wname, tag, C.median(steps) * 1e3, sum(steps) / len(steps) * 1e3, model_t * 1e3,
               (step_t - model_t) * 1e3, 100 * (step_t - model_t) / step_t]
    return table, summary


def _forward_only(model, atoms):
    from nnpcalc.neighbors import neighbor_graph

    inputs = model._batch_inputs([atoms], None, None)
    graph = neighbor_graph(inputs[0], inputs[2], inputs[3], inputs[5], model.cutoff, model.neighbors)
    with model._calling(graph[0].shape[1]):  # as Model.compute calls: same threads
        t0 = CLOCK()
        model.module.forward_batch(*inputs, *graph, compute_forces=False, compute_stress=False)
        return CLOCK() - t0


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    import os

    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"# load average at start: {os.getloadavg()}; clock: {args.clock}")
    rows, summary = [], []
    for wname in args.workloads:
        for dtype in args.dtype:
            for artifact in args.artifact:
                table, line = profile(wname, args, dtype, artifact)
                rows += table
                summary.append(line)
                print(C.table(table, ["workload", "dtype, artifact", "stage", "ms per step", "% of step"]), flush=True)
    print(f"# load average at end: {os.getloadavg()}")
    print(f"\n## Where an MD step goes (nnpcalc, ASE VelocityVerlet; medians per stage, {args.clock} time), threads =", args.threads)
    print(C.table(rows, ["workload", "dtype, artifact", "stage", "ms per step", "% of step"]))
    print("\n## Host overhead (median step − median model call)")
    print(C.table(summary, ["workload", "dtype, artifact", "median step ms", "mean step ms", "model call ms",
                            "host ms", "host %"]))


if __name__ == "__main__":
    main()
