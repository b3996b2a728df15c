"""The v4 default model's card (models/hcno-gfn2.md), every number from the evaluation JSONs.

  .venv/bin/python models/evaluation/hcno-gfn2-card.py > models/hcno-gfn2.md
Inputs: previous = v3 (runs/v3/eval-ewald-last.json), candidate = leg E's last checkpoint
(runs/v3/eval-legE-last.json, by `models/evaluation/evaluate.sh runs/v5/hcno-legE-last.pt legE-last`), its
best.ckpt (eval-legE-best.json), the hcno-v3-extra test split (runs/v5/eval-extra-legE.json, by
models/evaluation/eval_extra.py), 10 ps water (runs/v5/water10ps-legE-last.json, by models/evaluation/water10ps.py).
"""
import csv
import json
import re
from pathlib import Path

V3, V5 = Path("runs/v3"), Path("runs/v5")
prev, new, best = (json.load(open(V3 / f)) for f in ("eval-ewald-last.json", "eval-legE-last.json", "eval-legE-best.json"))
extra = json.load(open(V5 / "eval-extra-legE.json"))
MODEL, RUN = V5 / "hcno-legE-last.pt", V5 / "hcno-legE"
w10_path = V5 / "water10ps-legE-last.json"
w10 = json.load(open(w10_path)) if w10_path.is_file() else None
S, P, B = new["subsets"], prev["subsets"], best["subsets"]
W = "water-box-md (never trained on)"
CH = "charged ±1 (ions + distorted ions)"


def f3(x):
    return "—" if x is None else (f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}")


def arrow(sub_old, sub_new, name, key):
    return f"{f3(sub_old.get(name, {}).get(key))} → **{f3(sub_new.get(name, {}).get(key))}**"


ROWS = [("ethanol", "ethanol MD"), ("organics", "organics (rattled G2)"),
        ("distorted", "organics compressed/stretched"), ("ions", "ions (charge ±1)"),
        (CH, "every charged test frame (ions + distorted ions)"),
        (W, "periodic water MD (never trained on)"),
        ("water-box-compressed", "periodic water compressed"), ("molecule-pairs", "molecule pairs from 1 Å"),
        ("bonds", "bond scans 0.6–2×"), ("dimers", "dimers 0.5–4 Å"), ("all", "all test frames")]
EXTRA = [("v3-extra organics-md", "G2 organics MD 300/600 K"), ("v3-extra ions", "ions MD 300/600 K"),
         ("v3-extra water-clusters", "water clusters of 10–16, MD 300/400 K")]
XP, XN, XB = (extra["models"][m] for m in ("runs/v5/hcno-v3.pt", "runs/v5/hcno-legE-last.pt", "runs/v5/hcno-legE-best.pt"))


def run_info():
    summary = json.load(open(RUN / "summary.json")) if (RUN / "summary.json").is_file() else {}
    rows = []
    for f in RUN.glob("logs/**/metrics.csv"):
        rows = [r for r in csv.DictReader(open(f)) if r.get("val_monitor")]
    i = min(range(len(rows)), key=lambda k: float(rows[k]["val_monitor"]))
    return summary, int(rows[i]["epoch"]), int(rows[-1]["epoch"]), rows


def self_energy(model):
    from nnpcalc import modelfile

    scripted, _ = modelfile.load(model)
    state = scripted.state_dict()
    chi = next(v for k, v in state.items() if k.endswith("electronegativity")).double() * 10.0
    hard = next(v for k, v in state.items() if k.endswith(".hardness")).double()
    J = 10.0 * (hard.exp().log1p())
    return {s: (float(chi[z]), float(J[z])) for s, z in (("H", 1), ("C", 6), ("N", 7), ("O", 8))}


def worse(key, what, unit):
    rows = [f"{label} {f3(P[k][key])} → {f3(S[k][key])}" for k, label in ROWS
            if k in P and k in S and S[k][key] > 1.05 * P[k][key]]
    return f"**{what}** ({unit}) on " + ("; ".join(rows) if rows else "no subset")


def nve(text):
    return float(re.search(r"error ([0-9.e+-]+)", text).group(1))


summary, best_ep, last_ep, rows = run_info()
se = self_energy(MODEL)
fr_p, fr_n, fr_b = prev["frequencies"], new["frequencies"], best["frequencies"]
mols = [m for m in fr_n if m != "mean"]
pretty = {"H2O": "H₂O", "NH3": "NH₃", "CH4": "CH₄", "CH3OH": "CH₃OH", "H2CO": "H₂CO", "CH3CH2OH": "ethanol"}
md_p, md_n = prev["water_box_md"], new["water_box_md"]

