"""`nnpcalc.relax`: ASE optimizers, one batched model call per step for many structures."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from nnpcalc import NNPCalculator, Model, relax
from nnpcalc.errors import InvalidStructureError, UnknownElementError


@pytest.fixture(scope="module")
def model(model_file):
    return Model(model_file, dtype="float64")


def rattled_cu(seed=1, a=3.7):
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_single_structure_follows_plain_ase_exactly(model):
    atoms = rattled_cu()
    result = relax(atoms, model, cell=True, fmax=0.01, steps=100)
    reference = atoms.copy()
    reference.calc = NNPCalculator(model)
    opt = FIRE(FrechetCellFilter(reference), logfile=None)
    assert opt.run(fmax=0.01, steps=100) and result.converged
    assert result.steps == opt.nsteps
    assert np.abs(result.atoms.positions - reference.positions).max() < 1e-12
    assert result.energy == pytest.approx(reference.get_potential_energy(), abs=1e-12)
    assert atoms.positions is not result.atoms.positions  # the input is not modified


def test_batch_matches_each_structure_alone_in_one_model_call_per_step(model, monkeypatch):
    water, methane = molecule("H2O"), molecule("CH4")
    water.rattle(0.1, seed=2)
    methane.rattle(0.1, seed=3)
    structures = [water, rattled_cu(4), methane]
    alone = [relax(a, model, optimizer="BFGS", fmax=0.01, steps=60) for a in structures]
    calls = []
    original = Model.compute
    monkeypatch.setattr(Model, "compute", lambda self, s, *a, **k: calls.append(len(s)) or original(self, s, *a, **k))
    batch = relax(structures, model, optimizer="BFGS", fmax=0.01, steps=60)
    assert len(calls) == max(r.steps for r in batch) + 1 and calls[0] == 3
    for one, many in zip(alone, batch):
        assert (one.steps, one.converged) == (many.steps, many.converged)
        assert np.abs(one.atoms.positions - many.atoms.positions).max() < 1e-8


def test_bfgs_single_path_matches_ase(model):
    atoms = molecule("H2O")
    atoms.rattle(0.1, seed=5)
    result = relax(atoms, model, optimizer="bfgs", fmax=0.02)
    reference = atoms.copy()
    reference.calc = NNPCalculator(model)
    BFGS(reference, logfile=None).run(fmax=0.02)
    assert np.abs(result.atoms.positions - reference.positions).max() < 1e-12


def test_cell_relaxation_at_pressure_and_symmetry(model):
    start = bulk("Cu", "fcc", a=5.4, cubic=True)  # near this (very soft) random model's minimum
    squeezed = relax(start, model, cell=True, pressure_GPa=0.05, fmax=1e-3, steps=200)
    assert squeezed.converged and squeezed.volume < start.get_volume()
    assert squeezed.pressure_GPa == pytest.approx(0.05, abs=0.01)
    pytest.importorskip("spglib")
    from ase.spacegroup.symmetrize import check_symmetry

    sym = relax(bulk("Cu", "fcc", a=5.3, cubic=True), model, cell=True, fix_symmetry=True, fmax=1e-2, steps=50)
    assert check_symmetry(sym.atoms, 1e-4).number == 225  # Fm-3m kept


def test_not_converged_is_reported_and_trajectory_written(model, tmp_path):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.2, seed=7)
    result = relax([atoms], model, fmax=1e-6, steps=3, trajectory=tmp_path / "t.extxyz")[0]
    assert not result.converged and result.steps == 3
    import ase.io

    assert len(ase.io.read(tmp_path / "t.extxyz", ":")) == 4  # the start and three steps


def test_bad_input_is_refused_with_the_reason(model):
    with pytest.raises(InvalidStructureError, match="needs a periodic cell"):
        relax(molecule("H2O"), model, cell=True)
    with pytest.raises(UnknownElementError, match="Fe"):
        relax(bulk("Fe"), model)
    with pytest.raises(ValueError, match="unknown optimizer 'CG'; choose one of FIRE, BFGS, LBFGS"):
        relax(molecule("H2O"), model, optimizer="CG")


def test_pymatgen_structure_in_and_out(model):
    pytest.importorskip("pymatgen")
    from nnpcalc.workflows.io import to_pymatgen

    result = relax(to_pymatgen(rattled_cu(8)), model, fmax=0.05)
    assert type(result.structure).__name__ == "Structure"
    assert result.structure.num_sites == 4
