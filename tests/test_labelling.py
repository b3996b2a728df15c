"""Reference labelling: charges reach tblite, jobs are content-hashed, resumable and reproducible."""

import json

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read

from nnpcalc.training import datasets, labelling, reference, sampling

EMT_JOBS = [
    {"kind": "approach", "systems": ["atom-Cu", "atom-Cu"], "method": "EMT", "distances": [0.9, 5.0, 4],
     "seed": 0, "subset": "dimers"},
    {"kind": "strain", "system": "Cu-fcc111", "method": "EMT", "count": 2, "seed": 0, "max_strain": 0.03,
     "rattle": 0.05, "subset": "surfaces"},
]


def test_charge_reaches_tblite():
    """CH3NH3+ labelled with charge +1: another energy than neutral, charges summing to +1."""
    pytest.importorskip("tblite")
    atoms, charge = sampling.system("CH3NH3+")
    assert charge == 1 and atoms.get_chemical_formula() == "CH6N"
    cation = reference.label(atoms, reference.calculator("GFN2-xTB", charge), "GFN2-xTB", charge)
    neutral = reference.label(atoms, reference.calculator("GFN2-xTB", 0), "GFN2-xTB", 0)
    assert cation.info["charge"] == 1.0
    assert abs(cation.info["ref_energy"] - neutral.info["ref_energy"]) > 1.0
    assert cation.arrays["ref_charges"].sum() == pytest.approx(1.0, abs=1e-6)
    assert neutral.arrays["ref_charges"].sum() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", sorted(sampling.IONS))
def test_ions_are_built_with_their_charge(name):
    atoms, charge = sampling.ion(name)
    parent = molecule(sampling.IONS[name][0])
    assert len(atoms) == len(parent) + charge  # one proton more or fewer
    distances = atoms.get_all_distances() + 10 * np.eye(len(atoms))
    assert distances.min() > 0.85  # no proton placed on top of an atom


def test_job_keys_follow_the_spec():
    spec = dict(EMT_JOBS[0])
    assert labelling.job_key(spec) == labelling.job_key(dict(reversed(list(spec.items()))))
    assert labelling.job_key(spec | {"seed": 1}) != labelling.job_key(spec)


def test_jobs_are_resumed_and_the_dataset_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setitem(labelling.DATASETS, "tiny", lambda: EMT_JOBS)
    out = labelling.build("tiny", tmp_path / "tiny.extxyz")
    manifest = json.loads((tmp_path / "tiny.manifest.json").read_text())
    assert manifest["frames"] == 6 and [j["key"] for j in manifest["jobs"]] == [labelling.job_key(s) for s in EMT_JOBS]
    frames = read(out, ":")
    assert {f.info["subset"] for f in frames} == {"dimers", "surfaces"}
    assert all(f.info["group"].startswith(f.info["job"]) for f in frames)
    job_file = tmp_path / "tiny.jobs" / f"{labelling.job_key(EMT_JOBS[0])}.extxyz"
    stamp = job_file.stat().st_mtime_ns
    again = labelling.build("tiny", tmp_path / "tiny.extxyz")  # resumed: nothing relabelled, same bytes
    assert job_file.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "tiny.manifest.json").read_text())["sha256"] == manifest["sha256"]
    assert read(again, ":")[0].info["ref_energy"] == frames[0].info["ref_energy"]


def test_shipped_job_lists_are_well_formed():
    for name, make in datasets.DATASETS.items():
        jobs = make()
        keys = [labelling.job_key(s) for s in jobs]
        assert len(set(keys)) == len(keys), f"{name}: two jobs with the same spec"
        assert all(s["kind"] in labelling.SAMPLERS and "subset" in s for s in jobs)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown system"):
        sampling.system("unobtainium")
    with pytest.raises(ValueError, match="unknown reference method"):
        reference.calculator("DFT")
    with pytest.raises(ValueError, match="unknown dataset"):
        labelling.build("nope", "x.extxyz")


