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
