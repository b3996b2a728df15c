"""Every head kind: shapes, symmetry, scripting, metadata."""

import numpy as np
import pytest
import torch

from nnpcalc import modelfile
from nnpcalc.nn.build import Architecture, build_potential, export, head_spec
from nnpcalc.testing import random_rotation, reference_structures

ALL_HEADS = [
    "energy", "charges", "dipole",
    {"kind": "scalar", "name": "gap", "unit": "eV"},
    {"kind": "classifier", "name": "spacegroup", "num_classes": 230},
    {"kind": "classifier", "name": "is_metal"},
    {"kind": "direct_forces", "name": "forces_direct"},
    {"kind": "denoise", "name": "noise"},
]


@pytest.fixture(scope="module")
def potential():
    torch.manual_seed(0)
    arch = Architecture(elements=["H", "C", "O", "Al", "Cu"], heads=ALL_HEADS, head_hidden=8,
                        backbone_kwargs={"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff_upper": 4.0})
    return arch, modelfile.script(build_potential(arch).double().eval())


def run(module, atoms, rotation=np.eye(3)):
    t = torch.tensor
    return module(t(atoms.positions @ rotation.T), t(atoms.numbers), t(atoms.cell.array @ rotation.T),
                  t(atoms.pbc), t(0.0, dtype=torch.float64))


@pytest.mark.parametrize("name", ["al-skewed", "ethanol"])
def test_shapes_and_symmetry(potential, name):
    atoms = reference_structures()[name]
    rot = random_rotation(5)
    a, b = run(potential[1], atoms), run(potential[1], atoms, rot)
    n = len(atoms)
    assert a["gap"].shape == (1,) and a["spacegroup"].shape == (1, 230) and a["is_metal"].shape == (1, 1)
    assert a["forces_direct"].shape == (n, 3) and a["noise"].shape == (n, 3)
    for key in ("gap", "spacegroup", "is_metal", "energy"):
        torch.testing.assert_close(a[key], b[key])
    for key in ("forces_direct", "noise", "forces"):
        torch.testing.assert_close(a[key] @ torch.tensor(rot.T), b[key])


def test_metadata_lists_every_output(potential, tmp_path):
    arch, _ = potential
    path = export(build_potential(arch), arch, tmp_path / "all.pt")
    outputs = modelfile.read_metadata(path)["outputs"]
    assert outputs["gap"] == {"shape": "", "unit": "eV", "per_atom": False}
    assert outputs["spacegroup"]["shape"] == "C" and outputs["noise"]["per_atom"]
    from nnpcalc.runtime import Model

    (result,) = Model(path).compute([reference_structures()["ethanol"]])
    assert result["noise"].shape == (9, 3) and result["spacegroup"].shape == (230,)


@pytest.mark.parametrize("bad,match", [
    ({"kind": "scalar"}, "needs a 'name'"),
    ("magic", "unknown head kind"),
])
def test_bad_head_specs(bad, match):
    with pytest.raises(ValueError, match=match):
        head_spec(bad)


def test_dict_specs_export_and_the_metadata_is_the_models_own_statement(tmp_path):
    arch = Architecture(elements=["O", "H"], heads=[{"kind": "energy"}, {"kind": "charges"}], head_hidden=8,
                        backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "cutoff_upper": 3.5})
    potential = build_potential(arch)
    meta = modelfile.read_metadata(export(potential, arch, tmp_path / "dict-specs.pt"))
    stated = potential.capabilities()
    assert meta["heads"] == stated.heads == ["energy", "charges"]
    assert meta["elements"] == stated.elements == ["H", "O"] and meta["cutoff"] == stated.cutoff == 3.5
    assert meta["outputs"] == stated.outputs and list(meta["outputs"]) == ["energy", "energies", "charges",
                                                                           "forces", "stress"]
    assert meta["periodic"] is True and meta["fidelities"] == ["default"]


def test_dipole_needs_charges_first():
    with pytest.raises(ValueError, match="needs head 'charges'"):
        build_potential(Architecture(elements=["H"], heads=["energy", "dipole", "charges"]))