out = []
w = out.append
w(f"""# hcno-gfn2

The default model: H, C, N, O molecules, ions, water clusters and periodic water at the
GFN2-xTB level (tblite), with energy, forces and Mulliken partial charges (summing exactly to
the total charge), the dipole from those charges, the long-range Coulomb energy of those
charges (Ewald for periodic cells) with a charge self-energy that makes the energy depend on
the total charge, and a ZBL screened nuclear repulsion inside the file so that atoms never
fuse. A small TensorNet (48×2) for demos, MD of small organic molecules, ions and water; not
a general-purpose potential. Version 4 (this card): v3 fine-tuned on twice as much near-equilibrium data.

- elements: H, C, N, O; cutoff 5.0 Å (short-range network); outputs: energy, energies, charges, dipole,
  forces, stress
- backbone: tensornet {{hidden_channels: 48, num_layers: 2, num_rbf: 24}}; heads: {', '.join(new['heads'])}
- physics terms in the file (`metadata["heads"]`, `metadata["architecture"]`): **ZBL** screened
  nuclear repulsion (radius_factor 0.7: the wall acts below 0.7× the sum of covalent radii, so it
  ends before the X–H bond lengths); **Ewald** Coulomb energy of the predicted charges
  (`electrostatics: ewald`: damped inside the 5 Å cutoff so the short range stays the network's,
  bare 1/r beyond, Ewald sums for periodic cells, accuracy 1e-6, real-space cutoff automatic;
  forces and stress by autograd); **charge self-energy** Σ χ_Z q + ½ J_Z q² with
  χ (eV/e) {', '.join(f'{s} {v[0]:.2f}' for s, v in se.items())} and
  J (eV/e²) {', '.join(f'{s} {v[1]:.3g}' for s, v in se.items())}
- charges trained by the energy and GFN2-xTB's Mulliken charges (auxiliary loss, weight 25; v3: 10)
- saved as float32; loads with bare `torch.jit.load`; recipe `models/hcno-gfn2.yaml`

## Data and split
Two files, each split on its own (seed 0, grouped by blocks of 10 frames of a job), so v3's
test frames stayed unseen by this fine-tune and the rows below compare like with like:
- `data/hcno-v2.extxyz` (v3's data, unchanged; job list `hcno-v2`, sha256 `db4e6350b6e37b26…`): 1945 frames —
  ethanol MD 300–700 K (180), water clusters (132), ions NH₄⁺, CH₃NH₃⁺, H₃O⁺, CH₃OH₂⁺, OH⁻, CH₃O⁻,
  HCOO⁻, CH₃COO⁻, CH₃CH₂O⁻ under MD (180), G2 organics rattled (288) and compressed/stretched
  0.8–1.3× (324), bond scans 0.6–2× (192), dimers of H/C/N/O from 0.5 Å (241),
  water/methane/ammonia/methanol pairs from 1 Å (384), periodic 8-water boxes near and off
  equilibrium (20), isolated atoms (4). Train 1575, validation 187, test 183.
- `data/hcno-v3-extra.extxyz` (new; job list `hcno-v3-extra`, its manifest names every job and the sha256):
  1176 frames of GFN2-xTB MD with the charge passed to tblite — all 72 G2 organics at 300 and
  600 K, the nine ions at 300 and 600 K, water clusters of 10–16 molecules at 300/400 K, the periodic
  8-water box at 300/400 K on new seeds (labelled in 513 s at 1 worker). Train 937, validation
  116, test 123.
- Held out, never trained on: `data/water-box-md.extxyz` (job list `water-box-md`, sha256
  `9c090b19f754b4bc…`), 32 frames of GFN2-xTB MD of the periodic 8-water box at 300/450 K.
- How held out the "organics" row is: its test frames hold {extra['v2 test organics formulas']} formulas. In v3's training
  5 of them appeared only as compressed/stretched (0.8–1.3×) frames (one also as a rattled isomer) and 3
  not at all (C₂H₂O₂, O₃, C₃H₉N; by formula over v3's training split). Now {extra['of which in v3-extra training (other geometries)']} of the
  {extra['v2 test organics formulas']} appear in training at near-equilibrium geometries (their 300/600 K MD in `hcno-v3-extra`), so the
  row measures unseen geometries of seen molecules, as MD17-style benchmarks do, no longer unseen molecules.

## Held-out test errors per subset (v3 → this model)
| subset | frames | energy MAE meV/atom | force MAE eV/Å | force RMSE eV/Å | charge MAE e |
|---|---:|---:|---:|---:|---:|""")
for key, label in ROWS:
    w(f"| {label} | {S[key]['frames']} | {arrow(P, S, key, 'energy_mae_meV_atom')} | {arrow(P, S, key, 'forces_mae')} | "
      f"{f3(S[key]['forces_rmse'])} | {arrow(P, S, key, 'charges_mae')} |")
