"""Models with long-range electrostatics export as molecule programs (``nnpcalc.exported``): the
same numbers as the TorchScript file in float64 (1e-10) for molecules, neutral and charged, with
forces passing finite differences; periodic cells stay with the TorchScript file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from nnpcalc import artifacts
from nnpcalc.calculator import NNPCalculator
from nnpcalc.nn.build import Architecture, build_potential, export
from nnpcalc.runtime import Model
from nnpcalc.testing import TOLERANCES, check_forces

F64 = torch.float64
EXACT = 1e-10


@pytest.fixture(scope="module", params=[("coulomb", {}), ("ewald", {"self_energy": True, "damping_radius": 2.0})],
                ids=["coulomb", "ewald-self-energy"])
def program(request, tmp_path_factory):
    method, options = request.param
    torch.manual_seed(0)
    arch = Architecture(elements=["H", "C", "N", "O"],
                        backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "cutoff_upper": 4.0},
                        heads=["energy", "charges", "dipole"], head_hidden=8, electrostatics=method,
                        electrostatics_kwargs=options)
    path = export(build_potential(arch), arch, tmp_path_factory.mktemp("models") / f"{method}.pt", dtype=F64)
    root = tmp_path_factory.mktemp("cache")
    artifacts.build(path, "exported", F64, "cpu", root)
    return path, root


def molecules():
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    anion = molecule("H2O")
    anion.info["charge"] = -1.0
    cation = molecule("NH3")
    cation.positions[0] += 0.1
    cation.info["charge"] = 1.0
    return [ethanol, anion, cation]


@pytest.mark.slow
def test_molecule_program_matches_the_file_and_passes_finite_differences(program, monkeypatch):
    path, root = program
    monkeypatch.setenv("NNPCALC_CACHE_DIR", str(root))
    model = Model(path, dtype="float64", artifact="exported")
    assert model.program is not None and model.program.molecules_only
    reference = Model(path, dtype="float64", artifact="torchscript")
    served = []
    call = model.program.module
    model.program.module = lambda *inputs: served.append(1) or call(*inputs)
    for atoms in molecules():
        out, expected = model.compute([atoms])[0], reference.compute([atoms])[0]
        assert max(float(np.abs(out[k] - expected[k]).max()) for k in expected) < EXACT
    assert len(served) == 3
    assert check_forces(NNPCalculator(model), molecules()[0], TOLERANCES["float64"]["forces"]).passed
    if reference.metadata["architecture"]["electrostatics"] == "ewald":  # a cell: the file serves it, same numbers
        box = molecules()[0]
        box.cell, box.pbc = [9.0, 9.5, 10.0], True
        before = len(served)
        out, expected = model.compute([box])[0], reference.compute([box])[0]
        assert len(served) == before
        assert max(float(np.abs(out[k] - expected[k]).max()) for k in expected) < EXACT
