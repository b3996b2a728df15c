"""The catalogue of bad input at the command line, in workflow options and in MD run directories.

Issue 10, items 4 and 5: every case asserts the error's type and that its message names what
is wrong and the fix. (The API, model-file and OpenMM catalogue is tests/test_bad_inputs.py.)
Option errors are click's (exit status 2, "Invalid value for '--option'" and the accepted range);
everything else is a typed nnpcalc error (exit status 1 and one line, or the exception under
``nnp --debug``). Resume cases start from one real run, copied and then damaged.
"""

import json
import math
import os
import shutil

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from click.testing import CliRunner

from nnpcalc.cli.main import main
from nnpcalc.errors import (CheckpointError, OptionError, OutputPathError, RunDirectoryError, SimulationError,
                            UnknownOptionError)


@pytest.fixture
def here(tmp_path):
    """A working directory with small inputs."""
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    ase.io.write(tmp_path / "water.xyz", water)
    ase.io.write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6))
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("someone's files\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def nnp(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- options click refuses at the boundary: (arguments, option named, what the message says it accepts)
OPTION_CASES = [
    (["md", "water.xyz", "--temperature-K", "-5"], "--temperature-K", "x>=0"),
    (["md", "water.xyz", "--temperature-K", "nan"], "--temperature-K", "not a finite number"),
    (["md", "water.xyz", "--timestep-fs", "0"], "--timestep-fs", "x>0"),
    (["md", "water.xyz", "--timestep-fs", "-0.5"], "--timestep-fs", "x>0"),
    (["md", "water.xyz", "--timestep-fs", "nan"], "--timestep-fs", "not a finite number"),
    (["md", "water.xyz", "--timestep-fs", "inf"], "--timestep-fs", "not a finite number"),
    (["md", "water.xyz", "--steps", "-5"], "--steps", "x>=0"),
    (["md", "water.xyz", "--steps", "1.5"], "--steps", "not a valid integer"),
    (["md", "water.xyz", "--time-ps", "-1"], "--time-ps", "x>=0"),
    (["md", "water.xyz", "--time-ps", "inf"], "--time-ps", "not a finite number"),
    (["md", "water.xyz", "--tau-t-fs", "0"], "--tau-t-fs", "x>0"),
    (["md", "water.xyz", "--tau-p-fs", "-1"], "--tau-p-fs", "x>0"),
    (["md", "water.xyz", "--friction-per-fs", "0"], "--friction-per-fs", "x>0"),
    (["md", "water.xyz", "--trajectory-interval", "0"], "--trajectory-interval", "x>=1"),
    (["md", "water.xyz", "--log-interval", "0"], "--log-interval", "x>=1"),
    (["md", "water.xyz", "--checkpoint-interval", "-1"], "--checkpoint-interval", "x>=1"),
    (["md", "water.xyz", "--barostat-interval", "0"], "--barostat-interval", "x>=1"),
    (["md", "water.xyz", "--seed", "-1"], "--seed", "x>=0"),
    (["md", "water.xyz", "--pressure-GPa", "nan"], "--pressure-GPa", "not a finite number"),
    (["md", "water.xyz", "--fused-distance-factor", "1.5"], "--fused-distance-factor", "0<=x<1"),
    (["md", "water.xyz", "--fused-distance-factor", "-0.1"], "--fused-distance-factor", "0<=x<1"),
    (["md", "water.xyz", "--ensemble", "nvx"], "--ensemble", "'nvx' is not one of 'nve', 'nvt-langevin'"),
    (["md", "water.xyz", "--engine", "lammps"], "--engine", "is not one of 'ase', 'openmm'"),
    (["md", "water.xyz", "--dtype", "float16"], "--dtype", "is not one of 'float32', 'float64'"),
    (["md", "--resume", "no-such-run"], "--resume", "does not exist"),
    (["relax", "water.xyz", "--steps", "-5"], "--steps", "x>=0"),
    (["relax", "water.xyz", "--fmax", "0"], "--fmax", "x>0"),
    (["relax", "water.xyz", "--fmax", "-0.05"], "--fmax", "x>0"),
    (["relax", "water.xyz", "--fmax", "nan"], "--fmax", "not a finite number"),
    (["relax", "water.xyz", "--pressure-GPa", "inf"], "--pressure-GPa", "not a finite number"),
    (["relax", "water.xyz", "--optimizer", "SD"], "--optimizer", "is not one of 'fire', 'bfgs', 'lbfgs'"),
    (["relax", "water.xyz", "-o", "missing/out.extxyz"], "--output", "does not exist; create it"),
    (["relax", "water.xyz", "-o", "a-file/out.extxyz"], "--output", "is a file, not a folder"),
    (["relax", "water.xyz", "-o", "folder"], "--output", "is a directory"),
    (["relax", "water.xyz", "--trajectory", "missing/t.extxyz"], "--trajectory", "does not exist; create it"),
    (["phonons", "cu.cif", "--supercell", "0", "1", "1"], "--supercell", "x>=1"),
    (["phonons", "cu.cif", "--supercell", "-1", "2", "2"], "--supercell", "x>=1"),
    (["phonons", "cu.cif", "--supercell", "1.5", "1", "1"], "--supercell", "not a valid integer"),
    (["phonons", "cu.cif", "--displacement-A", "0"], "--displacement-A", "x>0"),
    (["phonons", "cu.cif", "--t-step-K", "0"], "--t-step-K", "x>0"),
    (["phonons", "cu.cif", "--t-max-K", "-1"], "--t-max-K", "x>=0"),
    (["phonons", "cu.cif", "--mesh", "0", "4", "4"], "--mesh", "x>=1"),
    (["phonons", "cu.cif", "-o", "a-file"], "--output-dir", "is a file; give a folder"),
    (["check", "hcno-gfn2", "--nve-steps", "-1"], "--nve-steps", "x>=0"),
    (["eval", "hcno-gfn2", "water.xyz", "--batch-size", "0"], "--batch-size", "x>=1"),
    (["eval", "hcno-gfn2", "water.xyz", "--parity", "missing/p.png"], "--parity", "does not exist; create it"),
    (["export", "water.xyz", "-o", "missing/model.pt"], "--output", "does not exist; create it"),
    (["train", "water.xyz", "--devices", "0"], "--devices", "x>=1"),
    (["train", "water.xyz", "--num-nodes", "0"], "--num-nodes", "x>=1"),
    (["train", "water.xyz", "--max-epochs", "-1"], "--max-epochs", "x>=0"),
]


@pytest.mark.parametrize("args, option, accepted", OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES])
def test_an_option_out_of_range_is_refused_before_any_work(here, args, option, accepted):
    result = nnp(*args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output or f"'{option}'" in result.output, result.output
    assert accepted in result.output and "Traceback" not in result.output
    assert not (here / "md-run").exists() and not (here / "phonons").exists()  # nothing was started


# -- refused by the workflow, before any work: (arguments, error type, words of the message and fix)
WORKFLOW_CASES = [
    (["md", "water.xyz", "--trajectory", "../escape.extxyz"], OptionError, "must be a plain file name"),
    (["md", "water.xyz", "--trajectory", "/tmp/escape.extxyz"], OptionError, "must be a plain file name"),
    (["md", "water.xyz", "--trajectory", "t.cif"], OptionError, "use e.g. trajectory.extxyz"),
    (["md", "water.xyz", "--engine", "openmm", "--trajectory", "t.traj"], OptionError, "writes .extxyz, .dcd, .xtc"),
    (["md", "water.xyz", "--steps", "3", "--time-ps", "1"], OptionError, "give steps (3) or time_ps (1.0), not both"),
    (["md", "water.xyz", "--ensemble", "nvt-langevin", "--temperature-K", "0"], OptionError,
     "needs a temperature_K above 0"),
    (["md", "water.xyz", "--engine", "openmm", "--ensemble", "nvt-bussi"], OptionError,
     "does not offer ensemble nvt-bussi; use engine ase"),
    (["md", "water.xyz", "-o", "a-file"], RunDirectoryError, "is a file; give a directory"),
    (["md", "water.xyz", "-o", "folder"], RunDirectoryError, "already holds files; continue that run"),
    (["md", "water.xyz", "-o", "folder", "--overwrite"], RunDirectoryError, "--overwrite only replaces an earlier run"),
    (["md", "water.xyz", "--engine", "openmm", "-o", "folder"], RunDirectoryError, "or overwrite it (--overwrite)"),
    (["relax", "water.xyz", "-o", "out.unknown-format"], ValueError, "cannot tell the format"),
]


@pytest.mark.parametrize("args, error, fix", WORKFLOW_CASES, ids=[" ".join(c[0]) for c in WORKFLOW_CASES])
def test_a_workflow_refuses_before_any_work_with_a_typed_error(here, model_file, args, error, fix):
    result = nnp("--debug", *args, "-m", model_file)
    assert isinstance(result.exception, error), (result.exception, result.output)
    assert fix in str(result.exception)
    assert (here / "folder" / "notes.txt").is_file() and not (here / "md-run").exists()
    plain = nnp(*args, "-m", model_file)  # without --debug: one line, status 1
    assert plain.exit_code == 1 and plain.output.startswith("Error: ") and "Traceback" not in plain.output


# -- the same checks through the Python API: (function, keyword arguments, error, words of the message)
def _run_md(**options):
    from nnpcalc import run_md

    return run_md(molecule("H2O"), "no-model-needed-for-a-refusal.pt", outdir="never", **options)


def _relax(**options):
    from nnpcalc.workflows.relax import relax

    return relax(molecule("H2O"), "no-model-needed-for-a-refusal.pt", **options)


def _phonons(**options):
    from nnpcalc.workflows.phonons import phonons

    return phonons(bulk("Cu"), "no-model-needed-for-a-refusal.pt", **options)


def _selection(atoms):
    pytest.importorskip("openmm")
    from nnpcalc.openmm.topology import check_selection

    return check_selection(atoms, 10)


API_CASES = [
    (_run_md, {"timestep_fs": math.nan}, "timestep_fs must be a finite number"),
    (_run_md, {"timestep_fs": math.inf}, "timestep_fs must be a finite number"),
    (_run_md, {"temperature_K": -5.0}, "temperature_K must be zero or more"),
    (_run_md, {"temperature_K": True}, "temperature_K must be float"),
    (_run_md, {"steps": -5}, "steps must be a whole number >= 0"),
    (_run_md, {"steps": 2.5}, "steps must be a whole number >= 0"),
    (_run_md, {"tau_t_fs": 0.0}, "tau_t_fs must be positive"),
    (_run_md, {"seed": -1}, "seed must be zero or more"),
    (_run_md, {"dtype": "float16"}, "unknown dtype 'float16'; choose one of float32, float64"),
    (_relax, {"fmax": 0.0}, "fmax must be a finite force above 0"),
    (_relax, {"fmax": math.nan}, "fmax must be a finite force above 0"),
    (_relax, {"steps": -5}, "steps must be a whole number >= 0"),
    (_relax, {"steps": True}, "steps must be a whole number >= 0"),
    (_relax, {"optimizer": "SD"}, "unknown optimizer 'SD'; choose one of FIRE, BFGS, LBFGS"),
    (_phonons, {"supercell": (0, 1, 1)}, "has no volume (a repetition < 1"),
    (_phonons, {"supercell": [[1, 0, 0], [0, 1, 0], [1, 0, 0]]}, "singular or left-handed matrix"),
    (_phonons, {"supercell": (2.5, 2, 2)}, "3 whole repetitions"),
    (_phonons, {"displacement": -0.01}, "must be above 0"),
    (_phonons, {"t_max": math.inf}, "t_max must be a finite number"),
    (_selection, [0.0, 1.7], "must list whole particle indices"),
    (_selection, [True, False, True], "must list whole particle indices"),
]


@pytest.mark.parametrize("call, arguments, message", API_CASES,
                         ids=[f"{c[0].__name__}-{c[1]}" for c in API_CASES])
def test_an_api_option_out_of_range_is_an_option_error(here, call, arguments, message):
    with pytest.raises(OptionError) as caught:
        call(**arguments) if isinstance(arguments, dict) else call(arguments)
    assert message in str(caught.value)
    assert not (here / "never").exists()


def test_an_unknown_md_setting_is_named_with_the_valid_ones(here):
    with pytest.raises(UnknownOptionError, match=r"unknown MD setting\(s\) temprature_K; valid: ensemble"):
        _run_md(temprature_K=300.0)


# -- resume: one real run, copied and damaged per case
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, model_file):
    """A 6-step NVT run (checkpoints at 0, 3, 6) to copy."""
    from nnpcalc import run_md

    path = tmp_path_factory.mktemp("runs") / "run"
    run_md(molecule("H2O"), model_file, outdir=path, steps=6, ensemble="nvt-langevin", checkpoint_interval=3,
           log_interval=1, trajectory_interval=1, seed=2)
    return path


