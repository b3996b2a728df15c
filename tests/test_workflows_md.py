"""`nnpcalc.run_md` / `resume_md`: outputs as it runs, exact resume, explosion stop."""

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule

from nnpcalc import Model, run_md
from nnpcalc.errors import InvalidStructureError, RunDirectoryError, SimulationError
from nnpcalc.workflows.choices import ENSEMBLES
from nnpcalc.workflows.md import resume_md
from nnpcalc.workflows.md_rundir import LOG_COLUMNS

OPTIONS = dict(checkpoint_interval=5, log_interval=2, trajectory_interval=3, seed=3)


@pytest.fixture(scope="module")
def model(model_file):
    model = Model(model_file, dtype="float64")
    for _ in range(3):  # TorchScript's first calls run unoptimised graphs: leave them behind
        model.compute([molecule("H2O")])
    return model


def start(ensemble):
    return bulk("Cu", "fcc", a=3.6, cubic=True) if ensemble == "npt" else molecule("H2O")


def same_outputs(a, b, trajectory="trajectory.extxyz"):
    """Same log rows and trajectory frames (positions, momenta, energy, forces) to 1e-10."""
    assert np.allclose(np.loadtxt(a / "md.log"), np.loadtxt(b / "md.log"), rtol=0, atol=1e-10, equal_nan=True)
    frames = [ase.io.read(d / trajectory, ":") for d in (a, b)]
    assert len(frames[0]) == len(frames[1])
    for x, y in zip(*frames):
        for get in (lambda f: f.positions, lambda f: f.get_momenta(), lambda f: f.get_forces()):
            assert np.abs(get(x) - get(y)).max() < 1e-10
        assert x.get_potential_energy() == pytest.approx(y.get_potential_energy(), abs=1e-10)


@pytest.mark.parametrize("ensemble", ENSEMBLES)
def test_resume_reproduces_the_uninterrupted_run(model, tmp_path, ensemble):
    full = run_md(start(ensemble), model, outdir=tmp_path / "full", steps=12, ensemble=ensemble, **OPTIONS)
    run_md(start(ensemble), model, outdir=tmp_path / "part", steps=7, ensemble=ensemble, **OPTIONS)
    resumed = resume_md(tmp_path / "part", steps=12, model=model)
    assert resumed.steps == 12
    assert np.abs(full.atoms.positions - resumed.atoms.positions).max() < 1e-10
    assert np.abs(full.atoms.get_momenta() - resumed.atoms.get_momenta()).max() < 1e-10
    same_outputs(tmp_path / "full", tmp_path / "part")


@pytest.mark.parametrize("suffix", [".extxyz", ".traj"])
def test_resume_cuts_what_was_written_after_the_checkpoint(model, tmp_path, suffix):
    """A killed run has written log lines and frames past its last checkpoint: they go."""
    trajectory = f"trajectory{suffix}"
    options = {**OPTIONS, "ensemble": "nvt-langevin", "trajectory": trajectory}
    full = run_md(molecule("H2O"), model, outdir=tmp_path / "full", steps=14, **options)
    run_md(molecule("H2O"), model, outdir=tmp_path / "part", steps=12, **{**options, "checkpoint_interval": 10})
    # the final checkpoint is at 12: make the files look like a kill at step 12 after a checkpoint at 10
    _rewind_checkpoint(tmp_path / "part", tmp_path / "twin", model)
    resumed = resume_md(tmp_path / "part", steps=14, model=model)
    assert np.abs(full.atoms.positions - resumed.atoms.positions).max() < 1e-10
    same_outputs(tmp_path / "full", tmp_path / "part", trajectory)
    assert len(ase.io.read(tmp_path / "part" / trajectory, ":")) == 5


def _rewind_checkpoint(part, twin, model):
    """Put the checkpoint of step 10 (from an identical run stopped there) into ``part``, whose files reach 12."""
    from nnpcalc.workflows import md_state

    settings = json.loads((part / "run.json").read_text())
    keys = ("ensemble", "seed", "trajectory", "trajectory_interval", "log_interval", "checkpoint_interval")
    run_md(molecule("H2O"), model, outdir=twin, steps=10, **{k: settings[k] for k in keys})
    md_state.save_checkpoint(part, md_state.load_checkpoint(twin))


