"""The job lists of the shipped models' reference data (see :mod:`~nnpcalc.training.labelling`).

``hcno-v2`` (GFN2-xTB): ethanol, water clusters and periodic water boxes under MD, every
H/C/N/O G2 molecule under MD, compressed/stretched and bond-scanned, ions (charge passed to
tblite), dimers and molecule pairs brought together from 0.5 Å, isolated atoms.
``emt-v2`` (EMT): per fcc metal, strained and hot bulk, (111)/(100) slabs, vacancy cells,
clusters, dimers from 0.9 Å and the isolated atom.
Each job's ``subset`` names the group its held-out errors are reported under.
"""

from __future__ import annotations

from ase.collections import g2

from .sampling import IONS

GFN2 = "GFN2-xTB"
HCNO = set("HCNO")
#: the molecules that stand for "small organics"; single atoms and odd radicals are in dimers
ORGANICS = sorted(n for n in g2.names if set(g2[n].get_chemical_symbols()) <= HCNO and len(g2[n]) > 2)
DIMERS = ["H", "C", "N", "O"]
METALS = ("Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt")


def md(system: str, temperature: float, frames: int, every: int, seed: int, subset: str, method: str = GFN2,
       timestep_fs: float = 0.5) -> dict:
    return {"kind": "md", "system": system, "method": method, "temperature_K": temperature, "frames": frames,
            "every": every, "timestep_fs": timestep_fs, "seed": seed, "subset": subset}


def hcno_md() -> list[dict]:
    """MD where it is cheap (molecules, ~10 ms a step); small rattles elsewhere (one call a frame)."""
    jobs = [md("CH3CH2OH", t, 60, 10, s, "ethanol") for t, s in [(300, 1), (500, 2), (700, 3)]]
    for n in (2, 4):
        jobs += [md(f"water-cluster-{n}", t, 30, 10, n + s, "water-clusters") for t, s in [(300, 0), (500, 1)]]
    jobs += [md(name, 450, 20, 5, k, "ions") for k, name in enumerate(IONS)]
    jobs += [{"kind": "distort", "system": name, "method": GFN2, "count": 4, "seed": 100 + k, "scale": [0.97, 1.03],
              "rattle": 0.06, "subset": "organics"} for k, name in enumerate(ORGANICS)]
    jobs += [{"kind": "distort", "system": f"water-cluster-{n}", "method": GFN2, "count": 6, "seed": n,
              "scale": [0.97, 1.05], "rattle": 0.06, "subset": "water-clusters"} for n in (6, 8)]
    # periodic tblite costs ~2 s a call (40x the same molecules): single points near and off equilibrium;
    # MD of the box is WATER_BOX_MD, for a bigger budget
    jobs += [{"kind": "distort", "system": "water-box-2", "method": GFN2, "count": 5, "seed": s,
              "scale": [0.98, 1.02], "rattle": 0.06, "subset": "water-box"} for s in (20, 21)]
    return jobs


#: GFN2-xTB MD of the periodic 8-water box: ~130 CPU-s a job (not in hcno-v2 yet)
WATER_BOX_MD = [md("water-box-2", t, 16, 4, s, "water-box", timestep_fs=1.0) for t, s in [(300, 0), (450, 1)]]


def hcno_off_equilibrium() -> list[dict]:
    jobs = [{"kind": "distort", "system": name, "method": GFN2, "count": 4, "seed": k, "scale": [0.8, 1.3],
             "rattle": 0.05, "subset": "distorted"} for k, name in enumerate(ORGANICS + list(IONS))]
    jobs += [{"kind": "distort", "system": "water-box-2", "method": GFN2, "count": 5, "seed": s,
              "scale": [0.88, 1.1], "rattle": 0.08, "subset": "water-box-compressed"} for s in (10, 11)]
    jobs += [{"kind": "bonds", "system": name, "method": GFN2, "scales": [0.6, 2.0, 8], "max_bonds": 4,
              "subset": "bonds"} for name in ("H2O", "CH4", "NH3", "CH3CH2OH", "H2CO", "HCN", "CH3OH", "CO2")]
    pairs = [(a, b) for i, a in enumerate(DIMERS) for b in DIMERS[i:]]
    jobs += [{"kind": "approach", "systems": [f"atom-{a}", f"atom-{b}"], "method": GFN2,
              "distances": [0.5, 4.0, 30], "seed": 0, "subset": "dimers"} for a, b in pairs]
    for seed in range(6):
        for first, second in (("H2O", "H2O"), ("H2O", "CH4"), ("H2O", "NH3"), ("CH3OH", "H2O")):
            jobs.append({"kind": "approach", "systems": [first, second], "method": GFN2,
                         "distances": [1.0, 4.0, 16], "seed": seed, "subset": "molecule-pairs"})
    jobs += [{"kind": "single", "system": f"atom-{a}", "method": GFN2, "subset": "atoms"} for a in DIMERS]
    return jobs


