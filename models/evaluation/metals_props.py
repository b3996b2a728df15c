"""Extra metal properties for issue 12's metals model (beyond heldout.metal_properties):
elastic constants C11/C12/C44 and bulk modulus from stresses at ±0.5 % strain (at the calculator's
own a0), phonon frequencies at X and L (ase.phonons, 4x4x4 primitive supercell), relaxed
13-atom icosahedron binding energy per atom. Usage (repo root): python models/evaluation/metals_props.py MODEL OUT.json [elements]"""
import json
import sys
import time

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from nnpcalc.calculator import NNPCalculator
from nnpcalc.training.heldout import lattice_constant, metal_properties

EV_A3_TO_GPA = 160.21766


def elastic(calc, element, a0, eps=0.005):
    unit = bulk(element, "fcc", a=a0, cubic=True)
    def stress(strain):
        cell = unit.copy()
        cell.set_cell(unit.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        cell.calc = calc
        return cell.get_stress(voigt=False)
    d = {}
    e = np.zeros((3, 3)); e[0, 0] = eps
    s_plus, s_minus = stress(e), stress(-e)
    c11 = (s_plus[0, 0] - s_minus[0, 0]) / (2 * eps)
    c12 = (s_plus[1, 1] - s_minus[1, 1]) / (2 * eps)
    e = np.zeros((3, 3)); e[1, 2] = e[2, 1] = eps  # engineering shear 2*eps
    c44 = (stress(e)[1, 2] - stress(-e)[1, 2]) / (4 * eps)
    d = {"C11_GPa": c11 * EV_A3_TO_GPA, "C12_GPa": c12 * EV_A3_TO_GPA, "C44_GPa": c44 * EV_A3_TO_GPA}
    d["B_GPa"] = (d["C11_GPa"] + 2 * d["C12_GPa"]) / 3
    return d


def phonons(calc, element, a0):
    import tempfile
    from pathlib import Path
    from ase.phonons import Phonons
    prim = bulk(element, "fcc", a=a0)
    Path("runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir="runs") as tmp:  # phonon displacement cache: scratch under runs/
        ph = Phonons(prim, calc, supercell=(4, 4, 4), delta=0.01, name=f"{tmp}/ph")
        ph.run()
        ph.read(acoustic=True)
        path = prim.cell.bandpath("XL", npoints=2)
        freqs = ph.band_structure(path.kpts) * 8065.544  # eV -> cm^-1
    return {"X_cm1": sorted(freqs[0].tolist()), "L_cm1": sorted(freqs[1].tolist())}


def cluster13(calc, element, a0):
    from ase.cluster import Icosahedron
    from ase.optimize import BFGS
    c = Icosahedron(element, 2, latticeconstant=a0)
    c.calc = calc
    BFGS(c, logfile=None).run(fmax=1e-3, steps=300)
    atom = Atoms(element); atom.calc = calc
    return {"E13_binding_eV_atom": float(atom.get_potential_energy() - c.get_potential_energy() / len(c))}


def all_props(calc, element):
    row = metal_properties(calc, element)
    a0 = row["a0"]
    row.update(elastic(calc, element, a0))
    row.update(phonons(calc, element, a0))
    row.update(cluster13(calc, element, a0))
    return row


if __name__ == "__main__":
    model, out = sys.argv[1:3]
    elements = sys.argv[3].split(",") if len(sys.argv) > 3 else ["Cu", "Al", "Au"]
    calc = EMT() if model == "EMT" else NNPCalculator(model)
    res = {}
    for el in elements:
        t = time.time()
        res[el] = all_props(calc, el)
        print(el, f"{time.time() - t:.0f}s", json.dumps(res[el]), flush=True)
    json.dump(res, open(out, "w"), indent=1)
