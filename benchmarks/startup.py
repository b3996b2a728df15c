"""Figure 4: time to the first energy in a fresh process (import + load + first call), and
``nnp --help``.

Run: /work/bench-venv/bin/python benchmarks/startup.py --threads 2

Each measurement is a new Python process timed from outside (interpreter start included),
``--repeat`` times, engines interleaved; medians. The structure is 64 waters (192 atoms).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

HERE = Path(__file__).resolve().parent
FIRST_ENERGY = {
    "nnpcalc": "from nnpcalc import NNPCalculator; calc = NNPCalculator({model!r})",
    "nnpcalc (benchmark TensorNet 128x2)": "from nnpcalc import NNPCalculator; calc = NNPCalculator({bench!r})",
    "torchmd-net": "import _common as C; calc = C.TorchMDNetCalculator()",
    "mace-small": "import _common as C; calc = C.mace_calculator('small')",
    "chgnet": "import _common as C; calc = C.chgnet_calculator()",
    "sevennet-0": "import _common as C; calc = C.sevennet_calculator()",
}
PRELUDE = ("import sys; sys.path.insert(0, {here!r}); import torch; torch.set_num_threads({threads}); "
           "from _common import water; atoms = water(192); ")
TAIL = "; atoms.calc = calc; atoms.get_potential_energy(); atoms.get_forces()"


def options(parser):
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default=None, help="nnpcalc model (default: the shipped default model)")


def nnp_executable() -> list[str]:
    for candidate in (Path(sys.prefix) / "bin" / "nnp", HERE.parent / ".venv" / "bin" / "nnp"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-c", "from nnpcalc.cli.main import main; main()"]


def wall(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ)
    return time.perf_counter() - t0


def main():
    args = C.setup(__doc__.splitlines()[0], options)
    from nnpcalc.zoo import available

    model = args.model or ("hcno-gfn2" if "hcno-gfn2" in available() else str(C.nnpcalc_model_file()))
    bench = str(C.nnpcalc_model_file())
    prelude = PRELUDE.format(here=str(HERE), threads=args.threads)
    cmds = {"nnp --help": nnp_executable() + ["--help"],
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
    for name, body in FIRST_ENERGY.items():
        code = prelude + body.format(model=model, bench=bench) + TAIL
        try:
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600)
        except subprocess.CalledProcessError as err:
            print(f"# skipped {name}: {err.stderr.decode().strip().splitlines()[-1][:150]}")
            continue
        cmds[f"first energy: {name}"] = [sys.executable, "-c", code]
    times = {name: [] for name in cmds}
    for _ in range(args.repeat):
        for name, cmd in cmds.items():
            times[name].append(wall(cmd))
    rows = [[name, C.median(t), min(t)] for name, t in times.items()]
    print(f"\n## Fresh-process times (s), nnpcalc model {Path(model).name}, threads = {args.threads}")
    print(C.table(rows, ["what", "median s", "best s"]))


if __name__ == "__main__":
    main()