def hcno_v2() -> list[dict]:
    return hcno_md() + hcno_off_equilibrium()


def emt_element(element: str, k: int) -> list[dict]:
    def strain(system, count, max_strain, rattle, subset):
        return {"kind": "strain", "system": f"{element}-{system}", "method": "EMT", "count": count, "seed": k,
                "max_strain": max_strain, "rattle": rattle, "subset": subset}

    jobs = [strain("bulk", 20, 0.04, 0.05, "bulk"), strain("bulk", 20, 0.10, 0.1, "bulk-strained")]
    jobs += [md(f"{element}-bulk", t, 30, 10, k, "bulk-md", "EMT", 2.0) for t in (600, 1500)]
    for kind in ("fcc111", "fcc100"):
        jobs += [md(f"{element}-{kind}", 600, 30, 10, k, "surfaces", "EMT", 2.0),
                 strain(kind, 10, 0.03, 0.08, "surfaces")]
    jobs += [md(f"{element}-vacancy", t, 30, 10, k, "vacancies", "EMT", 2.0) for t in (300, 900)]
    jobs += [md(f"{element}-cluster-{n}", 600, 30, 10, k, "clusters", "EMT", 2.0) for n in (13, 55)]
    jobs.append({"kind": "distort", "system": f"{element}-cluster-13", "method": "EMT", "count": 10, "seed": k,
                 "scale": [0.8, 1.3], "rattle": 0.05, "subset": "clusters"})
    jobs.append({"kind": "approach", "systems": [f"atom-{element}", f"atom-{element}"], "method": "EMT",
                 "distances": [0.9, 6.0, 40], "seed": 0, "subset": "dimers"})
    jobs.append({"kind": "single", "system": f"atom-{element}", "method": "EMT", "subset": "atoms"})
    return jobs


def emt_v2() -> list[dict]:
    return [job for k, element in enumerate(METALS) for job in emt_element(element, k)]


def emt_element_v3(element: str, k: int) -> list[dict]:
    """``emt-v2``'s kinds on fresh seeds (v2's test split stays unseen), plus 300 K MD of bulk and
    slabs and near-elastic strains (stress labels for C11/C12/C44), fewer steps per frame; dimers
    from 1.6 to 4.4 Å only: below, the ZBL wall decides, and beyond, EMT still binds (Al −0.6 eV
    at 5 Å) where a 5 Å model sees two free atoms, which fought the isolated atom's energy."""
    seed = 100 + k

    def strain(system, count, max_strain, rattle):
        return {"kind": "strain", "system": f"{element}-{system}", "method": "EMT", "count": count, "seed": seed,
                "max_strain": max_strain, "rattle": rattle, "subset": "surfaces" if "fcc" in system else "bulk"}

    def run(system, temperature, subset):
        return md(f"{element}-{system}", temperature, 20, 8, seed, subset, "EMT", 2.0)

    jobs = [strain("bulk", 20, 0.04, 0.05), strain("bulk", 10, 0.015, 0.0)]
    jobs.append(dict(strain("bulk", 20, 0.10, 0.1), subset="bulk-strained"))
    jobs += [run("bulk", t, "bulk-md") for t in (300, 600, 1500)]
    for kind in ("fcc111", "fcc100"):
        jobs += [run(kind, 300, "surfaces"), run(kind, 700, "surfaces"), strain(kind, 10, 0.03, 0.08)]
    jobs += [run("vacancy", t, "vacancies") for t in (300, 900)]
    jobs += [run(f"cluster-{n}", 600, "clusters") for n in (13, 55)]
    jobs.append({"kind": "distort", "system": f"{element}-cluster-13", "method": "EMT", "count": 10, "seed": seed,
                 "scale": [0.9, 1.2], "rattle": 0.05, "subset": "clusters"})
    jobs.append({"kind": "approach", "systems": [f"atom-{element}", f"atom-{element}"], "method": "EMT",
                 "distances": [1.6, 4.4, 29], "seed": 0, "subset": "dimers"})
    # the only anchor of the cohesive energy: three copies (the seed only changes the job key)
    jobs += [{"kind": "single", "system": f"atom-{element}", "method": "EMT", "seed": s, "subset": "atoms"}
             for s in range(3)]
    return jobs


def emt_v3() -> list[dict]:
    return [job for k, element in enumerate(METALS) for job in emt_element_v3(element, k)]


