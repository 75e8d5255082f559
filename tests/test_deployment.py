"""The scheduled deployment declared in prefect.yaml, and the CLI surface."""
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["prepare", "train-ae", "encode", "train-ldm", "sample", "train-classifier", "evaluate", "regenerate",
            "run", "release", "serve", "inspect", "report", "where"]


def test_prefect_yaml_declares_the_nightly_deployment_with_a_valid_cron():
    from cronsim import CronSim

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "nightly-synthetic"]
    module, _, name = deployment["entrypoint"].partition(":")
    assert (REPO / module).is_file() and name == "release"
    cron = deployment["schedules"][0]["cron"]
    next_run = next(CronSim(cron, datetime(2026, 11, 21, tzinfo=timezone.utc)))
    assert next_run.hour == 2
    from flows.release import release

    assert set(deployment["parameters"]) <= set(release.parameters.properties)


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    assert CliRunner().invoke(app, [command, "--help"]).exit_code == 0
