"""The `nnp` entry point: fast help, version, info."""

import subprocess
import sys

from click.testing import CliRunner

from nnpcalc import __version__
from nnpcalc.cli.main import main


def test_help_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from nnpcalc.cli.main import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_info_of_a_model_file(model_file):
    result = CliRunner().invoke(main, ["info", str(model_file)])
    assert result.exit_code == 0, result.output
    assert '"kind": "nnpcalc-model"' in result.output


def test_info_of_a_missing_model_is_one_line():
    result = CliRunner().invoke(main, ["info", "no/such/model.pt"])
    assert result.exit_code != 0
    assert "does not exist" in result.output and "Traceback" not in result.output
