"""emt-v5-sparse: the low-coordination EMT data added to emt-v3 for the metals model (issue 12)."""

import numpy as np

from nnpcalc.training import datasets, labelling, sampling

PINNED = {"emt-v2": "458fbb82ba8f1c2d", "emt-v3": "597fd5ef529f2963"}


def test_emt_v5_sparse_is_additive_and_well_formed(pinned_job_lists):
    """emt-v2/emt-v3 keep every job key (pinned, and their manifests when data/ is there); the new
    list shares no job with them, is EMT on the seven metals only, holds atoms, dimers, adatoms and
    sparse clusters for every element, and its dimer distances miss emt-v3's 0.1 Å grid (whose test
    dimers stay unseen) and stay within 1.4-3.5 Å."""
    old = pinned_job_lists(PINNED)
    jobs = datasets.DATASETS["emt-v5-sparse"]()
    assert not old & {labelling.job_key(s) for s in jobs}
    assert all(s["method"] == "EMT" for s in jobs)
    for element in datasets.METALS:
        mine = [s for s in jobs if element in str(s.get("system") or s.get("systems"))]
        assert {s["subset"] for s in mine} == {"atoms", "dimers", "adatoms", "sparse-clusters"}, element
        assert sum(s["subset"] == "atoms" for s in mine) >= 30
        for s in mine:
            atoms, charge = sampling.system(s.get("system") or s["systems"][0], s.get("seed", 0))
            assert set(atoms.get_chemical_symbols()) == {element} and charge == 0
    dimers = np.concatenate([np.linspace(*s["distances"]) for s in jobs if s["subset"] == "dimers"])
    assert 1.4 <= dimers.min() and dimers.max() <= 3.5
    v3 = np.concatenate([np.linspace(*s["distances"]) for s in datasets.emt_v3() if s["subset"] == "dimers"])
    assert np.abs(dimers[:, None] - v3[None, :]).min() > 0.02
