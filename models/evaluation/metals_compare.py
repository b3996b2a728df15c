"""Old (shipped v3) vs candidate TAG: every card number side by side; writes runs/v5/metals-v5/compare-TAG.txt.
Usage (repo root): python models/evaluation/metals_compare.py TAG, after metals_eval_all.sh MODEL TAG.
Old side: runs/v3/metals-eval-new.json, runs/v3/metals-props-{new,emt}.json (v3 by metals_eval.py / metals_props.py;
EMT: metals_props.py EMT), runs/v5/metals-v5/{sparse-test,dimer}-old.json (metals_eval_all.sh on v3, TAG old)."""
import json, sys
D = "runs/v5/metals-v5/"
tag = sys.argv[1]
eo, en = json.load(open("runs/v3/metals-eval-new.json")), json.load(open(f"{D}eval-{tag}.json"))
po, pn, pe = json.load(open("runs/v3/metals-props-new.json")), json.load(open(f"{D}props-{tag}.json")), json.load(open("runs/v3/metals-props-emt.json"))
so, sn = json.load(open(f"{D}sparse-test-old.json")), json.load(open(f"{D}sparse-test-{tag}.json"))
do, dn = json.load(open(f"{D}dimer-old.json")), json.load(open(f"{D}dimer-{tag}.json"))
L = []
for split, (o, n) in {"v2": (eo["test_v2"], en["test_v2"]), "v3": (eo["test_v3"], en["test_v3"]), "sparse": (so, sn)}.items():
    L.append(f"## test {split}: subset frames | E meV/atom old -> new | F MAE old -> new | F RMSE old -> new")
    for name in list(o["subsets"]) + ["all"] + list(o["elements"]):
        a = o["all"] if name == "all" else o["subsets"].get(name) or o["elements"][name]
        b = n["all"] if name == "all" else n["subsets"].get(name) or n["elements"][name]
        L.append(f"{split:6s} {name:16s} {a['frames']:4d} | {a['energy_mae_meV_atom']:7.1f} -> {b['energy_mae_meV_atom']:7.1f} | "
                 f"{a['forces_mae']:.4f} -> {b['forces_mae']:.4f} | {a['forces_rmse']:.4f} -> {b['forces_rmse']:.4f}")
L.append("## props: EMT / old / new (dev old -> new %)")
for key in ("a0", "surface_J_m2", "vacancy_eV", "cohesive_eV", "B_GPa", "C11_GPa", "C12_GPa", "C44_GPa", "E13_binding_eV_atom"):
    row = []
    for el in pe:
        e, a, b = pe[el][key], po[el][key], pn[el][key]
        row.append(f"{el} {b:.3f} ({100*(a-e)/e:+.1f} -> {100*(b-e)/e:+.1f})")
    L.append(f"{key:20s} " + " | ".join(row))
row = [f"{el} {max(po[el]['X_cm1']):.0f}->{max(pn[el]['X_cm1']):.0f} (EMT {max(pe[el]['X_cm1']):.0f})" for el in pe]
L.append("phonon X max       " + " | ".join(row))
L.append("## dimer scans 1.51-4.39 Å vs EMT, isolated atoms: old -> new")
for el in do:
    L.append(f"{el:5s} " + " | ".join(f"{k} {do[el][k]:+.3f} -> {dn[el][k]:+.3f}" for k in do[el]))
L.append("## dimers from 0.5 Å (min Å / rise eV / wall ok) old -> new")
for p, a in eo["dimers"].items():
    b = en["dimers"][p]
    L.append(f"{p} EMT min {a['ref_min']} rise {a['ref_rise']:.0f} | min {a['min']} -> {b['min']} | rise {a['rise']:.0f} -> {b['rise']:.0f} | {a['wall_ok']} -> {b['wall_ok']}")
for k in eo["stability"]:
    L.append(f"{k}: {eo['stability'][k]} -> {en['stability'][k]}")
open(f"{D}compare-{tag}.txt", "w").write("\n".join(L) + "\n")
print("\n".join(L))
