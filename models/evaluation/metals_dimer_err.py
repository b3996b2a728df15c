"""Dimer curves against EMT on a fine grid 1.5-4.4 Å (0.02 Å; none of it a training distance), and
isolated atoms. Usage (repo root): python models/evaluation/metals_dimer_err.py MODEL OUT.json"""
import json, sys
import numpy as np
from ase import Atoms
from nnpcalc.calculator import NNPCalculator
from nnpcalc.training import reference
calc, emt = NNPCalculator(sys.argv[1]), reference.calculator("EMT")
d = np.round(np.arange(1.51, 4.40, 0.02), 3)
out = {}
for el in ("Cu", "Al", "Au", "Ni", "Ag", "Pd", "Pt"):
    a = Atoms(el); a.calc = calc; ea = a.get_potential_energy(); a.calc = emt; ea_ref = a.get_potential_energy()
    de, df = [], []
    for x in d:
        m = Atoms(el + "2", positions=[[0, 0, 0], [x, 0, 0]])
        m.calc = calc; e, f = m.get_potential_energy(), m.get_forces()[1, 0]
        m.calc = emt; de.append(e - m.get_potential_energy()); df.append(f - m.get_forces()[1, 0])
    de, df = np.array(de), np.array(df)
    out[el] = {"atom_err_eV": ea - ea_ref, "dimer_E_mae_eV": float(np.abs(de).mean()), "dimer_E_max_eV": float(np.abs(de).max()),
               "dimer_F_mae": float(np.abs(df).mean()), "dimer_F_max": float(np.abs(df).max()),
               "dimer_F_mae_1.8": float(np.abs(df[d >= 1.8]).mean())}
    print(el, " ".join(f"{k} {v:+.3f}" for k, v in out[el].items()), flush=True)
out["mean"] = {k: float(np.mean([abs(out[e][k]) for e in out])) for k in out["Cu"]}
print("mean", out["mean"])
json.dump(out, open(sys.argv[2], "w"), indent=1)
