"""The card's 10 ps stability runs (tests/test_model_stability.py::test_metal_slab_and_vacancy_10_ps) on a model file.
Usage (repo root): python models/evaluation/metals_stability10.py MODEL slab|vacancy OUT.json"""
import json
import sys
import time

from ase.build import bulk, fcc111

from nnpcalc.calculator import NNPCalculator
from nnpcalc.workflows import scans

model, name, out = sys.argv[1:4]
atoms = fcc111("Cu", (2, 2, 3), vacuum=5.0, periodic=True) if name == "slab" else bulk("Cu", cubic=True) * (2, 2, 2)
if name == "vacancy":
    del atoms[0]
t = time.time()
result = scans.fused_md_check(NNPCalculator(model), atoms, steps=5000, temperature_K=600.0, timestep_fs=2.0, factor=0.75)
json.dump({"model": model, name: str(result), "passed": bool(result.passed), "seconds": time.time() - t}, open(out, "w"), indent=1)
print(name, result, f"{time.time() - t:.0f}s")
