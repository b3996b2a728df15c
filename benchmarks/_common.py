"""Shared pieces of the benchmark scripts: environment, workloads, engines, timing.

Every script calls :func:`setup` first, before torch is imported. It re-executes the script
with ``OMP_WAIT_POLICY=PASSIVE`` and ``OMP_NUM_THREADS=--threads`` in the environment (on a
busy 2-core machine OpenMP's default spin-waiting made a call 25-60x slower) and then sets
``torch.set_num_threads`` explicitly. Peers are built here so that every script compares the
same models on the same structures.

Peers are optional imports from ``benchmarks/requirements-peers.txt`` (never a dependency of
nnpcalc); an engine whose package is missing is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CUTOFF = 5.0  # Å, every nnpcalc / torchmd-net / MACE model here
HIDDEN, LAYERS, NUM_RBF = 128, 2, 32  # TensorNet size shared by nnpcalc and torchmd-net
CACHE = Path(os.environ.get("NNPCALC_BENCH_CACHE", "/tmp/nnpcalc-bench-cache"))


def setup(description: str, extra=None) -> argparse.Namespace:
    """Parse ``--threads`` (and script options), pin the OpenMP environment, set torch threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenMP threads (default 2)")
    parser.add_argument(
        "--allocator", choices=["tuned", "system"], default="tuned",
        help="tuned: nnpcalc.allocator.keep_freed_memory() for the whole process, so every engine "
        "runs with it (what `nnp` sets); system: glibc's defaults for every engine",
    )
    if extra:
        extra(parser)
    args = parser.parse_args()
    want = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(args.threads),
            "MKL_NUM_THREADS": str(args.threads), "NNPCALC_MALLOC": args.allocator}
    if any(os.environ.get(k) != v for k, v in want.items()):
        os.environ.update(want)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import torch

    from nnpcalc.allocator import keep_freed_memory
    from nnpcalc.threads import set_program_policy

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    tuned = keep_freed_memory()  # a no-op with NNPCALC_MALLOC=system
    set_program_policy("auto")  # nnpcalc models: small graphs on one thread, as under `nnp`
    print(f"# {machine()} | torch {torch.__version__} | threads {args.threads} | OMP_WAIT_POLICY=PASSIVE"
          f" | allocator {'tuned (keep freed memory)' if tuned else 'system default'}")
    return args


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        cpu = info.get("Model name", platform.processor()).strip()
    except OSError:
        cpu = platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


# ----------------------------------------------------------------------------- workloads

def copper(n_atoms: int):
    """Cu fcc, cubic cell repeated n×n×n (4 n³ atoms), a = 3.61 Å, rattled, periodic."""
    from ase.build import bulk

    n = round((n_atoms / 4) ** (1 / 3))
    if 4 * n**3 != n_atoms:
        raise ValueError(f"Cu fcc cubic supercells have 4 n^3 atoms, not {n_atoms}")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((n, n, n))
    atoms.rattle(0.05, seed=1)
    return atoms


def water(n_atoms: int, seed: int = 0):
    """A periodic cubic box of n_atoms/3 rigid-geometry waters at 1 g/cm³ on a jittered grid."""
    import numpy as np
    from ase import Atoms
    from ase.build import molecule

    n_mol = n_atoms // 3
    side = (n_mol * 18.015 / 0.6022) ** (1 / 3)  # Å, 1 g/cm³
    per_side = int(np.ceil(n_mol ** (1 / 3)))
    spacing = side / per_side
    rng = np.random.default_rng(seed)
    h2o = molecule("H2O")
    h2o.positions -= h2o.get_center_of_mass()
    positions, symbols = [], []
    sites = [(i, j, k) for i in range(per_side) for j in range(per_side) for k in range(per_side)][:n_mol]
    for site in sites:
        rot = _random_rotation(rng)
        centre = (np.array(site) + 0.5) * spacing + rng.uniform(-0.2, 0.2, 3)
        positions.extend(h2o.positions @ rot.T + centre)
        symbols.extend(h2o.get_chemical_symbols())
    return Atoms(symbols, positions=positions, cell=[side] * 3, pbc=True)