@pytest.fixture
def run(here, finished_run):
    shutil.copytree(finished_run, here / "run")
    return here / "run"


def _edit_settings(run, **changes):
    data = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**data, **changes}))


def _rewrite_checkpoint(run, **arrays):
    with np.load(run / "checkpoint.npz", allow_pickle=False) as data:
        content = {k: data[k] for k in data.files}
    np.savez(run / "checkpoint.npz", **{**content, **arrays})


def _damage(run, case):
    """Damage the run as ``case`` says; returns a file outside the run that must stay untouched, if any."""
    outside = run.parent / "precious.txt"
    outside.write_text("not yours\n")
    ckpt = run / "checkpoint.npz"
    damages = {
        "checkpoint-truncated": lambda: ckpt.write_bytes(ckpt.read_bytes()[:200]),
        "checkpoint-bit-flip": lambda: ckpt.write_bytes(_flip(ckpt.read_bytes())),
        "checkpoint-not-a-zip": lambda: ckpt.write_text("hello"),
        "checkpoint-missing": lambda: ckpt.unlink(),
        "checkpoint-object-array": lambda: _rewrite_checkpoint(run, positions=np.array([object()], dtype=object)),
        "checkpoint-wrong-shape": lambda: _rewrite_checkpoint(run, positions=np.zeros((2, 3))),
        "checkpoint-nan": lambda: _rewrite_checkpoint(run, momenta=np.full((3, 3), np.nan)),
        "checkpoint-other-ensemble": lambda: _edit_settings(run, ensemble="nvt-nose-hoover"),
        "checkpoint-symlink": lambda: (ckpt.rename(outside.with_suffix(".npz")), ckpt.symlink_to(outside.with_suffix(".npz"))),
        "settings-not-json": lambda: (run / "run.json").write_text("{ not json"),
        "settings-not-an-object": lambda: (run / "run.json").write_text("[1, 2]"),
        "settings-wrong-type": lambda: _edit_settings(run, temperature_K="hot"),
        "settings-negative-timestep": lambda: _edit_settings(run, timestep_fs=-0.5),
        "trajectory-absolute-outside": lambda: _edit_settings(run, trajectory=str(outside.with_suffix(".extxyz"))),
        "trajectory-dotdot": lambda: _edit_settings(run, trajectory="../precious.extxyz"),
        "trajectory-symlink-outside": lambda: _symlink_out(run / "trajectory.extxyz", outside),
        "log-symlink-outside": lambda: _symlink_out(run / "md.log", outside),
        "log-shorter": lambda: _cut(run / "md.log", 40),
        "trajectory-shorter": lambda: _cut(run / "trajectory.extxyz", 100),
        "openmm-run": lambda: _edit_settings(run, engine="openmm"),
    }
    damages[case]()
    return outside


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def _symlink_out(path, outside):
    target = outside.with_name(f"outside-{path.name}")
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)


