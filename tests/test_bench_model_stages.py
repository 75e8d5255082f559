"""bench/model_stages.py: the model stages through the core alone, and a variant that reuses a base run."""
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_params.yaml"


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "model_stages.py"), "--params", str(TINY), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)


def test_base_run_then_a_diffusion_variant_that_reuses_it(tmp_path):
    base, variant = tmp_path / "base", tmp_path / "variant"
    run_bench("--out", str(base))
    stages = json.loads((base / "seconds.json").read_text())
    assert list(stages) == ["prepare", "train_autoencoder", "encode_latents", "train_classifier", "train_diffusion",
                            "sweep_samplers"]
    rows = list(csv.DictReader((base / "sweep" / "sweep.csv").open()))
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", "2"), ("heun", "2")]
    assert json.loads((base / "params.json").read_text())["diffusion"]["train"]["steps"] == 4

    run_bench("--reuse", str(base), "--out", str(variant), "--set", "diffusion.train.steps=6")
    assert list(json.loads((variant / "seconds.json").read_text())) == ["train_diffusion", "sweep_samplers"]
    assert (variant / "autoencoder").resolve() == (base / "autoencoder").resolve()
    assert json.loads((variant / "diffusion" / "config.json").read_text())["diffusion"]["train"]["steps"] == 6
    assert (variant / "diffusion" / "grid.png").stat().st_size > 0

    guide = sorted((base / "diffusion" / "checkpoints").glob("step-*.safetensors"))[0]  # step 2 of 4
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "autoguidance.py"), "--params", str(TINY),
                          "--diffusion", str(variant / "diffusion"), "--autoencoder", str(base / "autoencoder"),
                          "--classifier", str(base / "classifier"), "--prepared", str(base / "prepared"),
                          "--guide", str(guide), "--scales", "1", "2", "--per-class", "2", "--threads", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    rows = [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == ["| 1", "| 2"], out

    refused = subprocess.run([sys.executable, str(ROOT / "bench" / "model_stages.py"), "--params", str(TINY),
                              "--reuse", str(base), "--out", str(tmp_path / "other"),
                              "--set", "autoencoder.kl_weight=0.001"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "other autoencoder params" in refused.stderr
    assert not (tmp_path / "other").exists()

