"""What the ensemble energy head costs: a force call with the plain energy head, with the
ensemble head (energy_uncertainty comes free), and with forces_uncertainty asked for.

    .venv/bin/python benchmarks/uncertainty_cost.py [--threads 1] [--members 8] [--repeats 20]

Random-weight TensorNets of the shipped models' size (48 channels, 2 layers, 5 Å) on a
256-atom Cu cell and on ethanol; the three variants are interleaved and the median printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from ase.build import bulk, molecule

from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.runtime import Model

BACKBONE = {"hidden_channels": 48, "num_layers": 2, "num_rbf": 24, "cutoff_upper": 5.0}


def model(folder: Path, head, name: str) -> Model:
    torch.manual_seed(0)
    arch = Architecture(elements=["H", "C", "O", "Cu"], backbone_kwargs=BACKBONE, head_hidden=32, heads=[head])
    return Model(export(build_potential(arch), arch, folder / f"{name}.pt"), dtype="float32")


def seconds(m: Model, atoms, uncertainty: bool) -> float:
    start = time.perf_counter()
    m.compute([atoms], stress=False, uncertainty=uncertainty)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        plain = model(Path(tmp), "energy", "plain")
        ensemble = model(Path(tmp), {"kind": "energy_ensemble", "members": args.members}, "ensemble")
        print(f"| system | energy head (ms) | ensemble, energy_uncertainty (ms) | + forces_uncertainty (ms) |")
        print("|---|---:|---:|---:|")
        for name, atoms in (("ethanol (9 atoms)", molecule("CH3CH2OH")),
                            ("Cu 256 atoms", bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4))):
            variants = [(plain, False), (ensemble, False), (ensemble, True)]
            for m, flag in variants:  # warm-up
                seconds(m, atoms, flag)
            times = [[], [], []]
            for _ in range(args.repeats):
                for k, (m, flag) in enumerate(variants):
                    times[k].append(seconds(m, atoms, flag))
            cells = " | ".join(f"{1e3 * statistics.median(t):.1f}" for t in times)
            print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
