"""dvc.yaml's code deps are the files each stage's command imports (tools/dvc_deps.py): none missing, none extra."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.dvc_repo import REPO, make_dvc_repo, run
from tools.dvc_deps import Project, closure, is_code_dep, main, problems, rewrite_stage_deps, stage_code_deps

PROJECT = Project.from_pyproject(REPO)
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
HTML_REPORT = ["synthgen/metrics/report.py", "synthgen/evaluation/report.py", "synthgen/evaluation/plots.py"]


def project_with(tmp_path: Path, dvc_yaml: str) -> Project:
    """The real code under `tmp_path`, with `dvc_yaml` as its dvc.yaml."""
    for name in PROJECT.packages:
        (tmp_path / name).symlink_to(REPO / name)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "dvc.yaml").write_text(dvc_yaml)
    return Project.from_pyproject(tmp_path)


def generated_dvc_yaml() -> str:
    """dvc.yaml as `--write` makes it from the code, whatever the checked-in file says."""
    text = (REPO / "dvc.yaml").read_text()
    for stage in STAGES:
        text = rewrite_stage_deps(PROJECT, text, stage, stage_code_deps(PROJECT, stage))
    return text


def test_every_stage_lists_exactly_the_code_its_command_imports():
    assert problems(PROJECT) == []


def test_a_file_the_stage_runs_missing_from_its_deps_fails(tmp_path, capsys):
    text = generated_dvc_yaml()
    deps = stage_code_deps(PROJECT, "sample")
    assert "synthgen/imaging.py" in deps
    without_imaging = [d for d in deps if d != "synthgen/imaging.py"]
    project = project_with(tmp_path, rewrite_stage_deps(PROJECT, text, "sample", without_imaging))
    assert problems(project) == ["sample: missing synthgen/imaging.py"]
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "sample: missing synthgen/imaging.py" in capsys.readouterr().out


def test_a_stage_listing_code_it_never_runs_fails(tmp_path):
    text = generated_dvc_yaml()
    deps = stage_code_deps(PROJECT, "train_diffusion")
    project = project_with(tmp_path, rewrite_stage_deps(PROJECT, text, "train_diffusion", [*deps, "synthgen/ldm"]))
    assert problems(project) == ["train_diffusion: extra synthgen/ldm (list files, not folders)"]


@pytest.mark.parametrize("stage", ["prepare", "train_autoencoder", "encode_latents", "train_diffusion", "sample"])
def test_editing_the_html_report_leaves_model_and_sample_stages_current(stage):
    assert not set(HTML_REPORT) & set(stage_code_deps(PROJECT, stage))


def test_the_cli_imports_no_stage_until_a_command_names_it():
    stage_modules = {f"{folder}/{stage}.py" for stage in STAGES for folder in ("flows", "synthgen/stages")}
    assert not stage_modules & set(closure(PROJECT, [PROJECT.cli]))


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_runs_no_other_stage_flow(stage):
    flows = {f"flows/{name}.py" for name in STAGES}
    assert set(stage_code_deps(PROJECT, stage)) & flows == {f"flows/{stage}.py"}


def test_write_restores_the_code_deps_and_keeps_everything_else(tmp_path):
    text = generated_dvc_yaml()
    stripped = text
    for stage in STAGES:
        stripped = rewrite_stage_deps(PROJECT, stripped, stage, [])
    data_lines = [line for line in text.splitlines()
                  if not (line.startswith("      - ") and is_code_dep(PROJECT, line.removeprefix("      - ")))]
    assert stripped.splitlines() == data_lines
    project_with(tmp_path, stripped)
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "dvc.yaml").read_text() == text


def write_package(root: Path, files: dict[str, str]) -> Project:
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return Project(root, frozenset({"pkg"}), cli="pkg.cli")


def test_closure_runs_every_package_init_above_a_module(tmp_path):
    project = write_package(tmp_path, {
        "pkg/__init__.py": "from pkg import base\n", "pkg/base.py": "", "pkg/unused.py": "",
        "pkg/sub/__init__.py": "", "pkg/sub/leaf.py": "import json\n",
    })
    assert closure(project, ["pkg.sub.leaf"]) == [
        "pkg/__init__.py", "pkg/base.py", "pkg/sub/__init__.py", "pkg/sub/leaf.py"]


def test_closure_follows_function_level_and_relative_imports(tmp_path):
    project = write_package(tmp_path, {
        "pkg/__init__.py": "", "pkg/helper.py": "", "pkg/sibling.py": "",
        "pkg/sub/__init__.py": "from . import leaf\n",
        "pkg/sub/leaf.py": "from .. import sibling\n\ndef late():\n    from ..helper import value\n",
    })
    assert closure(project, ["pkg.sub"]) == [
        "pkg/__init__.py", "pkg/helper.py", "pkg/sibling.py", "pkg/sub/__init__.py", "pkg/sub/leaf.py"]


def test_from_import_names_a_submodule_or_an_attribute(tmp_path):
    project = write_package(tmp_path, {
        "pkg/__init__.py": "", "pkg/sub/__init__.py": "value = 1\n", "pkg/sub/leaf.py": "",
        "pkg/uses_module.py": "from pkg.sub import leaf\n", "pkg/uses_attribute.py": "from pkg.sub import value\n",
    })
    assert "pkg/sub/leaf.py" in closure(project, ["pkg.uses_module"])
    assert closure(project, ["pkg.uses_attribute"]) == [
        "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/uses_attribute.py"]


def test_closure_skips_what_never_runs_on_import(tmp_path):
    project = write_package(tmp_path, {
        "pkg/__init__.py": "", "pkg/script_only.py": "", "pkg/typing_only.py": "", "pkg/by_name.py": "",
        "pkg/command.py": "",
        "pkg/flow.py": (
            "import importlib\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.typing_only\n"
            "def load(name):\n    return importlib.import_module(f'pkg.{name}')\n"
            'if __name__ == "__main__":\n    import pkg.script_only\n'
        ),
        "pkg/cli.py": "import pkg.flow\n\ndef other_command():\n    import pkg.command\n",
    })
    assert closure(project, ["pkg.cli"]) == ["pkg/__init__.py", "pkg/cli.py", "pkg/flow.py"]


def test_an_import_of_a_missing_project_module_is_an_error(tmp_path):
    project = write_package(tmp_path, {"pkg/__init__.py": "import pkg.gone\n"})
    with pytest.raises(ImportError, match="pkg.gone"):
        closure(project, ["pkg"])


def test_dvc_status_reports_sample_changed_after_an_edit_of_any_file_it_runs(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", "data:\n  source: shapes\n")
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["sample"]
    outs = [next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]]
    for placeholder in [*(d for d in stage["deps"] if not is_code_dep(PROJECT, d)), *outs]:
        (repo / placeholder).parent.mkdir(parents=True, exist_ok=True)
        (repo / placeholder).write_text("placeholder\n")
    run(["dvc", "commit", "--force", "sample"], repo)  # records dvc.lock without running the stage
    assert json.loads(run(["dvc", "status", "--json", "sample"], repo).stdout) == {}

    runs = stage_code_deps(PROJECT, "sample")
    for name in runs:
        with open(repo / name, "a") as source:
            source.write("# edited\n")
    (changed,) = json.loads(run(["dvc", "status", "--json", "sample"], repo).stdout)["sample"]
    assert changed["changed deps"] == {name: "modified" for name in runs}
