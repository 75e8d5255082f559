"""A throwaway git + DVC repository holding a copy of the project, for `dvc repro` tests."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from synthgen.config import load_params
from synthgen.config.template import params_yaml as render_params

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_dvc_repo(folder: Path, params_yaml: str) -> Path:
    folder.mkdir(parents=True)
    for name in ["synthgen", "flows", "tasks"]:
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", folder / "dvc.yaml")
    # DVC tracks params by key: the file must name every key, as the project's own params.yaml does
    partial = folder / "partial.yaml"
    partial.write_text(params_yaml)
    (folder / "params.yaml").write_text(render_params(load_params(partial)))
    partial.unlink()
    run(["git", "init", "-q"], folder)
    run(["git", "config", "user.email", "test@example.com"], folder)
    run(["git", "config", "user.name", "test"], folder)
    run(["dvc", "init", "-q"], folder)
    run(["dvc", "config", "core.analytics", "false"], folder)
    shutil.copytree(REPO / ".dvc" / "plots", folder / ".dvc" / "plots")
    run(["dvc", "config", "plots.html_template", "plots/offline.html"], folder)
    return folder
