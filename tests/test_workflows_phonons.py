"""`nnpcalc.phonons`: phonopy force constants from batched model calls, bands, DOS, thermal properties."""

import csv

import numpy as np
import pytest
from ase.build import bulk, molecule

pytest.importorskip("phonopy")

from nnpcalc import Model, phonons, relax  # noqa: E402
from nnpcalc.errors import InvalidStructureError  # noqa: E402
from nnpcalc.workflows.phonons import band_path  # noqa: E402


@pytest.fixture(scope="module")
def copper(model_file):
    model = Model(model_file, dtype="float64")
    crystal = relax(bulk("Cu", "fcc", a=3.6, cubic=True), model, cell=True, fmax=1e-3, steps=300).atoms
    return model, crystal, phonons(crystal, model, supercell=(2, 2, 2), mesh=(8, 8, 8), t_step=50.0)


def test_fcc_bands_follow_the_automatic_path_and_acoustic_modes_vanish_at_gamma(copper):
    _, _, result = copper
    assert result.band["labels"][:4] == ["Γ", "X", "W", "K"]
    gamma = result.band["frequencies"][0][0]
    assert np.abs(gamma).max() < 1e-3  # THz
    assert not result.has_imaginary_modes and result.min_frequency_THz > -0.05


def test_high_temperature_heat_capacity_is_dulong_petit(copper):
    _, _, result = copper
    gas_constant = 8.314462618  # J/K/mol; 3R per atom of the one-atom primitive cell
    assert result.thermal["heat_capacity_J_per_K_mol"][-1] == pytest.approx(3 * gas_constant, rel=0.02)


def test_writes_plot_and_tables(copper, tmp_path):
    pytest.importorskip("matplotlib")
    _, _, result = copper
    files = result.write(tmp_path)
    assert files["band_plot"].read_bytes()[:4] == b"\x89PNG"
    with open(files["thermal"]) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["temperature_K", "free_energy_kJ_per_mol", "entropy_J_per_K_mol", "heat_capacity_J_per_K_mol"]
    assert len(rows) == 1 + 21
    assert files["dos"].is_file() and files["band"].is_file() and files["phonopy"].is_file()


def test_imaginary_modes_warn(copper):
    model, crystal, _ = copper
    with pytest.warns(RuntimeWarning, match="imaginary modes"):  # a tolerance above every frequency
        result = phonons(crystal, model, supercell=(1, 1, 1), mesh=(2, 2, 2), imaginary_tolerance_THz=-1.0)
    assert result.has_imaginary_modes


def test_a_molecule_is_refused(copper):
    with pytest.raises(InvalidStructureError, match="phonons needs a periodic cell"):
        phonons(molecule("H2O"), copper[0])


def test_band_path_segments_connect_at_special_points():
    segments, labels, connections = band_path(bulk("Al", "fcc", a=4.05).cell.array, 5)
    assert len(labels) == len(segments) + connections.count(False)
    assert np.allclose(segments[0][0], 0) and len(segments[0]) == 5