def emt_element_sparse(element: str, k: int) -> list[dict]:
    """Low coordination for ``emt-v5-sparse`` (added to ``emt-v3``, not replacing it): the isolated
    atom ×30 (it was 3 of ~330 frames per element, and 0.03–0.24 eV off: ``emt-v3``'s dimers at
    4–4.4 Å, where EMT still binds by 0.2–1.6 eV but a 5 Å model is at the edge of its cutoff,
    pulled it down), dense dimer scans from 1.425 to 3.475 Å on two grids interleaved at 0.05 Å and
    off ``emt-v3``'s 0.1 Å grid (its test dimers stay unseen; below 1.4 Å the ZBL wall decides), an
    atom brought to a 13-atom cluster from 4.3 to 6.3 Å off its centre (adatoms 1.7–3.8 Å from the
    nearest atom), surface atoms of the cluster pulled out radially, expanded rattled clusters and
    1500 K cluster MD."""
    seed = 200 + k
    atom = f"atom-{element}"
    jobs = [{"kind": "single", "system": atom, "method": "EMT", "seed": s, "subset": "atoms"} for s in range(10, 40)]
    jobs += [{"kind": "approach", "systems": [atom, atom], "method": "EMT", "distances": [start, start + 2.0, 21],
              "seed": 0, "subset": "dimers"} for start in (1.425, 1.475)]
    jobs += [{"kind": "approach", "systems": [f"{element}-cluster-13", atom], "method": "EMT",
              "distances": [4.3, 6.3, 11], "seed": seed + 10 * s, "subset": "adatoms"} for s in range(3)]
    jobs.append({"kind": "bonds", "system": f"{element}-cluster-13", "method": "EMT", "scales": [0.85, 2.0, 11],
                 "max_bonds": 2, "seed": seed, "subset": "adatoms"})
    jobs.append({"kind": "distort", "system": f"{element}-cluster-13", "method": "EMT", "count": 20, "seed": seed,
                 "scale": [1.1, 1.5], "rattle": 0.2, "subset": "sparse-clusters"})
    jobs.append(md(f"{element}-cluster-13", 1500, 20, 8, seed, "sparse-clusters", "EMT", 2.0))
    return jobs


def emt_v5_sparse() -> list[dict]:
    return [job for k, element in enumerate(METALS) for job in emt_element_sparse(element, k)]


def hcno_v3_extra() -> list[dict]:
    """Near-equilibrium GFN2-xTB MD, added to ``hcno-v2`` (not replacing it), cheapest first so a
    partial build already holds the molecules: every G2 organic at 300 K and 600 K (short runs,
    one frame in 20 steps), the ions at 300/600 K, water clusters of 10–16 molecules at 300/400 K,
    then the periodic 8-water box at 300/400 K. Seeds are new: ``water-box-md`` (seeds 0, 1) stays
    held out, and no job repeats one of ``hcno-v2``. 1176 frames, labelled in 513 s at 1 worker:
    55 s for the 170 molecular jobs, ~115 s for each of the 4 box jobs."""
    jobs = []
    for t, frames in ((300, 5), (600, 3)):
        jobs += [md(name, t, frames, 20, 1000 + k, "organics-md") for k, name in enumerate(ORGANICS)]
    for t in (300, 600):
        jobs += [md(name, t, 20, 10, 200 + k, "ions") for k, name in enumerate(IONS)]
    jobs += [md(f"water-cluster-{n}", t, 20, 10, 100 + n + s, "water-clusters")
             for n in (10, 12, 14, 16) for t, s in [(300, 0), (400, 50)]]
    jobs += [md("water-box-2", t, 20, 4, s, "water-box", timestep_fs=1.0) for t, s in [(300, 40), (300, 41),
                                                                                          (400, 42), (400, 43)]]
    return jobs


def hcno_v5_modes() -> list[dict]:
    """Frames along GFN2-xTB's own normal modes about its own minimum, for every G2 organic
    (H2O, NH3, CH4 among them), added to ``hcno-v2`` + ``hcno-v3-extra`` (not replacing them):
    MD frames pin the curvature at the minimum only weakly (issue #12, harmonic frequencies).
    Each mode at +/- its 300/600 K harmonic amplitude, plus 8 thermal samples of all modes."""
    return [{"kind": "modes", "system": name, "method": GFN2, "temperatures_K": [300, 600], "combos": 8,
             "max_displacement": 0.3, "seed": 300 + k, "subset": "modes"} for k, name in enumerate(ORGANICS)]


#: dataset name → function returning its job list
DATASETS = {"hcno-v2": hcno_v2, "emt-v2": emt_v2, "emt-v3": emt_v3, "water-box-md": lambda: list(WATER_BOX_MD),
            "hcno-v3-extra": hcno_v3_extra, "emt-v5-sparse": emt_v5_sparse, "hcno-v5-modes": hcno_v5_modes}
