"""`nnp md --engine openmm`: checkpoints, a resume after a kill that matches the uninterrupted run,
refusals of foreign checkpoints, and the log's pressure against the ASE engine's."""

import re
import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmm")
import ase.io  # noqa: E402
from ase.build import molecule  # noqa: E402

from nnpcalc import systems  # noqa: E402
from nnpcalc.errors import CheckpointError  # noqa: E402
from nnpcalc.openmm.simulate import resume_openmm_md, run_openmm_md  # noqa: E402
from nnpcalc.workflows.md import resume_md, run_md  # noqa: E402

SETTINGS = dict(steps=20, checkpoint_interval=5, log_interval=2, trajectory_interval=2, dtype="float64", seed=3,
                fused_distance_factor=0.0, pressure_GPa=1e-4, barostat_interval=3)  # random weights: water may fuse


class Killed(Exception):
    pass


def kill_at(step_to_die):
    def progress(step, total):
        if step == step_to_die:
            raise Killed  # as kill -9 after that log row: rows and frames past the checkpoint are on disk
    return progress


def outputs(rundir):
    return np.loadtxt(rundir / "md.log"), ase.io.read(rundir / "trajectory.extxyz", ":")


def water():
    return systems.water_box(2, 3.1, 0)  # 8 waters, 6.2 Å box


@pytest.mark.parametrize("ensemble", ["nve", "nvt-langevin",
                                      pytest.param("nvt-nose-hoover", marks=pytest.mark.slow),
                                      pytest.param("npt", marks=pytest.mark.slow)])
def test_a_killed_run_resumes_to_the_uninterrupted_one(model_file, tmp_path, ensemble):
    run_openmm_md(water(), model_file, outdir=tmp_path / "full", platform="Reference", ensemble=ensemble, **SETTINGS)
    with pytest.raises(Killed):
        run_openmm_md(water(), model_file, outdir=tmp_path / "cut", platform="Reference", ensemble=ensemble,
                      progress=kill_at(14), **SETTINGS)
    log, frames = outputs(tmp_path / "cut")
    assert log[-1, 0] == 14 and len(frames) == 8  # written past the checkpoint at step 10
    summary = resume_openmm_md(tmp_path / "cut", platform="Reference")
    assert summary["steps"] == 20
    (full_log, full_frames), (log, frames) = outputs(tmp_path / "full"), outputs(tmp_path / "cut")
    assert log.shape == full_log.shape == (11, 9) and len(frames) == len(full_frames) == 11
    assert np.allclose(log, full_log, rtol=0, atol=1e-8, equal_nan=True)
    assert max(np.abs(a.positions - b.positions).max() for a, b in zip(frames, full_frames)) < 1e-8
    assert max(np.abs(a.get_velocities() - b.get_velocities()).max() for a, b in zip(frames, full_frames)) < 1e-8


def test_resume_md_continues_an_openmm_run_to_a_new_total(model_file, tmp_path):
    """The workflow (and `nnp md --resume`) entry: an ended run extended; nve is deterministic, so the
    extension matches a run that was that long from the start."""
    settings = {**SETTINGS, "steps": 10}
    run_md(water(), model_file, outdir=tmp_path / "short", engine="openmm", ensemble="nve", **settings)
    run_md(water(), model_file, outdir=tmp_path / "long", engine="openmm", ensemble="nve", **{**settings, "steps": 16})
    result = resume_md(tmp_path / "short", steps=16)
    assert result.steps == 16 and result.files["checkpoint"].is_file()
    (a, fa), (b, fb) = outputs(tmp_path / "short"), outputs(tmp_path / "long")
    assert a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-8, equal_nan=True)
    assert max(np.abs(x.positions - y.positions).max() for x, y in zip(fa, fb)) < 1e-8


