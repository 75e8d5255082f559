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


def test_release_command_runs_the_release_flow_with_its_parameters(tmp_path, monkeypatch):
    import flows.release

    calls = {}
    monkeypatch.setattr(flows.release, "release", lambda **kwargs: calls.update(kwargs))
    params = tmp_path / "params.yaml"
    params.write_text("sample:\n  num_images: 10\n")
    result = runner.invoke(app, ["release", "--params", str(params), "--date", "2026-01-01", "--no-dvc"])
    assert result.exit_code == 0, result.output
    assert calls.pop("params").sample.num_images == 10  # read once, by the command
    assert calls == {"params_path": str(params), "run_date": "2026-01-01", "releases": "releases", "use_dvc": False}


def test_a_stage_command_hands_its_flow_the_loaded_params_and_folders(tmp_path, monkeypatch):
    import flows.encode_latents

    calls = {}
    monkeypatch.setattr(flows.encode_latents, "encode_latents", lambda params, **folders: calls.update(
        num_images=params.data.num_images, **folders))
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  num_images: 40\n")
    result = runner.invoke(app, ["encode", "--params", str(params), "--set", "data.num_images=50", "--out", "lat"])
    assert result.exit_code == 0, result.output
    assert calls == {"num_images": 50, "prepared": "data/prepared", "autoencoder": "models/autoencoder", "out": "lat"}
