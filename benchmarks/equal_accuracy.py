"""Figure 7b: accuracy against speed — nnpcalc, MACE and torchmd-net, each trained by its own entry point.

Run (from the repo root, in the peers' virtualenv; ~35 min wall on 2 loaded vCPUs with the defaults):

    /work/bench-venv/bin/python benchmarks/equal_accuracy.py --cpu-minutes 3 8 --train-threads 1 --threads 2 \
        --plot docs/equal-accuracy.png

Data: the default model's GFN2-xTB set (``data/hcno-v2.extxyz``, ``models/hcno-gfn2.yaml``) without
its 20 periodic frames (24-atom water boxes of 6.1-6.3 Å: torchmd-train takes one global box of at
least twice the cutoff, not a cell per frame), energy and forces only, split by the recipe's own
procedure (``nnpcalc.training.data.split_indices``: seed 0, ``group_by: group``, 10 % val, 10 % test).
That split is written to each engine's input format (extxyz for MACE, torchmd-net's ``Custom`` numpy
files + ``splits.npz``, the filtered extxyz for ``nnp train``, which splits it identically; checked).

Each engine trains with its own training program and its own defaults, at the same time, each
under ``nice -n 19`` on ``--train-threads`` threads, until its process tree has used each CPU
budget of ``--cpu-minutes`` (CPU time, not wall time, so the three share the loaded machine
fairly); at each budget the engine's own best-validation checkpoint is copied, and the run is
killed at the last one. Their learning-rate schedules are on-plateau, so a copy at 3 CPU-min is
what a 3-minute run would have kept.

- nnpcalc: ``nnp train`` with ``nnp train``'s trainer defaults, the default recipe's architecture
  (TensorNet 48×2, 24 RBF, ZBL, Ewald + charge self-energy; it reads the total charge, the peers
  do not: see the neutral-frame column) and its energy/forces tasks (huber, weights 20/40).
- MACE: ``mace_run_train`` with its defaults (Adam amsgrad lr 0.01, batch 10, weighted loss with
  energy 1 / forces 100, ReduceLROnPlateau, E0s by least squares ``average``) plus the EMA its
  README trains with (``--ema --ema_decay 0.99``), a MACE-MP-0 small-size ``ScaleShiftMACE``
  (128x0e, max_ell 3, correlation 3, 2 interactions, 10 Bessel), r_max 5 Å, float32 (like the
  other two; MACE's default is float64). The checkpoint is turned into MACE's model files by
  ``mace_run_train --restart_latest`` itself; the compiled (TorchScript) file is evaluated.
- torchmd-net: ``torchmd-train`` with a TensorNet yaml in its own format: the optimiser block of
  its ``examples/TensorNet-rMD17.yaml`` (lr 1e-3, batch 8, warm-up 500 steps, plateau factor 0.8,
  clipping 40, energy/force weights 0.5/0.5, standardize) and the size every figure here uses
  (128×2, 32 RBF, cutoff 5 Å). ``Custom`` data has no atomic reference energies, so the same
  least-squares E0s (train split) are subtracted from its energies and added back at evaluation.

Then, per engine and budget: held-out test energy MAE (meV/atom) and force MAE (eV/Å), and for
the last budget an energy + forces call on 64 periodic waters (192 atoms) in float32, the three
engines interleaved in rounds in this process (``--threads``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "models" / "hcno-gfn2.yaml"
ELEMENTS = ["H", "C", "N", "O"]
Z = [1, 6, 7, 8]
ENGINES = ["nnpcalc", "mace", "torchmd-net"]


def options(parser):
    parser.add_argument("--cpu-minutes", type=float, nargs="+", default=[3.0, 8.0],
                        help="CPU budgets per engine (its whole process tree); the last one stops the run")
    parser.add_argument("--train-threads", type=int, default=1, help="torch/OpenMP threads of each training")
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "v5" / "peers")
    parser.add_argument("--evaluate-only", action="store_true", help="reuse the snapshots of a previous run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (3 calls each)")
    parser.add_argument("--plot", type=Path, default=None, help="also draw force MAE against calls/s (PNG)")


# ----------------------------------------------------------------------------- data

def load_split(workdir: Path):
    """The recipe's data without periodic frames, written once, and the recipe's split of it."""
    import yaml
    from ase.io import read, write

    from nnpcalc.training.data import DataSpec, read_frames, split_indices

    recipe = yaml.safe_load(RECIPE.read_text())
    path = workdir / "data" / "hcno-v2-molecules.extxyz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = [f for f in read(ROOT / recipe["data"]["files"][0], ":") if not f.pbc.any()]
        for f in frames:
            f.pbc, f.cell = False, None
        write(path, frames, format="extxyz")
    spec = DataSpec(files=[str(path)], labels={"energy": "ref_energy", "forces": "ref_forces"},
                    group_by=recipe["data"]["group_by"], split=recipe["data"]["split"])
    frames = read_frames(spec, recipe["seed"])
    return recipe, spec, frames, split_indices(frames, spec, recipe["seed"])


def e0_fit(frames, train):
    """Least-squares energy per element on the train split (what MACE's ``--E0s average`` does)."""
    import numpy as np

    counts = np.array([[np.sum(frames[i].numbers == z) for z in Z] for i in train], dtype=float)
    energies = np.array([frames[i].info["ref_energy"] for i in train])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return dict(zip(Z, map(float, e0)))


def write_inputs(workdir: Path, recipe: dict, spec, frames, parts) -> dict:
    """Each engine's input files for the same split; returns the per-engine commands' inputs."""
    import numpy as np
    import yaml
    from ase.io import write

    inputs = workdir / "inputs"  # rewritten identically on every run (deterministic)
    (inputs / "torchmd").mkdir(parents=True, exist_ok=True)
    # MACE: one extxyz per part
    for name, mace_name in (("train", "train"), ("val", "valid"), ("test", "test")):
        write(inputs / f"{mace_name}.xyz", [frames[i] for i in parts[name]], format="extxyz")
    # torchmd-net Custom: one file set per atom ordering; the dataset orders files by name
    e0 = e0_fit(frames, parts["train"])
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(tuple(int(z) for z in f.numbers), []).append(i)
    position = {}
    for g, (numbers, members) in enumerate(sorted(groups.items())):
        stem = f"{g:04d}"
        np.save(inputs / "torchmd" / f"coords_{stem}.npy", np.array([frames[i].positions for i in members], np.float32))
        np.save(inputs / "torchmd" / f"embed_{stem}.npy", np.array(numbers, np.int64))
        shift = sum(e0[z] for z in numbers)
        np.save(inputs / "torchmd" / f"energy_{stem}.npy",
                np.array([[frames[i].info["ref_energy"] - shift] for i in members], np.float32))
        np.save(inputs / "torchmd" / f"forces_{stem}.npy",
                np.array([frames[i].arrays["ref_forces"] for i in members], np.float32))
        for i in members:
            position[i] = len(position)
    np.savez(inputs / "torchmd" / "splits.npz",
             **{f"idx_{k}": np.array(sorted(position[i] for i in parts[k]), np.int64) for k in ("train", "val", "test")})
    (inputs / "e0.json").write_text(json.dumps(e0))
    # nnpcalc: the filtered file; nnp train splits it with the recipe's procedure (checked in train_nnpcalc)
    arch = {k: v for k, v in recipe["architecture"].items() if k != "fidelities"}
    tasks = [t for t in recipe["tasks"] if t["output"] in ("energy", "forces")]
    nnp = {"name": "equal-accuracy", "seed": recipe["seed"],
           "data": {"files": spec.files, "labels": spec.labels, "group_by": spec.group_by, "split": spec.split},
           "architecture": arch, "tasks": tasks,
           "trainer": {"max_epochs": 100_000, "progress": False},  # everything else: nnp train's defaults
           "run_dir": str(workdir / "runs" / "nnpcalc")}
    (inputs / "nnpcalc.yaml").write_text(yaml.safe_dump(nnp, sort_keys=False))
    tmd = {
        # architecture: the size of every figure here
        "model": "tensornet", "embedding_dimension": C.HIDDEN, "num_layers": C.LAYERS, "num_rbf": C.NUM_RBF,
        "rbf_type": "expnorm", "trainable_rbf": False, "activation": "silu", "cutoff_lower": 0.0,
        "cutoff_upper": C.CUTOFF, "max_z": 100, "max_num_neighbors": 32, "equivariance_invariance_group": "O(3)",
        "static_shapes": False, "output_model": "Scalar", "reduce_op": "add", "prior_model": None,
        "derivative": True, "standardize": True, "precision": 32, "charge": False, "spin": False,
        # optimiser: examples/TensorNet-rMD17.yaml
        "batch_size": 8, "inference_batch_size": 64, "lr": 1.0e-3, "lr_factor": 0.8, "lr_min": 1.0e-8,
        "lr_patience": 25, "lr_warmup_steps": 500, "early_stopping_patience": 300, "gradient_clipping": 40.0,
        "y_weight": 0.5, "neg_dy_weight": 0.5, "ema_alpha_y": 0.01, "ema_alpha_neg_dy": 1.0, "weight_decay": 0.0,
        # data and bookkeeping
        "dataset": "Custom", "coord_files": str(inputs / "torchmd" / "coords_*.npy"),
        "embed_files": str(inputs / "torchmd" / "embed_*.npy"),
        "energy_files": str(inputs / "torchmd" / "energy_*.npy"),
        "force_files": str(inputs / "torchmd" / "forces_*.npy"), "splits": str(inputs / "torchmd" / "splits.npz"),
        "log_dir": str(workdir / "runs" / "torchmd-net"), "num_workers": 0, "ngpus": 1, "num_nodes": 1,
        "num_epochs": 100_000, "save_interval": 1, "test_interval": -1, "seed": recipe["seed"], "redirect": False,
    }
    (inputs / "tensornet.yaml").write_text(yaml.safe_dump(tmd, sort_keys=False))
    return {"e0": e0}


def mace_args(workdir: Path) -> list[str]:
    inputs = workdir / "inputs"
    return [
        "--name", "mace", "--seed", "0", "--device", "cpu", "--default_dtype", "float32",
        "--train_file", str(inputs / "train.xyz"), "--valid_file", str(inputs / "valid.xyz"),
        "--test_file", str(inputs / "test.xyz"), "--energy_key", "ref_energy", "--forces_key", "ref_forces",
        "--E0s", "average", "--model", "ScaleShiftMACE", "--hidden_irreps", "128x0e", "--max_ell", "3",
        "--correlation", "3", "--num_interactions", "2", "--num_radial_basis", "10", "--r_max", str(C.CUTOFF),
        "--ema", "--ema_decay", "0.99", "--max_num_epochs", "100000", "--plot", "False",
        "--error_table", "PerAtomMAE",
    ]


def program(name: str, module: str) -> list[str]:
    """A console script from this venv, the project's .venv or PATH; else its module's main()."""
    for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (folder / name).is_file():
            return [str(folder / name)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def commands(workdir: Path) -> dict[str, list[str]]:
    inputs, runs = workdir / "inputs", workdir / "runs"
    mace_dirs = ["--checkpoints_dir", str(runs / "mace" / "checkpoints"), "--model_dir", str(runs / "mace"),
                 "--results_dir", str(runs / "mace" / "results"), "--log_dir", str(runs / "mace" / "logs")]
    return {
        "nnpcalc": program("nnp", "nnpcalc.cli.main") + ["train", str(inputs / "nnpcalc.yaml")],
        "mace": program("mace_run_train", "mace.cli.run_train") + mace_args(workdir) + mace_dirs,
        "torchmd-net": program("torchmd-train", "torchmdnet.scripts.train") + ["--conf", str(inputs / "tensornet.yaml")],
    }


# ----------------------------------------------------------------------------- training under CPU budgets

def tree_cpu(proc) -> float:
    """CPU seconds of a process, its live descendants and its reaped children."""
    import psutil

    total = 0.0
    try:
        t = proc.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def newest_best(engine: str, run: Path) -> list[Path]:
    """The engine's current best-validation checkpoint (what it would export), as files to copy."""
    if engine == "nnpcalc":
        best = run / "checkpoints" / "best.ckpt"
        return [best] if best.is_file() else []
    if engine == "mace":  # MACE keeps only the checkpoint of its lowest validation loss
        found = sorted((run / "checkpoints").glob("*_epoch-*.pt"),
                       key=lambda p: int(re.search(r"_epoch-(\d+)", p.name).group(1)))
        return found[-1:]
    found = []
    for p in run.glob("epoch=*-val_loss=*.ckpt"):
        m = re.search(r"val_loss=([0-9.eE+-]+?)(?:-test|\.ckpt)", p.name)
        if m:
            found.append((float(m.group(1)), p))
    return [min(found)[1]] if found else []


def train_all(workdir: Path, engines, budgets, threads: int) -> dict:
    """Run every engine's training at once under nice 19; snapshot at each CPU budget; kill at the last."""
    import psutil

    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                        "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    env.pop("NNPCALC_MALLOC", None)  # each program sets up its own process as it would for a user
    cmds, runs = commands(workdir), workdir / "runs"
    state = {}
    for engine in engines:  # a fresh run of each engine named (the others' runs are kept)
        shutil.rmtree(runs / engine, ignore_errors=True)
        for old in (workdir / "snapshots").glob(f"{engine}-*"):
            shutil.rmtree(old)
        (runs / engine).mkdir(parents=True, exist_ok=True)
        log = open(workdir / f"train-{engine}.log", "w")
        cmd = ["nice", "-n", "19", *cmds[engine]]
        log.write("# " + " ".join(cmd) + "\n")
        log.flush()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
        state[engine] = {"popen": p, "proc": psutil.Process(p.pid), "start": time.perf_counter(),
                         "todo": sorted(budgets), "snapshots": {}, "cmd": cmd}
        print(f"# started {engine} (pid {p.pid}): {' '.join(cmd)}", flush=True)
    while any(s["todo"] for s in state.values()):
        time.sleep(2.0)
        for engine, s in state.items():
            if not s["todo"]:
                continue
            cpu = tree_cpu(s["proc"]) if s["popen"].poll() is None else s.get("cpu", 0.0)
            s["cpu"] = cpu
            exited = s["popen"].poll() is not None
            while s["todo"] and (exited or cpu >= 60 * s["todo"][0]):
                budget = s["todo"].pop(0)
                if not exited:
                    os.killpg(s["popen"].pid, signal.SIGSTOP)  # no checkpoint is written while we copy
                    time.sleep(0.5)
                dest = workdir / "snapshots" / f"{engine}-{budget:g}"
                dest.mkdir(parents=True)
                files = newest_best(engine, runs / engine)
                for f in files:
                    shutil.copy2(f, dest / f.name)
                wall = time.perf_counter() - s["start"]
                info = {"engine": engine, "budget_cpu_min": budget, "cpu_s": cpu, "wall_s": wall,
                        "files": [f.name for f in files], "exited_early": exited}
                (dest / "snapshot.json").write_text(json.dumps(info))
                s["snapshots"][budget] = info
                print(f"# {engine}: {budget:g} CPU-min reached after {wall / 60:.1f} wall min; kept {info['files']}",
                      flush=True)
                if s["todo"] and not exited:
                    os.killpg(s["popen"].pid, signal.SIGCONT)
                elif not exited:
                    os.killpg(s["popen"].pid, signal.SIGKILL)
                    s["popen"].wait()
    return {e: s["snapshots"] for e, s in state.items()}


# ----------------------------------------------------------------------------- model files from snapshots

def finish_snapshot(workdir: Path, engine: str, dest: Path, threads: int) -> Path | None:
    """Each engine's own model file from the copied checkpoint (its own tools), or None."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    files = json.loads((dest / "snapshot.json").read_text())["files"]
    if not files:
        return None
    if engine == "nnpcalc":
        out = dest / "model.pt"
        if not out.is_file():
            subprocess.run(program("nnp", "nnpcalc.cli.main") + ["export", str(dest / files[0]), "-o", str(out)],
                           check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        return out
    if engine == "torchmd-net":
        return dest / files[0]
    out = dest / "mace_compiled.model"
    if not out.is_file():  # mace_run_train loads the checkpoint, trains 0 epochs, writes its model files
        epoch = int(re.search(r"_epoch-(\d+)", files[0]).group(1))
        (dest / "checkpoints").mkdir(exist_ok=True)
        shutil.copy2(dest / files[0], dest / "checkpoints" / files[0])
        args = mace_args(workdir)
        args[args.index("--max_num_epochs") + 1] = str(epoch)
        cmd = program("mace_run_train", "mace.cli.run_train") + args + [
            "--restart_latest", "--checkpoints_dir", str(dest / "checkpoints"), "--model_dir", str(dest),
            "--results_dir", str(dest / "results"), "--log_dir", str(dest / "logs")]
        with open(dest / "export.log", "w") as log:
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return out


def epochs_of(engine: str, dest: Path, files: list[str]) -> int | None:
    if not files:
        return None
    if engine == "mace":
        return int(re.search(r"_epoch-(\d+)", files[0]).group(1)) + 1
    if engine == "torchmd-net":
        return int(re.search(r"epoch=(\d+)", files[0]).group(1)) + 1
    import torch

    return int(torch.load(dest / files[0], map_location="cpu", weights_only=True)["epoch"]) + 1


# ----------------------------------------------------------------------------- evaluation

def torchmd_calculator(path: Path, e0: dict):
    """torchmd-net's own model from its Lightning checkpoint (read with weights_only=True), as ASE."""
    import numpy as np
    import torch
    from ase.calculators.calculator import Calculator, all_changes
    from torchmdnet.models import model as tm

    real = torch.load

    def safe_load(f, map_location=None, weights_only=None, **kwargs):
        return real(f, map_location=map_location, weights_only=True)

    torch.load = safe_load
    try:
        # trained with max_num_neighbors 32 (molecules of <= 24 atoms); 192 waters need more (the
        # pair buffer's size only, the weights are the same)
        model = tm.load_model(str(path), derivative=True, max_num_neighbors=128).float().eval()
    finally:
        torch.load = real
    shift = {int(z): e for z, e in e0.items()}

    class _Calc(Calculator):
        implemented_properties = ["energy", "free_energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            a = self.atoms
            pos = torch.tensor(a.positions, dtype=torch.float32)
            box = torch.tensor(a.cell.array, dtype=torch.float32) if a.pbc.any() else None
            energy, neg_dy = model(torch.from_numpy(a.numbers).long(), pos, torch.zeros(len(a), dtype=torch.long),
                                   box=box)
            e = float(energy.detach().sum()) + sum(shift[int(z)] for z in a.numbers)
            self.results = {"energy": e, "free_energy": e, "forces": neg_dy.detach().numpy().astype(np.float64)}

    return _Calc()


def calculator(engine: str, path: Path, e0: dict):
    if engine == "nnpcalc":
        from nnpcalc import NNPCalculator

        return NNPCalculator(str(path), dtype="float32")
    if engine == "torchmd-net":
        return torchmd_calculator(path, e0)
    import torch

    torch.serialization.add_safe_globals([slice])
    from mace.calculators import MACECalculator

    calc = MACECalculator(models=torch.jit.load(str(path), map_location="cpu"), device="cpu",
                          default_dtype="float32")
    # importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process (every later
    # torch.load without an explicit weights_only would unpickle code): undo it
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    return calc


def errors(calc, frames, test) -> dict:
    """Test MAEs: energy per atom (meV), force components (eV/Å); also without dimers and isolated
    atoms (their 0.5-4 Å scans carry forces of tens of eV/Å) and on neutral frames only."""
    import numpy as np

    rows = []
    for i in test:
        atoms = frames[i].copy()
        atoms.calc = calc
        de = abs(atoms.get_potential_energy() - frames[i].info["ref_energy"]) / len(atoms)
        df = np.abs(atoms.get_forces() - frames[i].arrays["ref_forces"]).ravel()
        rows.append((de, df, frames[i].info.get("subset"), float(frames[i].info.get("charge", 0.0))))

    def mae(keep):
        kept = [r for r in rows if keep(r)]
        return 1e3 * float(np.mean([r[0] for r in kept])), float(np.mean(np.concatenate([r[1] for r in kept])))

    e_all, f_all = mae(lambda r: True)
    e_mol, f_mol = mae(lambda r: r[2] not in ("dimers", "atoms"))
    e_neu, f_neu = mae(lambda r: r[3] == 0.0)
    return {"e": e_all, "f": f_all, "e_no_dimers": e_mol, "f_no_dimers": f_mol, "e_neutral": e_neu,
            "f_neutral": f_neu}


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    from ase.calculators.calculator import all_changes

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    recipe, spec, frames, parts = load_split(workdir)
    load = os.getloadavg()
    print(f"# {len(frames)} frames (periodic dropped): {', '.join(f'{k} {len(v)}' for k, v in parts.items())}; "
          f"budgets {args.cpu_minutes} CPU-min, training threads {args.train_threads}; load average {load[0]:.1f}",
          flush=True)
    if not args.evaluate_only:
        write_inputs(workdir, recipe, spec, frames, parts)
        (workdir / "inputs" / "parts.json").write_text(json.dumps(parts))
        train_all(workdir, args.engines, args.cpu_minutes, args.train_threads)
    e0 = {int(k): v for k, v in json.loads((workdir / "inputs" / "e0.json").read_text()).items()}
    rows, calcs = [], {}
    for engine in args.engines:
        for budget in sorted(args.cpu_minutes):
            dest = workdir / "snapshots" / f"{engine}-{budget:g}"
            info = json.loads((dest / "snapshot.json").read_text())
            path = finish_snapshot(workdir, engine, dest, args.threads)
            if path is None:
                rows.append({"engine": engine, "budget": budget, **info, "epochs": 0})
                continue
            calc = calculator(engine, path, e0)
            err = errors(calc, frames, parts["test"])
            row = {"engine": engine, "budget": budget, **info, "epochs": epochs_of(engine, dest, info["files"]), **err}
            rows.append(row)
            print(f"# {engine} @ {budget:g} CPU-min: {json.dumps({k: row[k] for k in err})}", flush=True)
            if budget == max(args.cpu_minutes):
                calcs[engine] = calc
    box = C.water(192)
    times = {e: [] for e in calcs}
    for calc in calcs.values():
        calc.calculate(box, ["energy", "forces"], all_changes)  # warm-up
    for _ in range(args.rounds):  # interleaved: A B C A B C ...
        for engine, calc in calcs.items():
            times[engine] += C.timed(lambda: calc.calculate(box, ["energy", "forces"], all_changes), 3)
    speed = {e: C.median(t) for e, t in times.items()}
    for row in rows:
        row["call_s"] = speed.get(row["engine"], float("nan"))
    (workdir / "results.json").write_text(json.dumps(rows, indent=1))
    load_end = os.getloadavg()
    print(f"\n## Equal-accuracy comparison, load average {load[0]:.1f} at start, {load_end[0]:.1f} at the end")
    print(C.table([[r["engine"], r["budget"], r["wall_s"] / 60, r["epochs"], r.get("e", float("nan")),
                    r.get("f", float("nan")), r.get("f_no_dimers", float("nan")), r.get("e_neutral", float("nan")),
                    r["call_s"] * 1e3, 1 / r["call_s"]] for r in rows],
                  ["engine", "CPU-min", "wall min", "epochs", "test E MAE meV/atom", "test F MAE eV/Å",
                   "F MAE w/o dimers", "E MAE neutral meV/atom", "E+F ms (192 waters)", "E+F calls/s"]))
    if args.plot:
        plot(rows, args.plot, args.threads)


def plot(rows, path: Path, threads: int):
    """Held-out force MAE against E+F calls/s, all test frames and without dimers; budgets as labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    style = {"nnpcalc": ("C0", "o"), "mace": ("C1", "s"), "torchmd-net": ("C2", "^")}
    for ax, key, title in ((axes[0], "f", "all test frames"),
                           (axes[1], "f_no_dimers", "without dimers / isolated atoms")):
        for engine, (colour, marker) in style.items():
            rs = sorted((r for r in rows if r["engine"] == engine and key in r), key=lambda r: r["budget"])
            ax.plot([1 / r["call_s"] for r in rs], [r[key] for r in rs], color=colour, marker=marker, label=engine)
            for r in rs:
                ax.annotate(f"{r['budget']:g}", (1 / r["call_s"], r[key]), textcoords="offset points",
                            xytext=(5, 3), fontsize=8)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"E+F calls/s, 192 waters ({threads} threads)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out force MAE (eV/Å)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Figure 7b: each engine trained by its own program; CPU-minutes as labels", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
