"""10 ps of the periodic 8-water box at 300 K (20 000 x 0.5 fs Langevin) on a model file; writes JSON.
Usage (repo root): .venv/bin/python models/evaluation/water10ps.py MODEL OUT.json"""
import json
import sys
import time

from nnpcalc.calculator import NNPCalculator
from nnpcalc.systems import water_box
from nnpcalc.workflows import scans

model, out = sys.argv[1:3]
start = time.time()
result = scans.water_md(NNPCalculator(model), water_box(2), steps=20000, every=50)
result["seconds"] = time.time() - start
result["model"] = model
json.dump(result, open(out, "w"), indent=1)
print(result)