def test_a_foreign_checkpoint_is_refused_and_nothing_is_written(model_file, tmp_path):
    ethanol = molecule("CH3CH2OH")
    run_openmm_md(water(), model_file, outdir=tmp_path / "water", platform="Reference", **{**SETTINGS, "steps": 4})
    run_openmm_md(ethanol, model_file, outdir=tmp_path / "ethanol", platform="Reference", **{**SETTINGS, "steps": 4})
    run_md(water(), model_file, outdir=tmp_path / "ase", **{**SETTINGS, "steps": 4})
    run = tmp_path / "water"
    cases = [(tmp_path / "ethanol" / "checkpoint.npz", "checkpoint of C2H6O (9 atoms, charge 0 e), but run.json "
              "records a run of H16O8 (24 atoms): it is the checkpoint of another system"),
             (tmp_path / "ase" / "checkpoint.npz", "was written by the ASE engine")]
    for source, message in cases:
        shutil.copy(source, run / "checkpoint.npz")
        sizes = {p.name: p.stat().st_size for p in run.iterdir()}
        with pytest.raises(CheckpointError, match=re.escape(message)):
            resume_openmm_md(run, steps=8, platform="Reference")
        assert {p.name: p.stat().st_size for p in run.iterdir()} == sizes  # nothing cut, nothing written