w("""
Test split of `hcno-v3-extra` (new near-equilibrium frames; v3 never saw that file):

| subset | frames | energy MAE meV/atom | force MAE eV/Å | force RMSE eV/Å | charge MAE e |
|---|---:|---:|---:|---:|---:|""")
for key, label in EXTRA:
    w(f"| {label} | {XN[key]['frames']} | {arrow(XP, XN, key, 'energy_mae_meV_atom')} | {arrow(XP, XN, key, 'forces_mae')} | "
      f"{f3(XN[key]['forces_rmse'])} | {arrow(XP, XN, key, 'charges_mae')} |")
w(f"""
Worse than v3 (by more than 5 %): {worse('energy_mae_meV_atom', 'energy', 'meV/atom')};
{worse('forces_mae', 'forces', 'eV/Å')}; {worse('charges_mae', 'charges', 'e')}.

Harmonic frequencies against GFN2-xTB (each molecule relaxed with its own method, mean |Δν| cm⁻¹,
`heldout.frequency_errors`): {', '.join(f'{pretty.get(m, m)} {fr_p[m]:.0f} → {fr_n[m]:.0f}' for m in mols)};
mean **{fr_p['mean']:.0f} → {fr_n['mean']:.0f}**.

## Dimer walls (from 0.5 Å; `nnp check`, `tests/test_model_stability.py`)
| dimer | GFN2-xTB minimum Å | v3 | this | GFN2-xTB E(0.5 Å) − E_min eV | v3 | this (monotonic) |
|---|---:|---:|---:|---:|---:|---:|""")
for pair, r in new["dimers"].items():
    o = prev["dimers"][pair]
    w(f"| {pair.replace('-', '–')} | {r['ref_min']:.1f} | {o['min']:.1f} | **{r['min']:.1f}** | {r['ref_rise']:.3g} | "
      f"{o['rise']:.3g} | {r['rise']:.3g} ({'yes' if r['wall_ok'] else 'NO'}) |")
if w10:
    ten = (f"- 10 ps of the same box at 300 K (20 000 × 0.5 fs, `models/evaluation/water10ps.py`, "
           f"{w10['seconds'] / 60:.0f} min on a loaded machine): closest O–O {w10['closest_OO']:.2f} Å, longest O–H "
           f"{w10['longest_OH']:.3f} Å, " + ("no molecule fused or broken (v3: 2.39 Å, 1.086 Å)." if w10["failed_at_step"] is None
                                              else f"**FAILED at step {w10['failed_at_step']}**."))
else:
    ten = "- **PLACEHOLDER — 10 ps water box not finished** (`models/evaluation/water10ps.py`)."
w(f"""
## Stability and energy conservation
- Periodic 8-water box (`nnpcalc.systems.water_box(2)`), Langevin 300 K, 0.5 fs steps
  (`workflows.scans.water_md`), {md_n['time_ps']:g} ps: closest O–O {md_p['closest_OO']:.2f} → **{md_n['closest_OO']:.2f} Å**,
  longest O–H {md_p['longest_OH']:.3f} → **{md_n['longest_OH']:.3f} Å**, {'no molecule fused or broken' if md_n['failed_at_step'] is None else 'FAILED'}
  (the check fails below O–O 2.0 Å or above O–H 1.5 Å).
{ten}
  Not run: GFN2-xTB on the same start (~11 CPU-hours of periodic tblite).
- NVE, 400 × 0.25 fs from 300 K, largest |E(t) − E(0)|: ethanol {nve(prev['nve']['ethanol']):.1e} → {nve(new['nve']['ethanol']):.1e} eV/atom,
  water box {nve(prev['nve']['water_box']):.1e} → {nve(new['nve']['water_box']):.1e} eV/atom (tolerance 1e-3).

## Targets of issue 12
| target | this model | |
|---|---|---|""")


def reached(ok):
    return "**reached**" if ok else "not reached"


walls = all(r["wall_ok"] and r["min"] == r["ref_min"] for r in new["dimers"].values())
box_ok = md_n["failed_at_step"] is None and (w10 is None or w10["failed_at_step"] is None)
qs = [S[k]["charges_mae"] for k in ("ethanol", W, "all", "ions")]
within = [pretty.get(m, m) for m in mols if fr_n[m] <= 20]
org_md = XN["v3-extra organics-md"]["forces_mae"]
w(f"| no fused water, walls from 0.5 Å | dimer minima where GFN2-xTB has them; water box intact "
  f"{'10 ps' if w10 else format(md_n['time_ps'], 'g') + ' ps'} | {reached(walls and box_ok)} |")
