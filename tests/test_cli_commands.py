"""The `nnp` commands through click's CliRunner (and one real `kill -9`)."""

import os
import signal
import subprocess
import sys
import time

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


def test_md_resumes_after_kill_9_as_if_never_stopped(files, model_file):
    args = ["md", "water.xyz", "-m", model_file, "--ensemble", "nvt-langevin", "--seed", "7",
            "--checkpoint-interval", "10", "--log-interval", "5", "--trajectory-interval", "5", "-q"]
    assert nnp(*args, "--steps", "30", "-o", "full").exit_code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "from nnpcalc.cli.main import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args), "--steps", "100000", "-o", "killed"], env=env)
    try:
        _wait_for_log_lines(files / "killed" / "md.log", 5, proc)  # step 15 logged, checkpoint 10 taken
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    from nnpcalc.workflows.md_state import load_checkpoint

    assert 10 <= load_checkpoint(files / "killed").step < 30
    result = nnp("md", "--resume", "killed", "--steps", "30")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("30 steps")
    full, resumed = (np.loadtxt(files / d / "md.log") for d in ("full", "killed"))
    assert full.shape == resumed.shape == (7, 9)
    assert np.allclose(full, resumed, rtol=0, atol=1e-10, equal_nan=True)
    frames = [ase.io.read(files / d / "trajectory.extxyz", ":") for d in ("full", "killed")]
    assert len(frames[0]) == len(frames[1]) == 7
    assert max(np.abs(a.positions - b.positions).max() for a, b in zip(*frames)) < 1e-10


def _wait_for_log_lines(path, count, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, "the MD process ended before it could be killed"
        time.sleep(0.01)
    raise TimeoutError(f"{path} never reached {count} lines")


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
    result = nnp("check", model_file, "al.extxyz", "--nve-steps", "3")
    assert result.exit_code == 1 and "Error: 1 of 8 checks failed" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("al.extxyz")]
    assert len(rows) == 8 and sum(row.endswith("FAIL") for row in rows) == 1
    assert any("lattice-image" in row and row.endswith("pass") for row in rows)
