"""Figure 8: one ASE force call served by each artifact: TorchScript file, exported program,
compiled (AOTInductor) program, eager module; and the host overhead around the model.

Run: .venv/bin/python benchmarks/artifact_speed.py --threads 1 --workloads ethanol --md
     (--build: build missing programs into the cache first; minutes for "compiled")
     (--program before=PATH: also a compiled package given by path, e.g. one built by older code
      of the same model file, timed in the same run under the label "before")

Per workload and artifact, the same structure is evaluated through ``NNPCalculator`` (a
force call after a 1e-4 Å move, so no result is reused) and, on the same inputs, through the
model call alone; host overhead = ASE call − model call. Artifacts are interleaved round by
round; medians. An artifact whose program is not cached (and ``--build`` not given) is
reported as missing. The first-call time of each (load + first call, in this process) is
printed too.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ARTIFACTS = ("torchscript", "exported", "compiled", "eager")


def options(parser):
    parser.add_argument("--workloads", nargs="+", default=["ethanol", "water192"])
    parser.add_argument("--artifacts", nargs="+", default=list(ARTIFACTS), choices=ARTIFACTS)
    parser.add_argument("--model", default=None, help="nnpcalc model (default: the shipped default model)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="calls per artifact per round")
    parser.add_argument("--build", action="store_true", help="build missing programs (exported, compiled)")
    parser.add_argument("--md", action="store_true",
                        help="also MD steps/s (VelocityVerlet 0.5 fs) per artifact and for tblite's GFN2-xTB")
    parser.add_argument("--program", action="append", default=[], metavar="LABEL=PATH",
                        help="also a compiled or exported package by path (its model file and dtype are checked)")


def kinds(args) -> list[str]:
    """The artifacts to time: ``--artifacts``, then each ``--program``'s label."""
    return list(args.artifacts) + [spec.split("=", 1)[0] for spec in args.program]


def load(kind: str, args):
    """(Model, load seconds) serving through ``kind``; None when its program is missing."""
    from nnpcalc.nn.build import rebuild
    from nnpcalc.runtime import Model

    programs = dict(spec.split("=", 1) for spec in args.program)
    if kind in programs:
        return by_path(programs[kind], args)
    artifact = "torchscript" if kind == "eager" else kind
    if kind in ("exported", "compiled") and not args.build:
        from nnpcalc import artifacts
        from nnpcalc.zoo import resolve

        path = resolve(args.model)
        info = artifacts.artifact_info(path, torch_dtype(args.dtype), "cpu")
        if not artifacts.cache_path(path, kind, info).is_file():
            return None, float("nan")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would time the TorchScript file under another name
        model = Model(args.model, dtype=args.dtype, artifact=artifact)
    if kind == "eager":
        model.module = rebuild(model.path, (model.module, model.metadata)).to(model.dtype).requires_grad_(False)
    return model, time.perf_counter() - t0


def by_path(path, args):
    """(Model, load seconds) served by the package at ``path`` (built for this model file and dtype)."""
    import json

    from nnpcalc import artifacts
    from nnpcalc.runtime import Model

    model = Model(args.model, dtype=args.dtype, artifact="torchscript")
    stored = json.loads(Path(path + ".json").read_text())
    if (stored["model_sha256"], stored["dtype"]) != (artifacts._sha256_file(model.path), args.dtype):
        raise SystemExit(f"{path} was built for another model file or dtype")
    t0 = time.perf_counter()
    model.program = artifacts.load(path)
    return model, time.perf_counter() - t0


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def model_call(model, atoms):
    """The model alone on ``atoms``'s inputs (graph included), as ``Model.compute`` makes them."""
    from nnpcalc.neighbors import neighbor_graph
    from nnpcalc.runtime import stack_structures

    import torch

    positions, numbers, cell, pbc, batch = stack_structures([atoms], model.dtype)
    graph = neighbor_graph(positions, cell, pbc, batch, model.cutoff)
    inputs = (positions, numbers, cell, pbc, torch.zeros(1, dtype=model.dtype), batch, None)

    def call():
        with model._calling(graph[0].shape[1]):
            model._forward(model.module, inputs, graph, True, False, {})
    return call


def ase_call(model, atoms):
    from nnpcalc import NNPCalculator

    atoms = atoms.copy()
    atoms.calc = NNPCalculator(model)
    sign = [1.0]

    def call():
        sign[0] = -sign[0]
        atoms.positions[0, 0] += 1e-4 * sign[0]
        atoms.get_forces()
    return call


def run(wname, args):
    atoms = C.WORKLOADS[wname]()
    models, rows = {}, []
    for kind in kinds(args):
        model, seconds = load(kind, args)
        if model is None:
            rows.append([wname, len(atoms), f"{kind} (not cached: --build)"] + [float("nan")] * 6)
            continue
        t0 = time.perf_counter()
        ase_call(model, atoms)()
        models[kind] = (model, seconds, time.perf_counter() - t0)
    calls = {k: (ase_call(m, atoms), model_call(m, atoms)) for k, (m, _, _) in models.items()}
    times = {k: ([], []) for k in calls}
    for _ in range(args.rounds):
        for kind, (ase, alone) in calls.items():
            times[kind][0].extend(C.timed(ase, args.calls))
            times[kind][1].extend(C.timed(alone, args.calls))
    base = C.median(times["torchscript"][0]) if "torchscript" in times else float("nan")
    for kind, (ase, alone) in times.items():
        step, model_t = C.median(ase), C.median(alone)
        _, load_s, first = models[kind]
        rows.append([wname, len(atoms), kind, step * 1e3, model_t * 1e3, (step - model_t) * 1e3, base / step,
                     load_s, first])
    return rows


def md_rates(wname, args, steps: int = 40):
    """MD steps/s per artifact and for GFN2-xTB (tblite, the default model's reference), interleaved."""
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from nnpcalc import NNPCalculator

    calcs = {k: NNPCalculator(m) for k in kinds(args) if (m := load(k, args)[0]) is not None}
    try:
        from tblite.ase import TBLite

        calcs["GFN2-xTB (tblite)"] = TBLite(method="GFN2-xTB", verbosity=0)
    except ImportError as err:
        print(f"# skipped tblite: {err}")
    runs = {}
    for name, calc in calcs.items():
        atoms = C.WORKLOADS[wname]()
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        atoms.calc = calc
        runs[name] = VelocityVerlet(atoms, 0.5 * units.fs)
        runs[name].run(5)
    rates, cpu = {name: [] for name in runs}, {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, dyn in runs.items():
            t0 = time.process_time()
            rates[name] += [steps / t for t in C.timed(lambda: dyn.run(steps), 1)]
            cpu[name].append(steps / (time.process_time() - t0))  # waits for a core on a loaded machine excluded
    return [[wname, name, C.median(r), min(r), max(r), C.median(cpu[name])] for name, r in rates.items()]


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    import os

    print(f"# load average at start: {os.getloadavg()}", flush=True)
    rows, md = [], []
    for wname in args.workloads:
        rows += run(wname, args)
        md += md_rates(wname, args) if args.md else []
    print(f"\n## One ASE force call per artifact ({args.dtype}, threads = {args.threads})")
    print(C.table(rows, ["workload", "atoms", "artifact", "ASE call ms", "model call ms", "host ms",
                         "speed vs TorchScript", "load s", "first call s"]))
    if md:
        print(f"\n## MD steps/s ({args.dtype}, threads = {args.threads})")
        print(C.table(md, ["workload", "engine", "median steps/s", "min", "max", "steps per CPU s"]))


if __name__ == "__main__":
    main()
    print(f"# load average at end: {__import__('os').getloadavg()}")