def test_log_and_trajectory_are_written_as_it_runs(model, tmp_path):
    result = run_md(bulk("Cu", "fcc", a=3.6, cubic=True), model, outdir=tmp_path, steps=6,
                    ensemble="nvt-bussi", temperature_K=500, log_interval=2, trajectory_interval=2)
    lines = (tmp_path / "md.log").read_text().splitlines()
    assert lines[0].split() == ["#", *LOG_COLUMNS] and len(lines) == 1 + 4
    row = [float(v) for v in lines[-1].split()]
    assert row[0] == 6 and row[1] == pytest.approx(0.003) and row[-1] == pytest.approx(46.656)
    assert row[4] == pytest.approx(row[2] + row[3])
    frames = ase.io.read(result.files["trajectory"], ":")
    assert len(frames) == 4 and "momenta" in frames[0].arrays
    assert frames[-1].get_potential_energy() == pytest.approx(row[2], abs=1e-6)


def test_nve_conserves_energy_and_time_ps_sets_steps(model, tmp_path):
    result = run_md(molecule("CH4"), model, outdir=tmp_path, time_ps=0.01, timestep_fs=0.25, log_interval=4)
    assert result.steps == 40
    log = np.loadtxt(tmp_path / "md.log")
    assert np.ptp(log[:, 5]) < 1e-3  # conserved energy, eV


def test_explosion_stops_with_a_message_and_keeps_the_output(model, tmp_path):
    atoms = molecule("H2O")
    atoms.set_momenta(np.full((3, 3), 5.0))  # far too hot: thousands of kelvin
    with pytest.raises(SimulationError, match="MD stopped at step 1 .* the temperature is .* K"):
        run_md(atoms, model, outdir=tmp_path, steps=10, ensemble="nvt-langevin", temperature_K=100)
    assert (tmp_path / "exploded.extxyz").is_file() and (tmp_path / "checkpoint.npz").is_file()
    assert len((tmp_path / "md.log").read_text().splitlines()) == 3  # header, step 0, the exploding step


def test_refusals(model, tmp_path):
    with pytest.raises(ValueError, match="unknown ensemble 'nvx'; choose one of nve, nvt-langevin"):
        run_md(molecule("H2O"), model, outdir=tmp_path / "a", ensemble="nvx")
    with pytest.raises(InvalidStructureError, match="npt .* needs a periodic cell"):
        run_md(molecule("H2O"), model, outdir=tmp_path / "b", ensemble="npt")
    run_md(molecule("H2O"), model, outdir=tmp_path / "c", steps=1)
    with pytest.raises(RunDirectoryError, match="--resume"):
        run_md(molecule("H2O"), model, outdir=tmp_path / "c", steps=1)
    with pytest.raises(RunDirectoryError, match="not an MD run directory"):
        resume_md(tmp_path / "b")
    with pytest.raises(ValueError, match="give steps .* or time_ps"):
        run_md(molecule("H2O"), model, outdir=tmp_path / "d", steps=3, time_ps=1.0)


def test_openmm_engine_is_dispatched(model, tmp_path):
    pytest.importorskip("nnpcalc.openmm.simulate")
    result = run_md(molecule("H2O"), model, outdir=tmp_path, steps=4, engine="openmm", ensemble="nvt-langevin",
                    trajectory_interval=2, log_interval=2)
    assert result.steps == 4 and any(p.exists() for p in result.files.values())