def test_a_checkpoint_holding_a_system_xml_is_refused_unread(model_file, tmp_path):
    """A System's XML can embed a pickled PythonForce: only an OpenMM <State> is ever deserialised."""
    run = tmp_path / "run"
    run_openmm_md(water(), model_file, outdir=run, platform="Reference", **{**SETTINGS, "steps": 2})
    with np.load(run / "checkpoint.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["state"] = np.array('<?xml version="1.0" ?><System openmmVersion="8.6.1" type="System" version="1"/>')
    np.savez(run / "checkpoint.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"is a <System>, not an OpenMM <State>"):
        resume_openmm_md(run, steps=4, platform="Reference")


def test_the_log_pressure_is_the_ase_engines(model_file, tmp_path):
    """Step 0 is the same state in both engines (the structure's own momenta): the same pressure,
    the model's stress with the ideal-gas term; NaN without a periodic box, as the ASE engine."""
    from nnpcalc.workflows.md import thermalize

    atoms = water()
    thermalize(atoms, 300.0, np.random.default_rng(1))
    settings = {**SETTINGS, "steps": 2, "ensemble": "nve"}
    run_md(atoms, model_file, outdir=tmp_path / "ase", **settings)
    run_openmm_md(atoms, model_file, outdir=tmp_path / "openmm", platform="Reference", **settings)
    ase_log, openmm_log = (np.loadtxt(tmp_path / e / "md.log") for e in ("ase", "openmm"))
    assert abs(ase_log[0, 7]) > 0.01  # GPa: a pressure worth comparing
    assert openmm_log[0, 7] == pytest.approx(ase_log[0, 7], abs=1e-8)  # the log prints 8 decimals
    assert np.isfinite(openmm_log[:, 7]).all()
    run_openmm_md(molecule("H2O"), model_file, outdir=tmp_path / "molecule", platform="Reference", **settings)
    assert np.isnan(np.loadtxt(tmp_path / "molecule" / "md.log")[:, 7]).all()


@pytest.mark.slow  # two runs of each (25 s, busy 2 cores)
@pytest.mark.parametrize("suffix", [".dcd", ".xtc"])
def test_openmm_trajectory_files_are_cut_back_and_appended(model_file, tmp_path, suffix):
    """OpenMM's own reporters: the resumed file is the uninterrupted one (a .dcd's header, whose frame
    count the cut restores, differs only in its 'Created <time>' title, bytes 180-260)."""
    settings = {**SETTINGS, "ensemble": "nvt-langevin", "trajectory": f"t{suffix}"}
    run_openmm_md(water(), model_file, outdir=tmp_path / "full", platform="Reference", **settings)
    with pytest.raises(Killed):
        run_openmm_md(water(), model_file, outdir=tmp_path / "cut", platform="Reference", progress=kill_at(14),
                      **settings)
    resume_openmm_md(tmp_path / "cut", platform="Reference")
    full, cut = ((tmp_path / run / f"t{suffix}").read_bytes() for run in ("full", "cut"))
    if suffix == ".dcd":
        full, cut = (data[:180] + data[260:] for data in (full, cut))
    assert full == cut


@pytest.mark.slow  # three processes that import torch and OpenMM (~40 s, busy 2 cores)
def test_nnp_md_openmm_killed_with_sigkill_resumes_to_the_uninterrupted_run(model_file, tmp_path, monkeypatch):
    """Real kill -9s of `nnp md --engine openmm` (test_cli_commands' planted killer): between writing a
    checkpoint and moving it into place, then from outside at a random moment; `nnp md --resume` ends
    with the uninterrupted run's log and frames."""
    import random
    import signal

    from click.testing import CliRunner
    killed = runpy.run_path(str(Path(__file__).with_name("test_cli_commands.py")))["killed"]

    from nnpcalc.cli.main import main

    ase.io.write(tmp_path / "water.extxyz", water())
    monkeypatch.chdir(tmp_path)
    args = ["md", "water.extxyz", "-m", model_file, "--engine", "openmm", "--ensemble", "nvt-langevin", "--seed", "7",
            "--steps", "30", "--checkpoint-interval", "3", "--log-interval", "2", "--trajectory-interval", "2",
            "--fused-distance-factor", "0", "-q"]
    assert CliRunner().invoke(main, [*args, "-o", "full"]).exit_code == 0
    assert killed([*args, "-o", "killed"], "before-replace", 3) == -signal.SIGKILL  # checkpoints 0, 3, [6]
    assert (tmp_path / "killed" / "checkpoint.npz.tmp").is_file()
    killed(["md", "--resume", "killed", "-q"], after_s=random.Random(0).uniform(0.0, 1.0))
    result = CliRunner().invoke(main, ["md", "--resume", "killed", "-q"])
    assert result.exit_code == 0 and result.output.startswith("30 steps"), result.output
    (full_log, full_frames), (log, frames) = outputs(tmp_path / "full"), outputs(tmp_path / "killed")
    assert log.shape == full_log.shape and np.allclose(log, full_log, rtol=0, atol=1e-8, equal_nan=True)
    assert max(np.abs(a.positions - b.positions).max() for a, b in zip(frames, full_frames)) < 1e-8


def _link_out(path, outside):
    target = outside.with_name(f"outside-{path.name}")
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)


def test_a_resume_never_writes_outside_its_directory_nor_pads_a_cut_file(model_file, tmp_path):
    from nnpcalc.errors import RunDirectoryError

    run = tmp_path / "run"
    run_openmm_md(water(), model_file, outdir=run, platform="Reference", **{**SETTINGS, "steps": 4})
    outside = tmp_path / "precious.txt"
    damages = {
        "md.log": (lambda: _link_out(run / "md.log", outside), "points outside the run directory"),
        "trajectory.extxyz": (lambda: _link_out(run / "trajectory.extxyz", outside), "points outside the run"),
        "checkpoint.npz": (lambda: _link_out(run / "checkpoint.npz", outside), "points outside the run"),
        "cut log": (lambda: (run / "md.log").write_bytes((run / "md.log").read_bytes()[:40]),
                    "holds 40 bytes but the checkpoint recorded"),
    }
    pristine = {p.name: p.read_bytes() for p in run.iterdir() if p.name != "run.lock"}
    for name, (damage, message) in damages.items():
        for p in run.iterdir():  # back to the run as it was
            if p.name in pristine:
                p.unlink()
                p.write_bytes(pristine[p.name])
        damage()
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        inside = {p.name: p.lstat().st_size for p in run.iterdir() if p.name != "run.lock"}
        with pytest.raises(RunDirectoryError, match=message):
            resume_openmm_md(run, steps=8, platform="Reference")
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before, name
        assert {p.name: p.lstat().st_size for p in run.iterdir() if p.name != "run.lock"} == inside, name