def _random_rotation(rng):
    import numpy as np

    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([
        [a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
        [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
        [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d],
    ])


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.01, seed=1)
    return atoms


WORKLOADS = {
    "cu256": lambda: copper(256),
    "cu864": lambda: copper(864),
    "water192": lambda: water(192),
    "water1536": lambda: water(1536),
    "ethanol": ethanol,
}


# ----------------------------------------------------------------------------- models

def nnpcalc_model_file(dtype: str = "float32") -> Path:
    """TensorNet 128×2, 32 RBF, cutoff 5 Å, energy head only, random weights (cached)."""
    import hashlib

    source = Path(__file__).resolve().parents[1] / "nnpcalc" / "nn"
    code = hashlib.sha1(b"".join(p.read_bytes() for p in sorted(source.glob("*.py")))).hexdigest()[:10]
    path = CACHE / f"tensornet-{HIDDEN}x{LAYERS}-{dtype}-{code}.pt"  # re-exported when the code changes
    if path.exists():
        return path
    import torch

    from nnpcalc.nn.build import Architecture, build_potential, export

    torch.manual_seed(0)
    arch = Architecture(
        elements=["H", "C", "N", "O", "Cu"], backbone="tensornet",
        backbone_kwargs={"hidden_channels": HIDDEN, "num_layers": LAYERS, "num_rbf": NUM_RBF,
                         "cutoff_upper": CUTOFF},
        heads=["energy"],
    )
    potential = build_potential(arch)
    with torch.no_grad():
        potential.heads[0].atomref.uniform_(-5.0, -1.0)
    export(potential, arch, path, {"note": "random weights, benchmarks only"}, dtype=getattr(torch, dtype))
    return path


class TorchMDNetCalculator:
    """torchmd-net 3.1 TensorNet (same hyperparameters) as an ASE calculator, through its own
    model call (``OptimizedDistance`` builds the graph). It has no stress; minimum-image only,
    so boxes must be at least twice the cutoff."""

    def __new__(cls, dtype="float32"):
        import numpy as np
        import torch
        from ase.calculators.calculator import Calculator, all_changes
        from torchmdnet.models.model import create_model

        args = {
            "precision": 32 if dtype == "float32" else 64, "model": "tensornet",
            "embedding_dimension": HIDDEN, "num_layers": LAYERS, "num_rbf": NUM_RBF,
            "rbf_type": "expnorm", "trainable_rbf": False, "activation": "silu",
            "cutoff_lower": 0.0, "cutoff_upper": CUTOFF, "max_z": 30, "max_num_neighbors": 128,
            "equivariance_invariance_group": "O(3)", "static_shapes": False, "derivative": True,
            "atom_filter": -1, "prior_model": None, "output_model": "Scalar", "reduce_op": "sum",
            "output_mlp_num_layers": 0,
        }
        torch.manual_seed(0)
        model = create_model(args).eval()
        torch_dtype = getattr(torch, dtype)

        class _Calc(Calculator):
            implemented_properties = ["energy", "free_energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                a = self.atoms
                z = torch.from_numpy(a.numbers).long()
                pos = torch.tensor(a.positions, dtype=torch_dtype)
                batch = torch.zeros(len(a), dtype=torch.long)
                box = torch.tensor(a.cell.array, dtype=torch_dtype) if a.pbc.any() else None
                energy, neg_dy = model(z, pos, batch, box=box)
                e = float(energy.detach().sum())
                self.results = {"energy": e, "free_energy": e,
                                "forces": neg_dy.detach().numpy().astype(np.float64)}

        return _Calc()


def mace_calculator(size: str, dtype="float32"):
    """A random-weight ScaleShiftMACE at MACE-MP-0 small (128x0e) or medium (128x0e+128x1o)
    size: 2 interactions, correlation 3, max_ell 3, 10 Bessel, radial MLP 64×3, 89 elements;
    r_max = 5 Å like every model here (MACE-MP itself uses 6 Å, 1.7× more pairs)."""
    import numpy as np
    import torch

    torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 loads its constants with torch.load
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    hidden = {"small": "128x0e", "medium": "128x0e + 128x1o"}[size]
    torch.manual_seed(0)
    z_table = list(range(1, 90))
    model = modules.ScaleShiftMACE(
        r_max=CUTOFF, num_bessel=10, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=len(z_table), hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(z_table)),
        avg_num_neighbors=40.0, atomic_numbers=z_table, correlation=3, gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64], atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    )
    model = model.to(getattr(torch, dtype)).eval()
    return MACECalculator(models=model, device="cpu", default_dtype=dtype)


def chgnet_calculator():
    from chgnet.model import CHGNet, CHGNetCalculator

    return CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")


def sevennet_calculator():
    import torch

    torch.serialization.add_safe_globals([slice])  # sevenn's shipped checkpoint pickles slices
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator("7net-0", device="cpu")