def _cut(path, size):
    with open(path, "r+b") as fh:
        fh.truncate(size)


RESUME_CASES = [
    ("checkpoint-truncated", CheckpointError, "checkpoint.npz is damaged"),
    ("checkpoint-bit-flip", CheckpointError, "checkpoint.npz is damaged"),
    ("checkpoint-not-a-zip", CheckpointError, "Restore the file, or start a new run"),
    ("checkpoint-missing", RunDirectoryError, "stopped before its first checkpoint; start it again"),
    ("checkpoint-object-array", CheckpointError, "not an nnpcalc MD checkpoint"),
    ("checkpoint-wrong-shape", CheckpointError, "positions has shape (2, 3), expected (3, 3)"),
    ("checkpoint-nan", CheckpointError, "momenta holds NaN or inf"),
    ("checkpoint-other-ensemble", CheckpointError, "does not belong to this run.json"),
    ("checkpoint-symlink", RunDirectoryError, "points outside the run directory"),
    ("settings-not-json", RunDirectoryError, "run.json is damaged or was edited"),
    ("settings-not-an-object", RunDirectoryError, "expected a JSON object of settings"),
    ("settings-wrong-type", RunDirectoryError, "temperature_K must be float, got 'hot'"),
    ("settings-negative-timestep", RunDirectoryError, "timestep_fs must be positive"),
    ("trajectory-absolute-outside", RunDirectoryError, "must be a plain file name"),
    ("trajectory-dotdot", RunDirectoryError, "must be a plain file name"),
    ("trajectory-symlink-outside", RunDirectoryError, "points outside the run directory"),
    ("log-symlink-outside", RunDirectoryError, "points outside the run directory"),
    ("log-shorter", RunDirectoryError, "holds 40 bytes but the checkpoint recorded"),
    ("trajectory-shorter", RunDirectoryError, "cannot continue record for record"),
    ("openmm-run", CheckpointError, "was written by the ASE engine, but run.json says engine openmm"),
]


