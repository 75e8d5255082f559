"""`pip install synthgen` without extras: a bare venv with only the core's dependencies reads a release,
and has no Prefect, DVC, Ray or typer.

The venv gets exactly the distributions that pyproject's `dependencies` pull in (resolved from their
installed metadata, as pip would, but offline and in seconds), linked from this interpreter's site-packages.
"""
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.test_releases import write_release

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

READ_RELEASE = """
import importlib.util, json, sys
import synthgen
root = sys.argv[1]
samples = list(synthgen.open_dataset(root))  # decoded to torch tensors
rows = synthgen.load_metadata(root).collect().height
present = [name for name in %r if importlib.util.find_spec(name) is not None]
print(json.dumps({"samples": len(samples), "rows": rows, "pipeline_present": present}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pipeline_distributions() -> set[str]:
    return {canonical(Requirement(r).name) for r in PROJECT["optional-dependencies"]["pipeline"]}


def core_distributions() -> set[str]:
    """The distributions `pip install synthgen` installs: pyproject's dependencies and theirs, no extras."""
    todo = list(PROJECT["dependencies"])
    found: set[str] = set()
    while todo:
        requirement = Requirement(todo.pop())
        name = canonical(requirement.name)
        if name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        todo += metadata.distribution(name).requires or []
    return found


def link_distribution(name: str, site: Path) -> None:
    """Link a distribution's top-level files and folders (package, .libs, .dist-info) into `site`."""
    dist = metadata.distribution(name)
    tops = {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}
    for top in tops:
        source = Path(dist.locate_file(top))
        if source.exists() and not (site / top).exists():
            (site / top).symlink_to(source)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A venv (no pip) with synthgen and the core dependencies only; returns its python."""
    venv = tmp_path_factory.mktemp("core-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in core_distributions():
        link_distribution(name, site)
    for package in ("synthgen", "flows", "tasks"):  # what the wheel ships (pyproject's packages.find)
        (site / package).symlink_to(REPO / package)
    return python


def run_isolated(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the venv's python in isolated mode: no PYTHONPATH, no user site, not this repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PREFECT", "RAY"))}
    return subprocess.run([python, "-I", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_core_distributions_leave_out_the_pipeline():
    assert pipeline_distributions() >= {"prefect", "prefect-ray", "ray", "dvc", "typer", "fastapi"}
    assert core_distributions().isdisjoint(pipeline_distributions())
    assert {"torch", "webdataset", "polars", "pyarrow"} <= core_distributions()


@pytest.mark.slow
def test_bare_core_venv_reads_a_release_without_the_pipeline(core_venv, tmp_path):
    write_release(tmp_path / "releases", "2026-11-21", n=6)
    script = READ_RELEASE % sorted(name.replace("-", "_") for name in pipeline_distributions())  # import names
    result = run_isolated(core_venv, "-c", script, str(tmp_path / "releases"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"samples": 6, "rows": 6, "pipeline_present": []}


@pytest.mark.slow
def test_synthgen_command_without_the_pipeline_says_what_to_install(core_venv, tmp_path):
    result = run_isolated(core_venv, "-c", "from flows.cli import main; main()", "--help", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "synthgen: the command line needs the pipeline: pip install 'synthgen[pipeline]'"]
