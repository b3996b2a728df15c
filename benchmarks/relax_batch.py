"""Figure 5: batched relaxation of many small cells vs a loop of single relaxations.

Run: /work/bench-venv/bin/python benchmarks/relax_batch.py --threads 2

``nnpcalc.relax(list)`` steps every structure's FIRE in lockstep with one batched model call
per step; the loop calls ``nnpcalc.relax(atoms)`` once per structure. Both use the same
loaded model and follow the same optimizer paths (checked: same step counts), float64 as
``nnp relax``. With the shipped ``metals-emt`` model the structures are rattled Cu fcc cubic
cells (4 atoms; every 3rd one doubled to 8); otherwise, with the default ``hcno-gfn2`` model,
rattled small molecules (H2O, NH3, CH4, CH3OH, ethanol, ... cycled).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def options(parser):
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50, help="max FIRE steps per structure")
    parser.add_argument("--model", default=None, help="nnpcalc model (default: metals-emt if shipped)")
    parser.add_argument("--dtype", default="float64")


MOLECULES = ["H2O", "NH3", "CH4", "CH3OH", "CH3CH2OH", "HCOOH", "CH3CHO", "H2CO", "C2H6", "CH3CN"]


def cells(count, molecules=False):
    from ase.build import bulk, molecule

    if molecules:
        out = [molecule(MOLECULES[i % len(MOLECULES)]) for i in range(count)]
        for i, atoms in enumerate(out):
            atoms.rattle(0.1, seed=i)
        return out
    out = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.55 + 0.002 * (i % 20), cubic=True)
        if i % 3 == 0:
            atoms = atoms.repeat((2, 1, 1))
        atoms.rattle(0.08, seed=i)
        out.append(atoms)
    return out


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    from nnpcalc import relax
    from nnpcalc.runtime import Model
    from nnpcalc.zoo import available

    name = args.model or ("metals-emt" if "metals-emt" in available() else "hcno-gfn2")
    model = Model(name, dtype=args.dtype)
    mols = "Cu" not in model.elements
    relax(cells(2, mols), model, steps=3)  # warm-up
    t0 = time.perf_counter()
    batched = relax(cells(args.count, mols), model, fmax=0.05, steps=args.steps)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    looped = [relax(atoms, model, fmax=0.05, steps=args.steps) for atoms in cells(args.count, mols)]
    t_loop = time.perf_counter() - t0
    same = all(a.steps == b.steps for a, b in zip(batched, looped))
    steps = sum(r.steps for r in batched)
    rows = [["loop of single relax()", t_loop, steps / t_loop], ["one batched relax(list)", t_batch, steps / t_batch]]
    what = "small molecules" if mols else "small Cu cells"
    print(f"\n## Relaxing {args.count} {what} ({Path(name).name}, {args.dtype}, FIRE fmax 0.05, "
          f"≤{args.steps} steps), threads = {args.threads}")
    print(C.table(rows, ["how", "wall s", "structure-steps/s"]))
    print(f"batched speed-up: {t_loop / t_batch:.2f}x; same optimizer paths: {same}; "
          f"converged {sum(r.converged for r in batched)}/{args.count}; structure-steps {steps}")


if __name__ == "__main__":
    main()
