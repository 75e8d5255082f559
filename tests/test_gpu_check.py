"""bench/gpu_check.py --dry: every phase of the GPU run-book at tiny sizes, as on a bare GPU box (no
prefect, dvc or polars importable), so the script cannot rot between the rare GPU runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_A_GPU_BOX = ("prefect", "dvc", "polars")


def block_imports(folder: Path) -> None:
    """Packages named like the orchestration ones that refuse to import, found before the real ones."""
    for name in ABSENT_ON_A_GPU_BOX:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on a GPU box')\n")


def test_dry_run_measures_every_phase_without_the_orchestration_packages(tmp_path):
    blocked, out = tmp_path / "blocked", tmp_path / "out"
    blocked.mkdir()
    block_imports(blocked)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "bench/gpu_check.py", "--dry", "--out", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads((out / "gpu_check.json").read_text())
    phases = report["phases"]
    assert {name: phases[name]["status"] for name in phases} == dict.fromkeys(
        ("tests", "sampling", "training", "quality"), "ok"), run.stdout[-3000:]
    assert "error" not in json.dumps(phases), json.dumps(phases, indent=1)[:3000]
    assert phases["tests"]["results"]["skipped"] + phases["tests"]["results"].get("passed", 0) >= 9
    for size in ("gpu_preset", "quickstart"):
        sampling = phases["sampling"][size]
        assert sampling["denoiser_images_per_s"] > 0 and sampling["stage_images_per_s"] > 0
        assert sampling["breakdown_bytes_equal_stage"]
        assert set(sampling["breakdown_ms_per_image"]) >= {"denoise", "decode", "encode", "write"}
    assert phases["sampling"]["matmul"]["tflop_per_s"] > 0
    assert phases["training"]["autoencoder"]["images_per_s"] > 0 and phases["training"]["unet"]["images_per_s"] > 0
    scores = phases["quality"]["scores"]
    assert 0 <= scores["conditional_accuracy"] <= 1 and scores["fd_ratio"] > 0 and scores["samples"] == 24

    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_check.json", "gpu_check.md", "quality_grid.png", "quality_recon.png"]  # at most 8 come back
    table = (out / "gpu_check.md").read_text()
    assert "| quality | raw conditional accuracy (24 samples) |" in table and table in run.stdout
