"""Card numbers of a metals model (same measures as runs/evaluate.py, runs/final_metals.sh and
heldout.metal_properties): held-out errors per subset on the emt-v2 and emt-v3 test splits, dimer
scans from 0.5 Å against EMT, slab/vacancy MD at 600 K and NVE drift of Cu bulk.
Usage (repo root): python models/evaluation/metals_eval.py MODEL OUT.json
(also writes OUT.test_v2.json / OUT.test_v3.json, the per-split subset errors)"""
import json
import subprocess
import sys
import time

import numpy as np
from ase.build import bulk, fcc111

from nnpcalc.calculator import NNPCalculator
from nnpcalc.training import reference
from nnpcalc.workflows import scans
from nnpcalc.workflows.check import check_nve

model, out_path = sys.argv[1:3]
out = {"model": model}
t = time.time()
for recipe, tag in (("models/evaluation/splits/emt-v2.yaml", "v2"), ("models/evaluation/splits/emt-v3.yaml", "v3")):
    path = f"{out_path}.test_{tag}.json"
    subprocess.run([sys.executable, "models/evaluation/metals_subsets.py", recipe, model, path], check=True,
                   stdout=subprocess.DEVNULL)
    out[f"test_{tag}"] = json.load(open(path))
    print(tag, f"{time.time() - t:.0f}s", json.dumps(out[f"test_{tag}"]["all"]), flush=True)
d = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.3, 2.6, 3.0, 3.5, 4.5])
ref_calc, calc = reference.calculator("EMT"), NNPCalculator(model)
out["dimers"] = {}
for a in ("Cu", "Al", "Au", "Ni", "Ag", "Pd", "Pt"):
    ref, e = scans.dimer_curve(ref_calc, a, a, d), scans.dimer_curve(calc, a, a, d)
    out["dimers"][f"{a}-{a}"] = {"ref_min": float(d[np.nanargmin(ref)]), "ref_rise": float(np.nanmax(ref[:3]) - np.nanmin(ref)),
                                 "min": float(d[np.argmin(e)]), "rise": float(e[0] - e.min()),
                                 "wall_ok": scans.wall_check("x", d, e).passed}
print("dimers", json.dumps(out["dimers"]), flush=True)
slab = fcc111("Cu", (2, 2, 3), vacuum=5.0, periodic=True)
vac = bulk("Cu", cubic=True) * (2, 2, 2)
del vac[0]
out["stability"] = {
    "slab": str(scans.fused_md_check(calc, slab, steps=500, temperature_K=600.0, timestep_fs=2.0, factor=0.75)),
    "vacancy": str(scans.fused_md_check(calc, vac, steps=500, temperature_K=600.0, timestep_fs=2.0, factor=0.75)),
    "nve_cu_bulk": str(check_nve(calc, bulk("Cu", cubic=True) * (2, 2, 2), 1e-3, steps=400, timestep_fs=2.0))}
print("stability", json.dumps(out["stability"]), f"{time.time() - t:.0f}s", flush=True)
json.dump(out, open(out_path, "w"), indent=1)