@pytest.mark.parametrize("case, error, fix", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_a_damaged_run_is_refused_and_nothing_is_written(run, case, error, fix):
    outside = _damage(run, case)
    before = {p.name: p.read_bytes() for p in run.parent.iterdir() if p.is_file()}
    sizes = {p.name: p.lstat().st_size for p in run.iterdir()}
    result = nnp("--debug", "md", "--resume", run, "--steps", "9")
    assert isinstance(result.exception, error), (result.exception, result.output)
    assert fix in str(result.exception)
    assert {p.name: p.read_bytes() for p in run.parent.iterdir() if p.is_file()} == before  # outside: untouched
    assert {p.name: p.lstat().st_size for p in run.iterdir() if p.name != "run.lock"} == \
        {k: v for k, v in sizes.items() if k != "run.lock"}  # inside: not cut, not padded
    assert outside.read_text() == "not yours\n"


CHANGE_CASES = [
    (["--temperature-K", "5000"], "temperature_K = 300.0"),
    (["--ensemble", "nve"], "ensemble = 'nvt-langevin'"),
    (["--timestep-fs", "1.0"], "timestep_fs = 0.5"),
    (["--seed", "3"], "seed = 2"),
    (["--dtype", "float32"], "dtype = 'float64'"),
    (["--engine", "openmm"], "engine = 'ase'"),
    (["--log-interval", "5"], "log_interval = 1"),
]


@pytest.mark.parametrize("options, recorded", CHANGE_CASES, ids=[c[0][0] for c in CHANGE_CASES])
def test_a_resume_refuses_to_change_the_physics(run, options, recorded):
    settings = (run / "run.json").read_text()
    result = nnp("--debug", "md", "--resume", run, *options)
    assert isinstance(result.exception, RunDirectoryError)
    assert recorded in str(result.exception) and "Start a new run instead" in str(result.exception)
    assert (run / "run.json").read_text() == settings


def test_a_resume_with_the_same_values_and_a_new_total_goes_on(run):
    result = nnp("md", "--resume", run, "--temperature-K", "300", "--ensemble", "nvt-langevin", "--steps", "8")
    assert result.exit_code == 0, result.output
    assert np.loadtxt(run / "md.log")[:, 0].tolist() == list(range(9))


def test_a_resume_refuses_another_model(run, tmp_path, model_factory):
    other = model_factory(tmp_path / "other.pt", seed=5)[0]
    result = nnp("--debug", "md", "--resume", run, "-m", other)
    assert isinstance(result.exception, RunDirectoryError)
    assert "is not the model" in str(result.exception) and "resume with that file" in str(result.exception)


def test_a_resume_takes_the_same_model_moved(run, model_file, tmp_path):
    moved = tmp_path / "moved.pt"
    shutil.copy(model_file, moved)
    result = nnp("md", "--resume", run, "-m", moved, "--steps", "7")
    assert result.exit_code == 0, result.output


def test_resume_and_a_new_run_options_are_not_mixed(run):
    for extra in (["-o", "elsewhere"], ["--overwrite"], ["water.xyz"]):
        result = nnp("md", "--resume", run, *extra)
        assert result.exit_code == 2 and ("not both" in result.output or "for a new run" in result.output)


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(run, model_file):
    from nnpcalc.workflows.md_rundir import RunLock

    with RunLock(run):
        result = nnp("--debug", "md", "--resume", run, "--steps", "9")
        assert isinstance(result.exception, RunDirectoryError)
        assert f"being written by another process (pid {os.getpid()})" in str(result.exception)
        overwrite = nnp("--debug", "md", "water.xyz", "-m", model_file, "-o", run, "--overwrite")
        assert isinstance(overwrite.exception, RunDirectoryError)
    assert nnp("md", "--resume", run, "--steps", "7").exit_code == 0  # released: the run goes on


def test_resuming_from_the_step_0_checkpoint_writes_step_0_once(here, model_file):
    from nnpcalc import run_md

    run_md(molecule("H2O"), model_file, outdir="zero", steps=0, ensemble="nvt-langevin", log_interval=1,
           trajectory_interval=1)
    result = nnp("md", "--resume", "zero", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert np.loadtxt(here / "zero" / "md.log")[:, 0].tolist() == [0, 1, 2]
    assert len(ase.io.read(here / "zero" / "trajectory.extxyz", ":")) == 3


def test_fused_atoms_stop_the_run_with_the_usual_message(here, model_file):
    fused = molecule("H2O")
    fused.positions[1] = fused.positions[0] + [0.2, 0.0, 0.0]
    ase.io.write(here / "fused.xyz", fused)
    result = nnp("--debug", "md", "fused.xyz", "-m", model_file, "--steps", "5", "-o", "fused")
    assert isinstance(result.exception, SimulationError)
    assert "MD stopped at step 0" in str(result.exception) and "atoms 0 (O) and 1 (H) are" in str(result.exception)
    assert "--fused-distance-factor" in str(result.exception)
    assert (here / "fused" / "exploded.extxyz").is_file()


def test_an_unwritable_output_is_refused_before_relaxing(here, model_file):
    result = nnp("--debug", "relax", "water.xyz", "-m", model_file, "-o", "a-file/relaxed.xyz")
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    with pytest.raises(OutputPathError, match="does not exist; create it"):
        from nnpcalc.workflows.relax import relax

        relax(molecule("H2O"), model_file, trajectory=here / "missing" / "t.extxyz")


# -- a run of the other engine, and the uncertainty watch's frames file linked out of the run
def _refused_writing_nothing(run, error, fix, *args):
    """``nnp md --resume run *args`` fails with ``error`` naming ``fix``; nothing in or beside the run changes."""
    before = {p.name: p.read_bytes() for p in run.parent.iterdir() if p.is_file()}
    sizes = {p.name: p.lstat().st_size for p in run.iterdir() if p.name != "run.lock"}
    result = nnp("--debug", "md", "--resume", run, "--steps", "9", *args)
    assert isinstance(result.exception, error), (result.exception, result.output)
    assert fix in str(result.exception), str(result.exception)
    assert {p.name: p.read_bytes() for p in run.parent.iterdir() if p.is_file()} == before
    assert {p.name: p.lstat().st_size for p in run.iterdir() if p.name != "run.lock"} == sizes
    return str(result.exception)


@pytest.fixture(scope="module")
def openmm_run(tmp_path_factory, model_file):
    """A 6-step OpenMM NVT run of water (checkpoints at 0, 3, 6) to copy."""
    pytest.importorskip("openmm")
    from nnpcalc import run_md

    path = tmp_path_factory.mktemp("openmm-runs") / "run"
    run_md(molecule("H2O"), model_file, outdir=path, steps=6, engine="openmm", ensemble="nvt-langevin",
           checkpoint_interval=3, log_interval=1, trajectory_interval=1, seed=2)
    return path


def _without_engine(run):
    data = json.loads((run / "run.json").read_text())
    del data["engine"]
    (run / "run.json").write_text(json.dumps(data))


OTHER_ENGINE_CASES = {  # (which run is copied, how it is damaged)
    "openmm-run-json-says-ase": ("openmm", lambda run, _: _edit_settings(run, engine="ase")),
    "openmm-run-json-without-engine": ("openmm", lambda run, _: _without_engine(run)),
    "openmm-checkpoint-copied-into-an-ase-run": ("ase", lambda run, other: shutil.copy(other / "checkpoint.npz", run)),
}


@pytest.mark.parametrize("case", OTHER_ENGINE_CASES)
def test_an_ase_resume_of_an_openmm_checkpoint_names_the_engine_and_the_fix(here, finished_run, openmm_run, case):
    which, damage = OTHER_ENGINE_CASES[case]
    run = here / "run"
    shutil.copytree(openmm_run if which == "openmm" else finished_run, run)
    damage(run, openmm_run)
    message = _refused_writing_nothing(run, CheckpointError, "checkpoint.npz was written by the openmm engine")
    assert "made with `nnp md --engine openmm`" in message and "KeyError" not in message
    assert f"Put \"engine\": \"openmm\" back in {run.resolve() / 'run.json'}" in message
    assert "restore this run's own checkpoint" in message
    if which == "openmm":  # the fix the message names works
        _edit_settings(run, engine="openmm")
        result = nnp("md", "--resume", run, "--steps", "7")
        assert result.exit_code == 0, result.output
        assert np.loadtxt(run / "md.log")[:, 0].tolist() == list(range(8))


@pytest.fixture(scope="module")
def ensemble_model(tmp_path_factory):
    """A random-weight H/O model with a 4-member ensemble head: it serves forces_uncertainty."""
    import torch

    from nnpcalc.nn.build import Architecture, build_potential, export

    torch.manual_seed(0)
    arch = Architecture(elements=["H", "O"], backbone_kwargs={"hidden_channels": 8, "num_layers": 1, "num_rbf": 8,
                                                              "cutoff_upper": 4.0},
                        head_hidden=8, heads=[{"kind": "energy_ensemble", "members": 4}])
    return export(build_potential(arch), arch, tmp_path_factory.mktemp("ensemble") / "ens.pt")


WATCHED = {"steps": 4, "trajectory_interval": 2, "checkpoint_interval": 2, "log_interval": 1,
           "max_uncertainty": 1e-9, "uncertainty_action": "save"}  # every checked frame is saved


def _watched_run(path, model, engine):
    from nnpcalc import run_md

    if engine == "openmm":
        pytest.importorskip("openmm")
    return run_md(molecule("H2O"), model, outdir=path, engine=engine, **WATCHED)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("engine", ["ase", "openmm"])
def test_a_resume_refuses_an_uncertainty_frames_file_linked_out_of_the_run(here, ensemble_model, engine, dangling):
    run = here / "run"
    with pytest.warns(UserWarning, match="largest force uncertainty"):
        _watched_run(run, ensemble_model, engine)
    assert len(ase.io.read(run / "uncertain.extxyz", ":")) == 2  # steps 2 and 4: the watch writes
    frames = run / "uncertain.extxyz"
    target = here / "outside-uncertain.extxyz"
    if not dangling:
        target.write_text("not yours\n")
    frames.unlink()
    frames.symlink_to(target)
    message = _refused_writing_nothing(run, RunDirectoryError,
                                       f"{run.resolve() / 'uncertain.extxyz'} points outside the run directory")
    assert "replace the link by the file itself" in message
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "not yours\n"


@pytest.mark.parametrize("engine", ["ase", "openmm"])
def test_a_frames_file_linked_out_while_the_run_goes_is_refused_at_the_write(here, ensemble_model, engine,
                                                                            monkeypatch):
    """A link planted after the run began (at its step-0 checkpoint) is not written through."""
    target = here / "outside-uncertain.extxyz"
    module, name = ("nnpcalc.workflows.md_state", "save_checkpoint") if engine == "ase" else \
        ("nnpcalc.openmm.checkpoint", "save")
    if engine == "openmm":
        pytest.importorskip("openmm")
    import importlib

    checkpoints = importlib.import_module(module)
    save = getattr(checkpoints, name)

    def save_and_plant(rundir, checkpoint):
        save(rundir, checkpoint)
        frames = rundir / "uncertain.extxyz"
        if not frames.is_symlink():
            frames.symlink_to(target)

    monkeypatch.setattr(checkpoints, name, save_and_plant)
    with pytest.raises(RunDirectoryError, match="uncertain.extxyz points outside the run directory"):
        _watched_run(here / "run", ensemble_model, engine)
    assert not target.exists()



@pytest.mark.parametrize("engine", ["ase", "openmm"])
def test_overwrite_replaces_a_frames_file_linked_out_of_the_run(here, ensemble_model, engine):
    """``--overwrite`` empties the run first: a planted uncertain.extxyz link goes, nothing is written through it."""
    run = here / "run"
    with pytest.warns(UserWarning, match="largest force uncertainty"):
        _watched_run(run, ensemble_model, engine)
    frames, target = run / "uncertain.extxyz", here / "outside-uncertain.extxyz"
    target.write_text("not yours\n")
    frames.unlink()
    frames.symlink_to(target)
    options = [f"--{key.replace('_', '-')}={value}" for key, value in WATCHED.items()]
    result = nnp("--debug", "md", "water.xyz", "-m", ensemble_model, "--engine", engine, "-o", run, "--overwrite",
                 *options)
    assert result.exit_code == 0, (result.exception, result.output)
    assert target.read_text() == "not yours\n" and not frames.is_symlink()
    assert len(ase.io.read(frames, ":")) == 2  # steps 2 and 4 of the new run


def test_a_traj_resume_does_not_write_through_a_link_at_its_temporary_file(here, model_file):
    """A resume rewrites a .traj beside it (TRAJ.tmp.traj) before moving it in: a link planted there is replaced."""
    from nnpcalc import run_md

    run_md(molecule("H2O"), model_file, outdir="run", steps=4, checkpoint_interval=2, trajectory="t.traj",
           trajectory_interval=1, seed=2)
    outside = here / "precious.traj"
    outside.write_text("not yours\n")
    (here / "run" / "t.traj.tmp.traj").symlink_to(outside)
    result = nnp("md", "--resume", "run", "--steps", "6")
    assert result.exit_code == 0, result.output
    assert outside.read_text() == "not yours\n" and not (here / "run" / "t.traj").is_symlink()
    assert len(ase.io.read(here / "run" / "t.traj", ":")) == 7