def test_hcno_v3_extra_is_additive_and_well_formed(pinned_job_lists):
    """hcno-v3-extra: H/C/N/O only, integral charges (ions ±1), MD only, new seeds; hcno-v2 and
    water-box-md keep every job key (their manifests, when data/ is there, and pinned digests)."""
    pinned = {"hcno-v2": "1cf0db1ad64b69ac", "water-box-md": "6d70620de3c2a323"}
    pinned_job_lists(pinned)
    jobs = datasets.DATASETS["hcno-v3-extra"]()
    assert all(s["kind"] == "md" and s["method"] == "GFN2-xTB" and 300 <= s["temperature_K"] <= 600 for s in jobs)
    old = {labelling.job_key(s) for name in pinned for s in datasets.DATASETS[name]()}
    assert not old & {labelling.job_key(s) for s in jobs}
    held_out = {s["seed"] for s in datasets.WATER_BOX_MD}
    boxes = [s for s in jobs if s["system"].startswith("water-box")]
    assert len(boxes) >= 4 and not held_out & {s["seed"] for s in boxes}
    old_ions = {(s["system"], s["seed"]) for s in datasets.hcno_v2() if s.get("system") in sampling.IONS}
    ions = [s for s in jobs if s["system"] in sampling.IONS]
    assert ions and not old_ions & {(s["system"], s["seed"]) for s in ions}
    assert {s["system"] for s in jobs} >= set(datasets.ORGANICS)
    for spec in jobs:
        atoms, charge = sampling.system(spec["system"], spec["seed"])
        assert set(atoms.get_chemical_symbols()) <= set("HCNO"), spec["system"]
        assert isinstance(charge, int) and charge == (sampling.IONS[spec["system"]][2] if spec in ions else 0)
    assert {abs(sampling.system(s["system"])[1]) for s in ions} == {1}
    clusters = {len(sampling.system(s["system"], s["seed"])[0]) // 3 for s in jobs if "cluster" in s["system"]}
    assert min(clusters) >= 10 and max(clusters) <= 16
    cost = [labelling._cost(s) for s in jobs]
    assert cost.index(max(cost)) > len(jobs) - 5  # the periodic box (the dear part) comes last


def test_one_worker_runs_the_jobs_in_list_order(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(labelling, "run_jobs", lambda jobs, directory, workers: seen.append(list(jobs)) or 1 / 0)
    monkeypatch.setitem(labelling.DATASETS, "tiny", lambda: EMT_JOBS)
    for workers in (1, 2):
        with pytest.raises(ZeroDivisionError):
            labelling.build("tiny", tmp_path / "tiny.extxyz", workers)
    assert seen == [EMT_JOBS, sorted(EMT_JOBS, key=labelling._cost, reverse=True)] and seen[0] != seen[1]


def test_hcno_v5_modes_is_additive_and_pinned(pinned_job_lists):
    """hcno-v5-modes: one ``modes`` job per G2 organic (H2O, NH3, CH4 among them), new keys only;
    the lists before it keep every job key (pinned digests; the manifests when data/ is there)."""
    pinned = {"hcno-v2": "1cf0db1ad64b69ac", "water-box-md": "6d70620de3c2a323",
              "hcno-v3-extra": "12e2b526cf056509", "hcno-v5-modes": "a59f32ca5a8884b1"}
    pinned_job_lists(pinned)
    jobs = datasets.DATASETS["hcno-v5-modes"]()
    assert all(s["kind"] == "modes" and s["method"] == "GFN2-xTB" for s in jobs)
    assert [s["system"] for s in jobs] == datasets.ORGANICS and {"H2O", "NH3", "CH4"} <= set(datasets.ORGANICS)
    old = {labelling.job_key(s) for name in ("hcno-v2", "hcno-v3-extra") for s in datasets.DATASETS[name]()}
    assert not old & {labelling.job_key(s) for s in jobs}


def test_modes_frames_sit_at_the_thermal_energy_of_each_mode():
    """H2O: the finite-difference Hessian gives ASE's frequencies; each single-mode frame is
    k_B·T above the minimum (harmonic, within 25 %) at 300 K (+) and 600 K (−); 2·3 + combos frames."""
    pytest.importorskip("tblite")
    from ase import units
    from ase.optimize import BFGS

    from nnpcalc.training import heldout

    spec = {"kind": "modes", "system": "H2O", "method": "GFN2-xTB", "temperatures_K": [300, 600], "combos": 3,
            "max_displacement": 0.3, "seed": 0, "subset": "modes"}
    frames = labelling.run_modes(spec)
    assert len(frames) == 2 * 3 + 3 and all(f.info["charge"] == 0.0 and "ref_forces" in f.arrays for f in frames)
    calc = reference.calculator("GFN2-xTB")
    water = molecule("H2O")
    water.calc = calc
    BFGS(water, logfile=None).run(fmax=1e-3, steps=500)
    lam, _ = labelling.normal_modes(water, calc)
    wavenumbers = np.sqrt(lam[-3:] * units._e / units._amu) * 1e10 / (2 * np.pi * units._c * 100)
    assert wavenumbers == pytest.approx(heldout.frequencies(calc, molecule("H2O")), abs=1.0)
    rise = np.array([f.info["ref_energy"] for f in frames[:6]]) - water.get_potential_energy()
    assert rise == pytest.approx(units.kB * np.array([300, 600] * 3), rel=0.25)
    assert max(np.linalg.norm(f.positions - water.positions, axis=1).max() for f in frames) <= 0.3 + 1e-9
