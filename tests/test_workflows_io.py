"""Structure files and pymatgen objects in and out of the workflows."""

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule

from nnpcalc.errors import InvalidStructureError
from nnpcalc.workflows import io


def test_reads_every_frame_of_every_format_and_names_them(tmp_path):
    cu = bulk("Cu", "fcc", a=3.6)
    ase.io.write(tmp_path / "cu.cif", cu)
    ase.io.write(tmp_path / "POSCAR", cu, format="vasp")
    ase.io.write(tmp_path / "two.extxyz", [molecule("H2O"), molecule("CH4")])
    ase.io.write(tmp_path / "one.traj", cu)
    frames = io.read_structures([tmp_path / n for n in ("cu.cif", "POSCAR", "two.extxyz", "one.traj")])
    assert [a.info["source"] for a in frames] == ["cu.cif", "POSCAR", "two.extxyz[0]", "two.extxyz[1]", "one.traj"]
    assert np.allclose(frames[1].cell.array, cu.cell.array)


def test_a_file_that_does_not_parse_is_named(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("not\na structure\n")
    with pytest.raises(InvalidStructureError, match="could not read .*bad.xyz"):
        io.read_file(bad)
    with pytest.raises(InvalidStructureError, match="does not exist"):
        io.read_file(tmp_path / "missing.cif")


def test_single_frame_formats_get_one_file_per_structure(tmp_path):
    cells = [bulk("Cu", "fcc", a=3.6), bulk("Al", "fcc", a=4.05)]
    written = io.write_structures(tmp_path / "out.vasp", cells)
    assert [p.name for p in written] == ["out-0.vasp", "out-1.vasp"]
    assert io.write_structures(tmp_path / "out.extxyz", cells) == [tmp_path / "out.extxyz"]
    assert len(ase.io.read(tmp_path / "out.extxyz", ":")) == 2
    with pytest.raises(ValueError, match="format"):
        io.write_structures(tmp_path / "out.unknown-ext", cells)


def test_pymatgen_structures_round_trip():
    pytest.importorskip("pymatgen")
    cu = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    structure = io.to_pymatgen(cu)
    assert type(structure).__name__ == "Structure"
    back = io.to_atoms(structure)
    assert np.allclose(back.positions, cu.positions) and np.allclose(back.cell.array, cu.cell.array)
    assert type(io.to_pymatgen(molecule("H2O"))).__name__ == "Molecule"



@pytest.mark.parametrize("charge, periodic", [(1.0, False), (-2.0, False), (0.5, False), (-1.0, True), (0.0, False)])
def test_pymatgen_conversion_carries_the_total_charge(charge, periodic):
    """H2O+ has an odd electron count (pymatgen's default multiplicity 1 refused it, so the charge was dropped)."""
    pytest.importorskip("pymatgen")
    atoms = bulk("NaCl", "rocksalt", a=5.6) if periodic else molecule("H2O")
    atoms.info["charge"] = charge
    converted = io.to_pymatgen(atoms)
    assert converted.charge == charge
    if not periodic:
        electrons = 10 - charge
        assert converted.spin_multiplicity == (1 if electrons % 2 == 0 else 2)
    back = io.to_atoms(converted)
    assert back.info.get("charge", 0.0) == charge and np.allclose(back.positions, atoms.positions)

def test_frame_writer_appends_flushed_frames_with_results(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = molecule("H2O")
    atoms.calc = SinglePointCalculator(atoms, energy=-1.5, forces=np.ones((3, 3)))
    for suffix in (".extxyz", ".traj"):
        with io.FrameWriter(tmp_path / f"t{suffix}", "w") as writer:
            writer.write(atoms)
            writer.write(atoms)
            frames = ase.io.read(tmp_path / f"t{suffix}", ":")  # readable before close
        assert len(frames) == 2 and frames[1].get_potential_energy() == -1.5
    with pytest.raises(ValueError, match="cannot be appended"):
        io.FrameWriter(tmp_path / "t.cif")


def test_require_3d_cell_names_the_problem():
    with pytest.raises(InvalidStructureError, match="npt needs a periodic cell.*volume is 0"):
        io.require_3d_cell(molecule("H2O"), "npt")
    io.require_3d_cell(bulk("Cu"), "npt")
