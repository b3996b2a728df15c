#!/usr/bin/env bash
# Card numbers of one candidate default model, exactly as models/hcno-gfn2.md reports them
# (runs/final_hcno.sh, runs/evaluate.py, runs/freqs.py in one go):
#   held-out test split of the recipe per subset (ions included; charges passed), the
#   water-box-md set (never trained on), all test frames, dimer walls vs GFN2-xTB,
#   harmonic frequencies vs GFN2-xTB, NVE (ethanol, water box), 2000-step water-box MD at 300 K.
# Usage (from anywhere):  models/evaluation/evaluate.sh MODEL TAG   e.g. models/evaluation/evaluate.sh models/hcno-gfn2.pt v4
# Writes runs/v3/eval-TAG.json (rewritten after each section: partial results survive) and
# runs/v3/eval-TAG.log (scratch, gitignored; the card script reads them there). ~5-10 min on one nice'd thread of the shared machine.
# Env: RECIPE (default models/hcno-gfn2.yaml: all v3 legs share its data, seed and split),
#      NICE (default 10), MD_STEPS (default 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ne 2 ]; then echo "usage: $0 MODEL TAG" >&2; exit 2; fi
MODEL=$1 TAG=$2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export RECIPE=${RECIPE:-models/hcno-gfn2.yaml} MD_STEPS=${MD_STEPS:-2000}
OUT=runs/v3/eval-$TAG.json LOG=runs/v3/eval-$TAG.log
mkdir -p runs/v3
nice -n "${NICE:-10}" .venv/bin/python - "$MODEL" "$OUT" > "$LOG" 2>&1 <<'PY' || { tail -20 "$LOG"; exit 1; }
import json, os, sys, time

import numpy as np
from ase.build import molecule
from ase.io import read

from nnpcalc import modelfile
from nnpcalc.calculator import NNPCalculator
from nnpcalc.systems import water_box
from nnpcalc.training import heldout, reference
from nnpcalc.workflows import scans
from nnpcalc.workflows.check import check_nve

path, json_path = sys.argv[1:3]
meta = modelfile.read_metadata(path)
out = {"model": path, "recipe": os.environ["RECIPE"], "heads": meta["heads"],
       "electrostatics": [meta["architecture"].get("electrostatics", "none"),
                          meta["architecture"].get("electrostatics_kwargs", {})],
       "seconds": {}}


def section(name, start):
    out["seconds"][name] = round(time.time() - start, 1)
    json.dump(out, open(json_path, "w"), indent=1)
    print(name, json.dumps(out.get(name), indent=1), f"({out['seconds'][name]} s)", flush=True)


t = time.time()  # held-out test split per subset, then every test frame as "all", then water-box-md
frames = heldout.test_frames(os.environ["RECIPE"])
out["subsets"] = heldout.subset_errors(path, frames)
everything = [f.copy() for f in frames]
for f in everything:
    f.info["subset"] = "all"
out["subsets"].update(heldout.subset_errors(path, everything))
charged = [f for f in everything if f.info.get("charge", 0.0) != 0.0]  # extra row: every charged test frame
for f in charged:
    f.info["subset"] = "charged ±1 (ions + distorted ions)"
out["subsets"].update(heldout.subset_errors(path, charged))
box = read("data/water-box-md.extxyz", ":")
for f in box:
    f.info["subset"] = "water-box-md (never trained on)"
out["subsets"].update(heldout.subset_errors(path, box))
section("subsets", t)

t = time.time()  # dimer walls from 0.5 Å (as runs/evaluate.py)
d = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.3, 2.6, 3.0, 3.5, 4.5])
ref_calc, calc = reference.calculator("GFN2-xTB"), NNPCalculator(path)
out["dimers"] = {}
for a, b in [("H", "H"), ("O", "H"), ("C", "H"), ("O", "O"), ("C", "C"), ("N", "H")]:
    ref, e = scans.dimer_curve(ref_calc, a, b, d), scans.dimer_curve(calc, a, b, d)
    out["dimers"][f"{a}-{b}"] = {"ref_min": float(d[np.nanargmin(ref)]), "ref_rise": float(np.nanmax(ref[:3]) - np.nanmin(ref)),
                                 "min": float(d[np.argmin(e)]), "rise": float(e[0] - e.min()),
                                 "wall_ok": scans.wall_check("x", d, e).passed}
section("dimers", t)

t = time.time()  # harmonic frequencies, each molecule relaxed with its own method (as runs/freqs.py)
out["frequencies"] = heldout.frequency_errors(NNPCalculator(path))
out["frequencies"]["mean"] = float(np.mean(list(out["frequencies"].values())))
section("frequencies", t)

t = time.time()  # NVE and the water-box MD (as runs/final_hcno.sh)
c = NNPCalculator(path)
out["nve"] = {"ethanol": str(check_nve(c, molecule("CH3CH2OH"), 1e-3, steps=400)),
              "water_box": str(check_nve(c, water_box(2), 1e-3, steps=400))}
section("nve", t)
t = time.time()
out["water_box_md"] = scans.water_md(c, water_box(2), steps=int(os.environ["MD_STEPS"]))
section("water_box_md", t)
s = out["subsets"]
print("SUMMARY", json.dumps({k: round(s[k]["energy_mae_meV_atom"], 1) for k in s} | {
    "forces_all": round(s["all"]["forces_mae"], 3), "freq_mean": round(out["frequencies"]["mean"], 1),
    "water_md_failed_at": out["water_box_md"]["failed_at_step"]}), flush=True)
PY
tail -1 "$LOG"