w(f"| forces ≤ 0.05 eV/Å on ethanol MD | {S['ethanol']['forces_mae']:.3f} | {reached(S['ethanol']['forces_mae'] <= 0.05)} |")
w(f"| forces ≤ 0.10 eV/Å on small organics | {org_md:.3f} (G2 organics MD 300/600 K), {S['ions']['forces_mae']:.3f} (ions); "
  f"{S['organics']['forces_mae']:.2f} rattled by 0.06 Å, {S['distorted']['forces_mae']:.2f} compressed/stretched | "
  f"{reached(org_md <= 0.10)} near equilibrium; not on rattled/distorted frames |")
w(f"| forces ≤ 0.08 eV/Å on periodic water | {S[W]['forces_mae']:.3f} (MD, never trained on); "
  f"{S['water-box-compressed']['forces_mae']:.2f} compressed | {reached(S[W]['forces_mae'] <= 0.08)} (MD) |")
w(f"| charges ≤ 0.02 e | {qs[0]:.3f} ethanol, {qs[1]:.3f} water, {qs[2]:.3f} all, {qs[3]:.3f} ions | "
  f"{'**reached**' if max(qs) <= 0.02 else 'partly (ethanol, water)' if max(qs[:2]) <= 0.02 else 'not reached'} |")
w(f"| frequencies within 20 cm⁻¹ | {fr_n['mean']:.0f} on average ({', '.join(within) or 'none'} within 20) | "
  f"{reached(fr_n['mean'] <= 20)} |")
worst = max(mols, key=lambda m: fr_n[m])
w(f"""
What would reach the rest: (1) frequencies ({fr_n['mean']:.0f} cm⁻¹; worst {pretty.get(worst, worst)} {fr_n[worst]:.0f},
then H₂CO {fr_n['H2CO']:.0f}): most likely the curvature at the minimum, which MD frames constrain only
weakly; Hessian-aware data (frames displaced along GFN2-xTB normal modes, or
force-derivative labels) is the direct fix, and more capacity (TensorNet 48×2 is the demo size; the
frequency error fell only {fr_p['mean']:.0f} → {fr_n['mean']:.0f} with twice the near-equilibrium data).
(2) Rattled and compressed organics ({S['organics']['forces_mae']:.2f} / {S['distorted']['forces_mae']:.2f} eV/Å; forces there
are several eV/Å, so ~10 % relative): a bigger model — at this size the validation loss plateaued
after ~45 epochs. (3) Charges ≤ 0.02 e everywhere: ions {qs[3]:.3f} e (v3 0.053) after weighting the charge
loss 25 (v3 10); the energy terms pull the charges away from the Mulliken labels, so the label
weight trades against energies.

## Cost and how to continue
v3: least-squares self-energy start + 71 epochs in 38 min. This leg (E, the recipe `models/hcno-gfn2.yaml`):
`init_from` v3, both data files, lr 3e-4 (plateau scheduler, patience 6), monitor = validation
energy MAE + force MAE + 2 × charge MAE (`trainer.monitor`), {last_ep + 1} epochs in ~66 min on one
torch thread of a 2-core machine shared with 4–6 other jobs (load 3–11), stopped by hand after the
monitor had plateaued (best epoch {best_ep}, {min(float(r['val_monitor']) for r in rows):.4f};
last {last_ep}, {float(rows[-1]['val_monitor']):.4f}). The shipped file is that run's `last.ckpt`:
on the test split best.ckpt → last.ckpt: ethanol forces {f3(B['ethanol']['forces_mae'])} → {f3(S['ethanol']['forces_mae'])}, periodic
water MD {f3(B[W]['forces_mae'])} → {f3(S[W]['forces_mae'])} eV/Å and {f3(B[W]['energy_mae_meV_atom'])} → {f3(S[W]['energy_mae_meV_atom'])} meV/atom, ions
{f3(B['ions']['energy_mae_meV_atom'])} → {f3(S['ions']['energy_mae_meV_atom'])} meV/atom, frequencies {fr_b['mean']:.0f} → {fr_n['mean']:.0f} cm⁻¹.
At run time the Ewald term costs ×1.7–1.9 over the short-range model on 192 and 1536 periodic
waters (`benchmarks/electrostatics_cost.py`); molecules pay the damped direct sum only.
The with/without Coulomb comparison (legs A and B of v3, same data and start) is in this card's
v3 version (`git show 2aff447:models/hcno-gfn2.md`): the Coulomb + self-energy terms took the
charged frames' energy error from 922 to 161 meV/atom.
Every number above: `models/evaluation/evaluate.sh MODEL TAG`, `models/evaluation/eval_extra.py`, `models/evaluation/water10ps.py`,
then `.venv/bin/python models/evaluation/hcno-gfn2-card.py > models/hcno-gfn2.md`.""")
print("\n".join(out))