def test_missing_ase_private_state_fails_loudly_before_any_step(model, tmp_path, monkeypatch):
    """Checkpoints save private ASE attributes: an ASE that renamed one must fail when the integrator is made."""
    from nnpcalc.workflows import md_ensembles

    monkeypatch.setitem(md_ensembles.STATE, "nvt-nose-hoover", ("_thermostat._eta", "_thermostat._renamed"))
    with pytest.raises(ImportError, match=r"has no _thermostat\._renamed, which nnpcalc's MD checkpoints save"):
        run_md(molecule("H2O"), model, outdir=tmp_path / "run", steps=2, ensemble="nvt-nose-hoover")
    assert not (tmp_path / "run").exists()


def test_the_fused_pair_is_the_brute_force_one(tmp_path):
    """The neighbour-list search finds the pair a full distance matrix (minimum image) finds."""
    from ase.data import covalent_radii

    from nnpcalc.systems import water_box
    from nnpcalc.workflows.md_watch import closest_fused_pair

    rng = np.random.default_rng(0)
    for trial in range(6):
        atoms = water_box(2) if trial % 2 else molecule("CH3CH2OH")
        atoms.positions += rng.normal(scale=0.4, size=atoms.positions.shape)
        factor = 0.9
        d = atoms.get_all_distances(mic=atoms.pbc.any())
        radii = covalent_radii[atoms.numbers]
        ratio = d / (factor * (radii[:, None] + radii[None, :]))
        np.fill_diagonal(ratio, np.inf)
        found = closest_fused_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, factor)
        if ratio.min() >= 1:
            assert found is None
            continue
        i, j, distance, limit = found
        assert {i, j} == set(np.unravel_index(np.argmin(ratio), ratio.shape))
        assert distance == pytest.approx(d[i, j], abs=1e-12) and distance / limit == pytest.approx(ratio.min())


def test_no_equilibrium_molecule_trips_the_fused_check_but_a_squeezed_crystal_does():
    from ase.collections import g2

    from nnpcalc.workflows.md_settings import DEFAULTS
    from nnpcalc.workflows.md_watch import fused_atoms

    assert [name for name in g2.names if fused_atoms(g2[name], DEFAULTS.fused_distance_factor)] == []
    assert "atoms 0 (Cu) and 0 (Cu)" in fused_atoms(bulk("Cu", "fcc", a=1.2), 0.5)  # its own periodic image


def test_both_engines_run_the_same_settings_to_the_same_positions(model, model_file, tmp_path):
    """One MDSettings, two engines: same start (the structure's momenta), same md.log columns, and NVE
    trajectories that agree. OpenMM's Verlet is leapfrog: it takes the momenta as half a step behind the
    positions (and reports the kinetic energy averaged over the half steps), so the paths differ by
    O(dt²·F/m) per step, not to round-off."""
    pytest.importorskip("openmm")
    from nnpcalc.openmm.simulate import run_openmm_md
    from nnpcalc.workflows.md import thermalize
    from nnpcalc.workflows.md_settings import MDSettings

    atoms = molecule("H2O")
    thermalize(atoms, 300.0, np.random.default_rng(1))
    settings = MDSettings(ensemble="nve", steps=10, log_interval=5, trajectory_interval=5)
    run_md(atoms, model, outdir=tmp_path / "ase", settings=settings)
    run_openmm_md(atoms, model_file, settings, outdir=tmp_path / "openmm", platform="Reference")
    logs = [np.loadtxt(tmp_path / engine / "md.log") for engine in ("ase", "openmm")]
    assert logs[0].shape == logs[1].shape == (3, 9)
    assert np.allclose(logs[0][0, :3], logs[1][0, :3], rtol=0, atol=1e-9)  # step, time, Epot of the same start
    assert logs[1][0, 3] == pytest.approx(logs[0][0, 3], rel=1e-2)  # Ekin: the same momenta
    frames = [ase.io.read(tmp_path / engine / "trajectory.extxyz", ":") for engine in ("ase", "openmm")]
    assert np.abs(frames[0][0].positions - frames[1][0].positions).max() < 1e-9
    assert np.abs(frames[0][-1].positions - frames[1][-1].positions).max() < 1e-3  # measured 3e-4 Å at step 10
    assert json.loads((tmp_path / "openmm" / "run.json").read_text())["engine"] == "openmm"
