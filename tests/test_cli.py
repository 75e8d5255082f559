"""The command line: help for every command, one-line errors, nothing written on a bad param."""
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ["prepare", "where"]:
        assert command in result.output


@pytest.mark.parametrize("command", ["prepare", "where"])
def test_each_command_has_help(command):
    assert runner.invoke(app, [command, "--help"]).exit_code == 0


@pytest.mark.parametrize("override,expected", [
    ("data.resolution=7", "data.resolution = 7: Input should be greater than or equal to 16"),
    ("data.sorce=shapes", "unknown key 'data.sorce'"),
    ("data.source=lsun", "data.source = 'lsun': Input should be 'shapes', 'digits'"),
    ("data.num_images=many", "data.num_images = 'many'"),
    ("data.source=mnist", "data.path"),
])
def test_bad_param_is_one_line_and_writes_nothing(tmp_path, override, expected):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "prepare", "--set", override, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: params.yaml: "), proc.stderr
    assert expected in lines[0]
    assert not out.exists()


def test_missing_params_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["prepare", "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "params file not found" in result.output
