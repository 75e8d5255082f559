"""The core package must run on a GPU box that has no Prefect, DVC or polars."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import importlib, pkgutil, sys
import synthgen
for mod in pkgutil.walk_packages(synthgen.__path__, "synthgen."):
    importlib.import_module(mod.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"prefect", "dvc", "polars", "typer"})
print(",".join(leaked))
"""


def test_core_imports_no_orchestration_packages():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"synthgen/ imports {out.stdout.strip()} at module level"