def nnpcalc_calculator(dtype="float32", **kwargs):
    from nnpcalc import NNPCalculator

    return NNPCalculator(str(nnpcalc_model_file("float32")), dtype=dtype, **kwargs)


def emt_calculator():
    from ase.calculators.emt import EMT

    return EMT()


ENGINES = {
    "nnpcalc": nnpcalc_calculator,
    "torchmd-net": TorchMDNetCalculator,
    "mace-small": lambda: mace_calculator("small"),
    "mace-medium": lambda: mace_calculator("medium"),
    "chgnet": chgnet_calculator,
    "sevennet-0": sevennet_calculator,
    "emt": emt_calculator,
}


def make_engines(names):
    """name → calculator for the engines that import here; prints why the others are skipped."""
    engines = {}
    for name in names:
        try:
            engines[name] = ENGINES[name]()
        except ImportError as err:
            print(f"# skipped {name}: {err}")
    return engines


# ----------------------------------------------------------------------------- timing

def median(values):
    return statistics.median(values) if values else float("nan")


def timed(fn, repeat: int):
    """Seconds per call of ``fn`` (each call timed), as a list."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows, header):
    """Markdown table text from rows of values (floats with 3 significant digits)."""
    def fmt(v):
        if isinstance(v, float):
            return "—" if v != v else (f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}")
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- active-learning demos

def learn_arguments(description: str, frames: int, minutes: float) -> argparse.ArgumentParser:
    """The options every ``learn_*.py`` demo takes: OUTDIR, rounds, frames, minutes, control, seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("outdir", type=Path, help="every file the demo writes goes here")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=frames, help="frames labelled per round")
    parser.add_argument("--minutes", type=float, default=minutes, help="fine-tuning minutes per round")
    parser.add_argument("--control", action="store_true", help="label nothing: the same training budget, no new data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the learn rounds (exploration, splits)")
    return parser


def learn_start(description: str, frames: int, minutes: float, argv=None) -> argparse.Namespace:
    """A ``learn_*.py`` demo's start: its options (:func:`learn_arguments`), one torch thread (the
    program's choice, beside other work), OUTDIR made."""
    import torch

    args = learn_arguments(description, frames, minutes).parse_args(argv)
    torch.set_num_threads(1)
    args.outdir.mkdir(parents=True, exist_ok=True)
    return args


def learn_demo(args, recipe: dict, config: dict, summary: str) -> tuple[str, list[dict]]:
    """Train round 0 from ``recipe`` on the learn run's starting data (``config["data"]``) in
    ``OUTDIR/round0`` (once), then run ``nnp learn`` with ``config`` in
    ``OUTDIR/learn[-control][-seedN]``; the run's name and its round records.
    ``--control`` sets ``min_uncertainty`` out of reach: the same rounds, nothing labelled."""
    import json

    from nnpcalc.training.train import train
    from nnpcalc.workflows.learn import learn

    out = args.outdir
    recipe = json.loads(json.dumps(recipe))  # a deep copy
    recipe["data"]["files"] = list(config["data"])
    recipe |= {"run_dir": str(out / "round0"), "output": str(out / "round0" / "model.pt"), "summary": summary}
    if not (out / "round0" / "model.pt").is_file():
        train(recipe)
    config = {"model": str(out / "round0" / "model.pt"), "recipe": recipe, "rounds": args.rounds,
              "frames_per_round": args.frames, "max_minutes": args.minutes, "seed": args.seed, **config}
    if args.control:
        config["min_uncertainty"] = 1e9
    name = ("learn-control" if args.control else "learn") + (f"-seed{args.seed}" if args.seed else "")
    return name, learn(config, out / name)


def rounds_table(records: list[dict]) -> str:
    """Markdown: per round, training frames, held-out force / energy MAE per subset, force
    uncertainty coverage (all test frames) and exploration runs that failed."""
    subsets = [s for s in records[0]["test"] if s != "all"]
    header = ["round", "training frames", *(f"{s} F (eV/Å) / E (meV/atom)" for s in subsets),
              "F within 1σ / 2σ", "failed runs"]
    rows = []
    for r in records:
        errors = [f"{r['test'][s]['forces']['mae']:.3f} / {1e3 * r['test'][s]['energy_per_atom']['mae']:.1f}"
                  for s in subsets]
        forces = r["test"]["all"]["uncertainty"]["forces"]
        rows.append([r["round"], r["pool_frames"], *errors,
                     f"{forces['coverage_1sigma']:.2f} / {forces['coverage_2sigma']:.2f}",
                     f"{r['exploration']['stopped']} / {r['exploration']['runs']}"])
    return table(rows, header)
