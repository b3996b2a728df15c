"""The `nnp` commands through click's CliRunner (and one real `kill -9`)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from click.testing import CliRunner

from nnpcalc.cli.main import COMMANDS, main


@pytest.fixture
def files(tmp_path):
    """Small input files in a fresh directory, which is also the working directory."""
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    ase.io.write(tmp_path / "water.xyz", water)
    ase.io.write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6))
    (tmp_path / "garbage.xyz").write_text("this is\nnot a structure\n")
    ase.io.write(tmp_path / "iron.xyz", bulk("Fe"))
    hot = molecule("H2O")
    hot.set_momenta(np.full((3, 3), 5.0))
    ase.io.write(tmp_path / "hot.extxyz", hot)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def nnp(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command):
    result = nnp(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_unit_carrying_options_say_their_unit():
    for command, options in {"md": ["--temperature-K", "--pressure-GPa", "--timestep-fs", "--time-ps"],
                             "relax": ["--pressure-GPa", "eV/Å"], "phonons": ["--displacement-A", "--t-max-K"]}.items():
        text = nnp(command, "--help").output
        assert all(option in text for option in options), command


def test_relax_writes_the_format_of_the_extension_and_a_table(files, model_file):
    result = nnp("relax", "water.xyz", "cu.cif", "-m", model_file, "--cell", "--steps", "0", "-o", "out.traj")
    assert result.exit_code == 1 and "needs a periodic cell" in result.output  # the molecule and --cell
    result = nnp("relax", "water.xyz", "cu.cif", "-m", model_file, "-o", "out.traj", "--optimizer", "lbfgs")
    assert result.exit_code == 0, result.output
    assert "water.xyz" in result.output and "max force (eV/Å)" in result.output
    assert len(ase.io.read(files / "out.traj", ":")) == 2
    assert nnp("relax", "cu.cif", "-m", model_file, "--cell", "-o", "POSCAR").exit_code == 0
    assert ase.io.read(files / "POSCAR").get_chemical_formula() == "Cu"


def test_relax_that_does_not_converge_fails_naming_it(files, model_file):
    result = nnp("relax", "water.xyz", "cu.cif", "-m", model_file, "--fmax", "1e-9", "--steps", "2")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: not converged within 2 steps")
    assert "water.xyz" in result.output.strip().splitlines()[-1]
    assert (files / "water-relaxed.extxyz").is_file()  # written all the same


@pytest.mark.parametrize("args, problem", [
    (["relax", "garbage.xyz"], "could not read garbage.xyz"),
    (["relax", "iron.xyz"], "does not support element(s) Fe"),
    (["relax", "water.xyz", "--cell"], "needs a periodic cell with volume"),
    (["md", "water.xyz", "--ensemble", "nvx"], "'nvx' is not one of"),
    (["md", "--resume", "."], "not an MD run directory"),
    (["phonons", "water.xyz"], "phonons needs a periodic cell"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(files, model_file, args, problem):
    result = nnp(*args, *(["-m", model_file] if args[1] != "--resume" else []))
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and problem in errors[0], result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(files, model_file):
    result = nnp("--debug", "relax", "iron.xyz", "-m", model_file)
    assert type(result.exception).__name__ == "UnknownElementError"


#: runs `nnp` with SIGKILL planted at a chosen moment of a checkpoint write: argv = MODE N nnp-args...
#: (mid-write: half of the Nth checkpoint's bytes are on disk; before-replace: the Nth is written
#: beside but not yet moved into place; none: no plant, the test kills from outside)
KILLER = """
import io, os, signal, sys
import numpy as np
mode, n, calls = sys.argv[1], int(sys.argv[2]), [0]
real_savez, real_replace = np.savez, os.replace
def savez(fh, **arrays):
    calls[0] += 1
    if mode == "mid-write" and calls[0] == n:
        buffer = io.BytesIO(); real_savez(buffer, **arrays); data = buffer.getvalue()
        fh.write(data[: len(data) // 2]); fh.flush(); os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real_savez(fh, **arrays)
def replace(src, dst):
    if mode == "before-replace" and str(src).endswith("checkpoint.npz.tmp") and calls[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
np.savez, os.replace = savez, replace
from nnpcalc.cli.main import main
sys.argv = ["nnp", *sys.argv[3:]]
main()
"""

MD_ARGS = ["--ensemble", "nvt-langevin", "--seed", "7", "--checkpoint-interval", "3", "--log-interval", "2",
           "--trajectory-interval", "2", "--fused-distance-factor", "0", "-q"]  # the random model fuses water


def killed(args, mode="none", n=0, after_s=None):
    """Run `nnp ARGS` in a process that is killed (SIGKILL) as planted, or after ``after_s`` from outside."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, mode, str(n), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if after_s is not None:
        rundir = args[args.index("--resume") + 1] if "--resume" in args else args[args.index("-o") + 1]
        _wait_for_lock(Path(rundir) / "run.lock", proc)
        time.sleep(after_s)
        proc.kill()
    proc.wait(timeout=300)
    return proc.returncode


def same_records(a, b):
    """Same log rows and trajectory frames, each step once, no byte that was not written by a step."""
    full, resumed = np.loadtxt(a / "md.log"), np.loadtxt(b / "md.log")
    assert full.shape == resumed.shape and np.all(np.diff(resumed[:, 0]) > 0)
    assert np.allclose(full, resumed, rtol=0, atol=1e-10, equal_nan=True)
    assert b"\0" not in (b / "md.log").read_bytes() + (b / "trajectory.extxyz").read_bytes()
    frames = [ase.io.read(d / "trajectory.extxyz", ":") for d in (a, b)]
    assert len(frames[0]) == len(frames[1]) == len(full)
    for x, y in zip(*frames):
        assert np.abs(x.positions - y.positions).max() < 1e-10
        assert np.abs(x.get_momenta() - y.get_momenta()).max() < 1e-10


def test_md_killed_during_checkpoint_writes_resumes_record_for_record(files, model_file):
    """kill -9 half-way through writing a checkpoint, then between writing one and moving it into
    place, then at a random moment: every resume continues the uninterrupted run exactly."""
    from nnpcalc.workflows.md_state import load_checkpoint

    args = ["md", "water.xyz", "-m", model_file, *MD_ARGS, "--steps", "30"]
    assert nnp(*args, "-o", "full").exit_code == 0
    assert killed([*args, "-o", "killed"], "mid-write", 3) == -signal.SIGKILL  # checkpoints at 0, 3, [6]
    assert (files / "killed" / "checkpoint.npz.tmp").is_file() and load_checkpoint(files / "killed").step == 3
    resume = ["md", "--resume", "killed", "-q"]
    assert killed(resume, "before-replace", 2) == -signal.SIGKILL  # checkpoints 6, [9]
    assert load_checkpoint(files / "killed").step == 6
    killed(resume, after_s=random.uniform(0.0, 0.5))  # wherever it is, or done already
    result = nnp(*resume)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("30 steps")
    same_records(files / "full", files / "killed")


@pytest.mark.slow
def test_md_killed_at_random_moments_resumes_record_for_record(files, model_file):
    """Eight kill -9 from outside at random moments (each resume from wherever the last one stopped)."""
    args = ["md", "water.xyz", "-m", model_file, *MD_ARGS, "--steps", "60"]
    assert nnp(*args, "-o", "full").exit_code == 0
    rng = random.Random(0)
    killed([*args, "-o", "killed"], after_s=rng.uniform(0.0, 0.5))
    for _ in range(8):
        if (files / "killed" / "checkpoint.npz").is_file():
            killed(["md", "--resume", "killed", "-q"], after_s=rng.uniform(0.0, 0.5))
        else:  # killed before its first checkpoint: start again
            killed([*args, "-o", "killed", "--overwrite"], after_s=rng.uniform(0.0, 0.5))
    assert nnp("md", "--resume", "killed", "-q").exit_code == 0
    same_records(files / "full", files / "killed")


def _wait_for_lock(path, proc, timeout=120.0):
    """Until the process holds the run's lock (its pid in run.lock: the model is loaded, the run about to
    step), or has ended; the kill then comes at a random moment of the run, whatever the machine's speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and path.read_text().strip() == str(proc.pid):
            return
        time.sleep(0.005)


def test_md_that_explodes_stops_with_a_message_keeping_its_output(files, model_file):
    result = nnp("md", "hot.extxyz", "-m", model_file, "--ensemble", "nvt-bussi", "--temperature-K", "100",
                 "--steps", "50", "-o", "boom")
    assert result.exit_code == 1 and "Error: MD stopped at step 1" in result.output
    assert {"md.log", "trajectory.extxyz", "checkpoint.npz", "exploded.extxyz"} <= {p.name for p in (files / "boom").iterdir()}


def test_phonons_writes_plot_tables_and_warns(files, model_file):
    pytest.importorskip("phonopy")
    pytest.importorskip("matplotlib")
    result = nnp("phonons", "cu.cif", "-m", model_file, "--supercell", "2", "2", "2", "--mesh", "4", "4", "4",
                 "-o", "ph")
    assert result.exit_code == 0, result.output
    assert "Cv (J/K/mol)" in result.output
    assert {"band.png", "band.csv", "dos.csv", "thermal.csv", "phonopy_params.yaml"} <= {p.name for p in (files / "ph").iterdir()}
    assert ("Warning: imaginary modes" in result.output) == ("lowest frequency -" in result.output)


def test_eval_prints_errors_per_property_and_a_parity_plot(files, model_file):
    pytest.importorskip("matplotlib")
    frames = [molecule("H2O"), molecule("CH4")]
    for atoms in frames:
        atoms.info["ref_energy"] = -10.0
        atoms.arrays["ref_forces"] = np.zeros((len(atoms), 3))
    ase.io.write(files / "data.extxyz", frames)
    result = nnp("eval", model_file, "data.extxyz", "--parity", "p.png")
    assert result.exit_code == 0, result.output
    assert "energy_per_atom" in result.output and "forces" in result.output and "eV/Å" in result.output
    assert (files / "p.png").is_file()


def test_check_prints_a_table_and_fails_loudly(files, model_file, monkeypatch):
    from nnpcalc.workflows import check

    monkeypatch.setitem(check.NVE_TOLERANCE, "float64", 0.0)  # any NVE drift now fails
    ase.io.write(files / "al.extxyz", bulk("Al", "fcc", a=4.05).repeat((2, 1, 1)))
    result = nnp("check", model_file, "al.extxyz", "--nve-steps", "3", "--no-scans", "--md-steps", "0")
    assert result.exit_code == 1 and "Error: 1 of 8 checks failed" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("al.extxyz")]
    assert len(rows) == 8 and sum(row.endswith("FAIL") for row in rows) == 1
    assert any("lattice-image" in row and row.endswith("pass") for row in rows)
