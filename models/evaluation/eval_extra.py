"""Held-out errors on hcno-v3-extra's own test split (frames no model saw), per subset, for several models.
Usage (repo root): .venv/bin/python models/evaluation/eval_extra.py OUT.json MODEL [MODEL ...]
Also: how many organics molecules of hcno-v2's test split (unseen by v3) appear in leg E's training."""
import json
import sys

from nnpcalc.training import heldout
from nnpcalc.training.data import DataSpec, read_frames, split_indices
from nnpcalc.training.train import load_config

out_path, models = sys.argv[1], sys.argv[2:]
# models/hcno-gfn2.yaml: leg E's recipe (runs/v5/hcno-legE.yaml) with the same seed and data, so the same split
config = load_config("models/hcno-gfn2.yaml")
spec = DataSpec(**config["data"])
frames = read_frames(spec, config["seed"])
parts = split_indices(frames, spec, config["seed"])
extra = [frames[i] for i in parts["test"] if frames[i].info["data_file"].endswith("hcno-v3-extra.extxyz")]
for f in extra:
    f.info["subset"] = "v3-extra " + f.info["subset"]
train = [frames[i] for i in parts["train"]]
seen = {f.get_chemical_formula() for f in train if f.info["data_file"].endswith("hcno-v3-extra.extxyz")}
v2_test_org = {f.get_chemical_formula() for i in parts["test"] for f in [frames[i]]
               if f.info["subset"] == "organics" and f.info["data_file"].endswith("hcno-v2.extxyz")}
v2_train_org = {f.get_chemical_formula() for f in train if f.info["subset"] == "organics"}
result = {"v2 test organics formulas": len(v2_test_org),
          "of which in v3-extra training (other geometries)": len(v2_test_org & seen),
          "of which in v2 training (other isomer, same formula)": len(v2_test_org & v2_train_org), "models": {}}
for m in models:
    result["models"][m] = heldout.subset_errors(m, extra)
    json.dump(result, open(out_path, "w"), indent=1)
print(json.dumps(result, indent=1))
