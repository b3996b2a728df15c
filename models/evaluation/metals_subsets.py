"""Held-out errors per subset and per element of a model on a recipe's test split (heldout.subset_errors).
Usage (repo root): python models/evaluation/metals_subsets.py RECIPE MODEL OUT.json
(RECIPE: models/evaluation/splits/emt-v2.yaml, emt-v3.yaml or emt-v5-sparse.yaml)"""
import json
import sys

from nnpcalc.training import heldout

recipe, model, out = sys.argv[1:4]
frames = heldout.test_frames(recipe)
res = {"recipe": recipe, "model": model, "subsets": heldout.subset_errors(model, frames)}
for f in frames:
    f.info["subset"] = "all"
res["all"] = heldout.subset_errors(model, frames)["all"]
for f in frames:
    f.info["subset"] = f.get_chemical_symbols()[0]
res["elements"] = heldout.subset_errors(model, frames)
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
