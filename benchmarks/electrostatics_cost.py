"""Cost of the Ewald term: the default model's architecture with and without ``electrostatics: ewald``.

Run: .venv/bin/python benchmarks/electrostatics_cost.py --threads 2

Periodic water at 1 g/cm³ (192 and 1536 molecules, ``_common.water``), energy + forces +
stress through ``Model.compute`` (float32). Both models are TensorNet 48×2 at 5 Å (the shipped
``hcno-gfn2`` size) with the same random weights; the second adds the Ewald sum of its charges
(tolerance 1e-6, real-space cutoff ``--ewald-cutoff``, automatic by default). One warm-up call, then ``--calls``
timed calls; the fastest is reported (on a shared machine the minimum is the least disturbed
number), and the Ewald term alone (``ewald_energies`` + backward, fixed charges) is timed as well.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def options(parser):
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--molecules", type=int, nargs="+", default=[192, 1536])
    parser.add_argument("--ewald-cutoff", default="auto", help="real-space cutoff in Å, or auto (the default)")


def build(tmp: Path, method: str, cutoff) -> Path:
    import torch

    from nnpcalc.nn.build import Architecture, build_potential, export

    torch.manual_seed(0)
    arch = Architecture(
        elements=["H", "C", "N", "O"], heads=["energy", "charges", "dipole"], head_hidden=32,
        backbone_kwargs={"hidden_channels": 48, "num_layers": 2, "num_rbf": 24, "cutoff_upper": 5.0},
        electrostatics=method, electrostatics_kwargs={"ewald_cutoff": cutoff} if method == "ewald" else {},
    )
    return export(build_potential(arch), arch, tmp / f"{method}.pt")


def term_alone(atoms, cutoff, calls: int) -> float:
    """Seconds per call of the Ewald term with fixed charges, forward and backward (float32)."""
    import torch

    from nnpcalc.nn.electrostatics import ewald_energies

    pos = torch.tensor(atoms.positions, dtype=torch.float32, requires_grad=True)
    q = torch.tensor([-0.8 if z == 8 else 0.4 for z in atoms.numbers], dtype=torch.float32)  # neutral waters
    cell = torch.tensor(atoms.cell.array, dtype=torch.float32)

    def call():
        torch.autograd.grad(ewald_energies(pos, q, cell, 1e-6, 0.0 if cutoff == "auto" else float(cutoff), 5.0).sum(), pos)

    call()
    return min(C.timed(call, calls))


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    import tempfile

    from nnpcalc.runtime import Model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {m: Model(build(Path(tmp), m, args.ewald_cutoff)) for m in ("none", "ewald")}
        for n in args.molecules:
            atoms = C.water(3 * n)
            times = {}
            for method, model in models.items():
                model.compute([atoms])  # warm-up
                times[method] = min(C.timed(lambda: model.compute([atoms]), args.calls))
            alone = term_alone(atoms, args.ewald_cutoff, args.calls)
            rows.append([n, 3 * n, times["none"], times["ewald"], times["ewald"] / times["none"], alone])
            print(C.table(rows[-1:], ["waters", "atoms", "short-range s", "with Ewald s", "ratio", "Ewald term alone s"]),
                  flush=True)
    print(C.table(rows, ["waters", "atoms", "short-range s", "with Ewald s", "ratio", "Ewald term alone s"]))


if __name__ == "__main__":
    main()
