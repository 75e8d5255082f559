"""GPU run-book (issue 17): one command that proves the GPU path on one bare CUDA machine in 8 minutes.

The command, from the repository root of a checkout that carries `.whl/` (lines joined with spaces; through
the device tool: carry [".whl"], timeout_s 540):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT

On CPU, `python bench/gpu_check.py --dry --out DIR` runs the same code paths at tiny sizes
(tests/data/tiny_params.yaml) in under a minute; tests/test_gpu_check.py runs it in `make test`.

Wheels: the core package needs these, which a bare torch image lacks (versions from constraints.txt):
pydantic 2.14.3, pydantic_core 2.50.4, annotated-types 0.8.0, typing-inspection 0.4.5, webdataset 1.0.2,
braceexpand 0.1.7, and typing_extensions 4.16.0 (pydantic_core 2.50.4 requires >= 4.16.0; the image's
own may be older). Nothing else: no prefect, dvc or polars. Fetch them once, where pip can download:

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        -d .whl pydantic==2.14.3 pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \\
        webdataset==1.0.2 braceexpand==0.1.7 typing_extensions==4.16.0

Phases, each in its own process with a time budget (a phase that fails or runs out of time is recorded
and the next one runs; gpu_check.json is rewritten after every measurement, so a run cut short
still returns what it measured):
1. tests     the tests marked `cuda` (tests/test_cuda.py).
2. sampling  the sample stage (generate_shard) against the denoiser alone, bf16 + compile + channels_last,
             at configs/gpu.yaml's size and at the quickstart's (params.yaml), random weights; images/s of
             both, their ratio (goal >= 0.95) and the per-image breakdown (bench/sampling.py's functions);
             the denoiser's achieved TFLOP/s beside a bf16 8192^2 matmul in the same process (goal >= 50%).
3. training  images/s and peak memory of configs/gpu.yaml's autoencoder and UNet training steps through
             the shared loop, bf16 + compile (steady state: the second of two logging windows).
4. quality   the shapes pipeline at configs/gpu.yaml's size, trained for about 3 minutes in all (steps
             from phase 3's rates and the time left), 1,000 samples: raw conditional accuracy, FD ratio
             in the feature classifier's space, and the per-class grid.
Outputs under --out: gpu_check.json (every figure), gpu_check.md (the table printed at the end),
quality_grid.png (one row per class), quality_recon.png (autoencoder reconstructions).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `bench.sampling` and `synthgen` from this checkout

REPORT, TABLE = "gpu_check.json", "gpu_check.md"
TINY_PARAMS = "tests/data/tiny_params.yaml"
SAMPLING_GOAL, FLOPS_GOAL = 0.95, 0.50  # stage / denoiser images/s; denoiser / matmul FLOP/s (issue 17)
TOTAL_BUDGET = {"gpu": 450, "dry": 240}  # seconds for all phases; the pip install before adds ~10 s
PHASE_BUDGET = {  # seconds: (on a GPU, dry); quality takes whatever the others left
    "tests": (90, 60), "sampling": (120, 60), "training": (100, 60), "quality": (None, None)}
MIN_START = {"tests": 20, "sampling": 30, "training": 30, "quality": 60}  # on a GPU; dry runs start anyway


class Report:
    """gpu_check.json: read, updated and rewritten atomically by whichever process runs (never two at once)."""

    def __init__(self, out: Path):
        self.path = out / REPORT

    def read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {"meta": {}, "phases": {}}

    def write(self, data: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
        os.replace(tmp, self.path)

    def put(self, phase: str, key: str, value) -> None:
        data = self.read()
        data["phases"].setdefault(phase, {})[key] = value
        self.write(data)

    def phase(self, phase: str) -> dict:
        return self.read()["phases"].get(phase, {})


@contextlib.contextmanager
def recorded(report: Report, phase: str, key: str):
    """Run one measurement; an exception becomes {"error", "traceback"} under `key` instead of ending the phase."""
    try:
        yield
    except Exception as e:  # the run-book must carry the exact error and go on
        tail = traceback.format_exc().strip().splitlines()[-6:]
        measured = report.phase(phase).get(key)
        kept = measured if isinstance(measured, dict) else {}
        report.put(phase, key, {**kept, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": tail})
        print(f"[{phase}] {key} FAILED: {type(e).__name__}: {e}", flush=True)


def seconds_left(deadline: float) -> float:
    return deadline - time.time()


# ---- phase 1: the CUDA tests ----------------------------------------------------------------

VERDICT = re.compile(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
SUMMARY = re.compile(r"^(FAILED|ERROR) (tests/\S+::\S+)(?: - (.*))?$")


def tests_phase(report: Report, limit: float, dry: bool) -> tuple[int | None, float]:
    """pytest -m cuda in a child process; verdicts and failure messages parsed from its verbose output."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-tests-") as tmp:
        log = Path(tmp) / "pytest.log"
        command = [sys.executable, "-m", "pytest", "-v", "-rfE", "--tb=line", "-p", "no:cacheprovider", "-m", "cuda",
                   "tests/test_cuda.py"]
        code, wall = run_child(command, limit, dry, log)
        text = log.read_text(errors="replace")
    verdicts: dict[str, int] = {}
    failures = {}
    for line in text.splitlines():
        if match := VERDICT.match(line):
            verdicts[match[2].lower()] = verdicts.get(match[2].lower(), 0) + 1
        if match := SUMMARY.match(line):
            failures[match[2]] = (match[3] or match[1])[:500]
    report.put("tests", "results", {**verdicts, "failures": failures, "log_tail": text.strip().splitlines()[-3:]})
    print("\n".join(text.strip().splitlines()[-25:]), flush=True)
    return code, wall


# ---- phase 2: sampling stage and FLOPs ------------------------------------------------------

def write_random_models(params, folder: Path) -> tuple[str, str]:
    """Untrained models of a params file's size on the 12 shapes classes (random weights: speed only)."""
    import torch

    from synthgen.autoencoder.trained import write_trained as write_autoencoder
    from synthgen.data.shapes import CLASS_NAMES
    from synthgen.stages.train_diffusion import resolve_config
    from synthgen.ldm.trained import write_trained as write_diffusion
    from synthgen.models.autoencoder import Autoencoder
    from synthgen.models.unet import UNet

    torch.manual_seed(0)
    ae = params.autoencoder
    side = params.data.resolution // ae.model.downsample
    latent_shape = (ae.model.latent_channels, side, side)
    ae_sha = write_autoencoder(folder / "autoencoder", Autoencoder(ae.model), ae, scale_factor=1.0)
    cfg = resolve_config(params.diffusion, latent_shape, len(CLASS_NAMES))
    unet, guide = UNet(cfg.model), UNet(cfg.model)  # a random guide too: sampling times autoguidance's third row
    write_diffusion(folder / "diffusion", unet, unet, cfg, CLASS_NAMES, latent_shape, ae_sha, 1.0, guide.state_dict())
    return str(folder / "diffusion"), str(folder / "autoencoder")


def sampling_sizes(dry: bool) -> list[dict]:
    """Model sizes of the sampling phase, the GPU preset first. `micro_batch` = batch: the guided 2B rows
    run as two full chunks, and the decoder (chunked alike) pads nothing."""
    if dry:
        tiny = {"params": TINY_PARAMS, "batch": 8, "per_shard": 8, "shards": 2, "encode_workers": 2}
        return [{"name": "gpu_preset", **tiny}, {"name": "quickstart", **tiny}]
    return [{"name": "gpu_preset", "params": "configs/gpu.yaml", "batch": 1024, "per_shard": 4096, "shards": 2,
             "encode_workers": 8},
            {"name": "quickstart", "params": "params.yaml", "batch": 2048, "per_shard": 8192, "shards": 2,
             "encode_workers": 8}]


def sample_speed(size: dict, device: str, folder: Path, record) -> None:
    """Whole stage against the denoiser alone (shard by shard, alternating), breakdown and FLOPs per image;
    `record(figures)` after each of them, so a run cut short keeps what was measured."""
    import numpy as np
    import torch

    from bench import sampling
    from synthgen.config import load_params
    from synthgen.config.sample import SampleConfig
    from synthgen.generate.models import load_models
    from synthgen.generate.shard_sampler import generate_pixels

    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    params = load_params(size["params"], check_paths=False)
    diffusion_dir, autoencoder_dir = write_random_models(params, folder / "models")
    models = load_models(diffusion_dir, autoencoder_dir, device, cuda, cuda)
    cfg = SampleConfig.model_validate({
        **params.sample.model_dump(), "num_images": size["shards"] * size["per_shard"],
        "images_per_shard": size["per_shard"], "batch_size": size["batch"], "micro_batch": size["batch"],
        "encode_workers": size["encode_workers"], "device": device, "bf16": True, "compile": cuda,
        "channels_last": cuda, "task_runner": "local"})
    class_names = models.diffusion.class_names
    clock = sampling.Clock(models.device)
    generate_pixels(models, np.zeros(cfg.batch_size, dtype=np.int64), list(range(cfg.batch_size)), cfg)
    figures = {  # the warm-up pays for compilation and lazy initialisation, outside every clock below
        "model": sampling.describe(models, cfg), "warmup_s": clock.lap(),
        "denoiser_params": sum(p.numel() for p in models.diffusion.model.parameters()),
        "sampler": cfg.sampler.model_dump(mode="json"), "batch": cfg.batch_size, "micro_batch": cfg.micro_batch,
        "encode_workers": cfg.encode_workers, "images": cfg.num_images, "goal": SAMPLING_GOAL}
    record(figures)
    _, rows = sampling.paired_runs(models, cfg, class_names, folder, repeats=1)
    d_wall, d_cpu, s_wall, s_cpu = rows.sum(axis=0)
    figures.update(denoiser_images_per_s=cfg.num_images / d_wall, stage_images_per_s=cfg.num_images / s_wall,
                   ratio=d_wall / s_wall, ratio_by_cpu=d_cpu / s_cpu,
                   ratio_median_shard=float(np.median(rows[:, 0] / rows[:, 2])))
    record(figures)
    seconds, n, entry = sampling.breakdown(models, cfg, class_names, folder / "breakdown")
    same_bytes = entry["sha256"] == sampling.sha256_file(folder / "stage-0" / entry["name"])
    figures.update(breakdown_ms_per_image={key: float(seconds[key][0] / n * 1e3) for key in seconds},
                   breakdown_bytes_equal_stage=same_bytes)
    record(figures)
    one_row = cfg.model_copy(update={"micro_batch": 1})  # every network call one row: FLOPs per image, unpadded
    per_row, rows_per_image, _ = sampling.denoiser_flops(models, one_row)
    figures.update(denoiser_gflop_per_image=per_row * rows_per_image / 1e9, network_rows_per_image=rows_per_image,
                   denoiser_tflop_per_s=per_row * rows_per_image * cfg.num_images / d_wall / 1e12,
                   peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)
    record(figures)
    load_models.cache_clear()


def sampling_phase(report: Report, dry: bool, deadline: float) -> None:
    import torch

    from bench import sampling

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for size in sampling_sizes(dry):
        if not dry and seconds_left(deadline) < 40:
            report.put("sampling", size["name"], {"skipped": f"{seconds_left(deadline):.0f} s left"})
            continue
        with recorded(report, "sampling", size["name"]), tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            sample_speed(size, device, Path(tmp), lambda figures: report.put("sampling", size["name"], figures))
            if device == "cuda":
                torch.cuda.empty_cache()
        if size["name"] == "gpu_preset":
            with recorded(report, "sampling", "matmul"):
                rate, dtype = sampling.matmul_rate(torch.device(device), 256 if dry else 8192)
                report.put("sampling", "matmul", {"size": 256 if dry else 8192, "dtype": dtype,
                                                  "tflop_per_s": rate / 1e12, "goal": FLOPS_GOAL})


# ---- phase 3: training throughput -----------------------------------------------------------

def training_sizes(dry: bool) -> dict:
    """Params file and steps per logging window (the second window is the steady-state figure)."""
    if dry:
        return {"params": TINY_PARAMS, "windows": {"autoencoder": 2, "unet": 2}}
    return {"params": "configs/gpu.yaml", "windows": {"autoencoder": 50, "unet": 100}}


def steady_rate(train_cfg, nets: dict, objective, data: dict, window: int, folder: Path) -> dict:
    """Two logging windows of `window` steps through the shared loop: steady images/s, start-up seconds, peak memory."""
    import csv

    import torch

    from synthgen.training.loop import MAIN, train

    cfg = train_cfg.model_copy(update={"steps": 2 * window, "log_every": window, "checkpoint_every": 100 * window,
                                       "progress": False})
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = train(cfg, nets, objective, data, folder / "checkpoints", folder / "metrics.csv")
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    steady = float(rows[-1]["images_per_s"])
    return {
        "images_per_s": steady, "first_window_images_per_s": float(rows[0]["images_per_s"]),
        "startup_s": max(0.0, result.seconds - 2 * window * cfg.batch_size / steady),  # compile, first steps
        "batch": cfg.batch_size, "steps": result.step, "bf16": cfg.bf16, "compile": cfg.compile,
        "channels_last": cfg.channels_last, "params": sum(p.numel() for p in result.nets[MAIN].parameters()),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def training_phase(report: Report, dry: bool, deadline: float) -> None:
    import torch

    from synthgen.autoencoder.losses import AutoencoderObjective
    from synthgen.stages.train_autoencoder import build_networks
    from synthgen.config import load_params
    from synthgen.data.shapes import CLASS_NAMES
    from synthgen.stages.train_diffusion import DiffusionObjective, build_unet, resolve_config
    from synthgen.training.loop import MAIN

    sizes = training_sizes(dry)
    params = load_params(sizes["params"], check_paths=False)
    fast = {"bf16": True, "compile": torch.cuda.is_available()}
    g = torch.Generator().manual_seed(0)
    with recorded(report, "training", "autoencoder"), tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ae = params.autoencoder.model_copy(update={"train": params.autoencoder.train.model_copy(update=fast)})
        nets = build_networks(ae)
        side, batch = params.data.resolution, ae.train.batch_size
        pixels = torch.randint(0, 256, (4 * batch, ae.model.in_channels, side, side), generator=g, dtype=torch.uint8)
        report.put("training", "autoencoder", steady_rate(
            ae.train, nets, AutoencoderObjective(ae, nets[MAIN].last_layer), {"pixels": pixels},
            sizes["windows"]["autoencoder"], Path(tmp)))
    if not dry and seconds_left(deadline) < 30:
        report.put("training", "unet", {"skipped": f"{seconds_left(deadline):.0f} s left"})
        return
    with recorded(report, "training", "unet"), tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ae_model = params.autoencoder.model
        side = params.data.resolution // ae_model.downsample
        latent_shape = (ae_model.latent_channels, side, side)
        cfg = resolve_config(params.diffusion, latent_shape, len(CLASS_NAMES))
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=fast)})
        count = 4 * cfg.train.batch_size
        data = {"mean": torch.randn(count, *latent_shape, generator=g), "std": torch.full((count, *latent_shape), 0.1),
                "labels": torch.randint(0, len(CLASS_NAMES), (count,), generator=g)}
        report.put("training", "unet", steady_rate(cfg.train, {MAIN: build_unet(cfg)}, DiffusionObjective(cfg, 1.0),
                                                   data, sizes["windows"]["unet"], Path(tmp)))


# ---- phase 4: a short quality run -----------------------------------------------------------

def quality_sizes(dry: bool) -> dict:
    """Params file, fixed overrides, seconds of training in all, the share the autoencoder gets, and
    what a stage needs besides its training steps (seconds kept back for the work after it)."""
    quiet = [f"{section}.progress=false" for section in (
        "autoencoder.train", "diffusion.train", "evaluate.classifier_train", "evaluate.cas.train")]
    if dry:
        return {"params": TINY_PARAMS, "overrides": quiet, "train_s": 4, "autoencoder_share": 0.3,
                "after_autoencoder_s": 2, "after_diffusion_s": 1, "images": 24, "min_steps": 2,
                "fallback": {"autoencoder": (200.0, 1.0), "unet": (400.0, 1.0)}}
    return {"params": "configs/gpu.yaml", "train_s": 180, "autoencoder_share": 0.3,
            "overrides": quiet + ["data.num_images=12000", "autoencoder.train.compile=true",
                                  "evaluate.classifier_train.steps=1000", "evaluate.cas.train.steps=100"],
            "after_autoencoder_s": 45, "after_diffusion_s": 25, "images": 1000, "min_steps": 100,
            "fallback": {"autoencoder": (1000.0, 60.0), "unet": (6000.0, 60.0)}}  # low: overrunning costs all


WARM_STARTUP = 0.5  # share of phase 3's start-up a second compile of the same graphs costs (on-disk caches)


def steps_for(seconds: float, rate_and_startup: tuple[float, float], batch: int, min_steps: int) -> int:
    rate, startup = rate_and_startup
    return max(min_steps, int((seconds - WARM_STARTUP * startup) * rate / batch))


def measured_rate(report: Report, name: str, fallback: tuple[float, float]) -> tuple[float, float]:
    """(images/s, start-up seconds) of the training phase, or the fallback when it measured none."""
    measured = report.phase("training").get(name, {})
    if "images_per_s" in measured:
        return measured["images_per_s"], measured["startup_s"]
    return fallback


def quality_phase(report: Report, dry: bool, deadline: float, out: Path) -> None:
    """prepare -> autoencoder -> latents -> classifier -> diffusion -> 1,000 samples -> accuracy, FD ratio, grid."""
    # The core entry points this run goes through, in one place.
    import numpy as np
    import torch

    from synthgen.stages.encode_latents import encode_latents
    from synthgen.stages.train_autoencoder import train_autoencoder
    from synthgen.config import load_params
    from synthgen.config.sample import SampleConfig
    from synthgen.stages.prepare import prepare_dataset
    from synthgen.stages.train_classifier import train_classifier
    from synthgen.evaluation.features import embed_pixels, seeded_subset
    from synthgen.evaluation.plots import save_class_grid
    from synthgen.evaluation.scores import conditional_with_baseline, fd_with_baseline
    from synthgen.evaluation.trained import load_classifier
    from synthgen.generate.models import load_models
    from synthgen.generate.shard_sampler import generate_pixels
    from synthgen.stages.train_diffusion import train_diffusion
    from synthgen.shards import read_arrays

    sizes = quality_sizes(dry)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="gpu-check-quality-") as folder:
        dirs = {name: Path(folder) / name for name in ("prepared", "autoencoder", "latents", "classifier", "diffusion")}
        params = load_params(sizes["params"], sizes["overrides"], check_paths=False)
        seconds: dict[str, float] = {}

        def timed(name: str, fn, *args, **kwargs):
            began = time.time()
            result = fn(*args, **kwargs)
            seconds[name] = round(time.time() - began, 2)
            report.put("quality", "seconds", seconds)
            print(f"[quality] {name}: {seconds[name]:.1f} s", flush=True)
            return result

        timed("prepare", prepare_dataset, params.data, dirs["prepared"])
        class_names = json.loads((dirs["prepared"] / "classes.json").read_text())
        train_pixels, train_labels, _ = read_arrays(dirs["prepared"] / "train")
        val_pixels, val_labels, _ = read_arrays(dirs["prepared"] / "val")
        train_until = time.time() + sizes["train_s"]  # autoencoder, latents, classifier and diffusion model

        # 1) the autoencoder gets its share of the training time; the rest waits for the diffusion model
        ae = params.autoencoder
        budget = min(train_until, deadline - sizes["after_autoencoder_s"]) - time.time()
        ae_steps = steps_for(budget * sizes["autoencoder_share"], measured_rate(report, "autoencoder",
                             sizes["fallback"]["autoencoder"]), ae.train.batch_size, sizes["min_steps"])
        ae = ae.model_copy(update={"train": ae.train.model_copy(update={"steps": ae_steps})})
        ae_metrics = timed("train_autoencoder", train_autoencoder, ae, train_pixels, train_labels, val_pixels,
                           dirs["autoencoder"])
        report.put("quality", "autoencoder", {"steps": ae_steps, "psnr": ae_metrics.get("psnr"),
                                              "ssim": ae_metrics.get("ssim")})
        shutil.copyfile(dirs["autoencoder"] / "recon.png", out / "quality_recon.png")
        timed("encode_latents", encode_latents, dirs["autoencoder"], train_pixels, train_labels, dirs["latents"],
              batch_size=ae.eval_batch_size, device=ae.train.device)
        classifier = timed("train_classifier", train_classifier, params.evaluate, train_pixels, train_labels,
                           val_pixels, val_labels, class_names, dirs["classifier"])
        report.put("quality", "classifier", {"val_accuracy": classifier["val_accuracy"],
                                             "steps": classifier["steps"]})

        # 2) the diffusion model: the rest of the training time, keeping back what sampling and scoring need
        diffusion = params.diffusion
        budget = min(train_until, deadline - sizes["after_diffusion_s"]) - time.time()
        unet_steps = steps_for(budget, measured_rate(report, "unet", sizes["fallback"]["unet"]),
                               diffusion.train.batch_size, sizes["min_steps"])
        diffusion = diffusion.model_copy(update={"train": diffusion.train.model_copy(update={"steps": unet_steps})})
        trained = timed("train_diffusion", train_diffusion, diffusion, dirs["latents"], dirs["autoencoder"],
                        class_names, dirs["diffusion"])
        report.put("quality", "diffusion", {"steps": unet_steps, "final_loss": trained.get("final_loss"),
                                            "eval_loss": trained.get("eval_loss"),
                                            "latents_per_s": trained.get("images_per_s")})

        # 3) samples with the preset's sampler (eager: a compile would cost more than these samples)
        cfg = SampleConfig.model_validate({**params.sample.model_dump(), "device": device, "compile": False,
                                           "channels_last": False})
        models = load_models(str(dirs["diffusion"]), str(dirs["autoencoder"]), device)
        labels = np.arange(sizes["images"]) % len(class_names)
        seeds = list(range(sizes["images"]))
        pixels = timed("sample", lambda: np.concatenate([
            generate_pixels(models, labels[i: i + cfg.batch_size], seeds[i: i + cfg.batch_size], cfg)
            for i in range(0, len(seeds), cfg.batch_size)]))
        save_class_grid(out / "quality_grid.png", pixels, labels, len(class_names), params.evaluate.gallery_per_class)
        report.put("quality", "grid", "quality_grid.png")

        # 4) raw conditional accuracy and FD ratio in the classifier's feature space (val cut to the sample count)
        model = load_classifier(dirs["classifier"], device).model
        embedded = timed("embed", lambda: [embed_pixels(model, p, params.evaluate.batch_size)
                                           for p in (pixels, val_pixels, train_pixels)])
        generated, val, train = embedded
        accuracy, per_class = conditional_with_baseline(generated.predicted, labels, val.predicted, val_labels,
                                                        class_names)
        subset = seeded_subset(len(val_pixels), len(pixels), params.evaluate.seed)
        fd = fd_with_baseline(train.features, val.features[subset], generated.features, [np.arange(len(pixels))])
        trained_s = sum(seconds[name] for name in ("train_autoencoder", "train_classifier", "train_diffusion"))
        report.put("quality", "scores", {
            **accuracy, **fd, "samples": len(pixels), "val_samples_for_fd": len(subset),
            "per_class_accuracy": {name: row["accuracy"] for name, row in per_class.items()},
            "sampler": cfg.sampler.model_dump(mode="json"), "train_seconds": trained_s,
            "images": {"train": len(train_pixels), "val": len(val_pixels)}})


# ---- the parent: phases in child processes, deadlines, the table ----------------------------

def run_child(command: list[str], limit: float, dry: bool, log: Path | None = None) -> tuple[int | None, float]:
    """Run `command` in its own process group for at most `limit` seconds; (exit code or None if cut, wall s).

    Dry runs use one torch thread: on a busy small CPU, intra-op threads wait on each other (docs/benchmarks.md).
    """
    began = time.time()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"OMP_NUM_THREADS": "1"} if dry else {})}
    with open(log, "w") if log else contextlib.nullcontext() as sink:
        child = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=sink,
                                 stderr=subprocess.STDOUT if sink else None)
        try:
            code = child.wait(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            stop_group(child)
            code = None
    return code, time.time() - began


def stop_group(child: subprocess.Popen) -> None:
    """SIGTERM to the child's process group (compile workers included), SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def phase_limit(name: str, dry: bool, deadline: float) -> float:
    budget = PHASE_BUDGET[name][1 if dry else 0]
    left = seconds_left(deadline)
    return left if budget is None else min(budget, left)


def run_phases(args: argparse.Namespace, out: Path, report: Report) -> None:
    mode = "dry" if args.dry else "gpu"
    began = time.time()
    deadline = began + (args.budget or TOTAL_BUDGET[mode])
    report.write({"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)), "mode": mode,
                           "budget_s": deadline - began, "argv": sys.argv}, "phases": {}})
    for name in PHASE_BUDGET:
        limit = phase_limit(name, args.dry, deadline)
        if not args.dry and limit < MIN_START[name]:
            report.put(name, "status", f"skipped: {limit:.0f} s left")
            continue
        print(f"\n== {name} (at most {limit:.0f} s)", flush=True)
        if name == "tests":
            code, wall = tests_phase(report, limit, args.dry)
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--phase", name, "--out", str(out),
                       "--deadline", str(time.time() + limit - 5)] + (["--dry"] if args.dry else [])
            code, wall = run_child(command, limit, args.dry)
        status = "ok" if code == 0 else ("timed out" if code is None else f"failed (exit code {code})")
        report.put(name, "status", status)
        report.put(name, "wall_s", round(wall, 1))
        write_table(report, out)
    data = report.read()
    data["meta"]["wall_s"] = round(time.time() - began, 1)
    report.write(data)
    print("\n" + write_table(report, out), flush=True)


def child_phase(args: argparse.Namespace, out: Path, report: Report) -> None:
    """One phase in this process (started by run_phases); device facts go into the report's meta once."""
    import torch

    data = report.read()
    if torch.cuda.is_available() and "device" not in data["meta"]:
        data["meta"].update(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                            cpus=os.cpu_count())
        report.write(data)
    with recorded(report, args.phase, "error"):
        if args.phase == "sampling":
            sampling_phase(report, args.dry, args.deadline)
        elif args.phase == "training":
            training_phase(report, args.dry, args.deadline)
        else:
            quality_phase(report, args.dry, args.deadline, out)


# ---- the table ------------------------------------------------------------------------------

def number(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def verdict(value: float | None, goal: float, higher: bool = True) -> str:
    if value is None:
        return "-"
    return "met" if (value >= goal if higher else value <= goal) else "MISSED"


def problem(entry: dict) -> str | None:
    """An entry's error or skip note, shortened, if it has one."""
    for key in ("error", "skipped"):
        if key in entry:
            return f"{key}: {str(entry[key])[:120]}"
    return None


def table_rows(data: dict) -> list[tuple[str, str, str, str, str]]:
    """(phase, figure, value, goal, verdict) rows from the report; missing figures read '-'."""
    phases = data["phases"]
    rows = []
    for name in PHASE_BUDGET:
        phase = phases.get(name, {})
        status = f"{phase.get('status', 'not run')}, {number(phase.get('wall_s'))}"
        rows.append((name, "status, wall s", status, "", ""))
        if note := problem(phase.get("error", {})):
            rows.append((name, "error", note, "", ""))
    tests = phases.get("tests", {}).get("results", {})
    if tests:
        counts = ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "error", "skipped"))
        rows.append(("tests", "cuda tests", counts, "all pass", "met" if tests.get("passed") and not
                     (tests.get("failed") or tests.get("error")) else "MISSED"))
        rows += [("tests", f"FAILED {test}", message, "", "") for test, message in tests.get("failures", {}).items()]
    sampling = phases.get("sampling", {})
    matmul = sampling.get("matmul", {})
    for size in ("gpu_preset", "quickstart"):
        entry = sampling.get(size, {})
        if note := problem(entry):
            rows.append(("sampling", size, note, "", ""))
        if "ratio" in entry:
            rows.append(("sampling", f"{size}: stage / denoiser images/s (batch {entry['batch']})",
                         f"{number(entry['stage_images_per_s'])} / {number(entry['denoiser_images_per_s'])} = "
                         f"{entry['ratio']:.3f}", f">= {SAMPLING_GOAL}", verdict(entry["ratio"], SAMPLING_GOAL)))
        if parts := entry.get("breakdown_ms_per_image"):
            rows.append(("sampling", f"{size}: ms/image noise, denoise, decode, quantise, encode (1 thread), write",
                         ", ".join(f"{parts[k]:.3g}" for k in ("noise", "denoise", "decode", "quantise", "encode",
                                                                "write")), "", ""))
        if "denoiser_tflop_per_s" in entry:
            fraction = entry["denoiser_tflop_per_s"] / matmul["tflop_per_s"] if "tflop_per_s" in matmul else None
            value = f"{number(entry['denoiser_tflop_per_s'])} / {number(matmul.get('tflop_per_s'))}"
            judged = verdict(fraction, FLOPS_GOAL) if size == "gpu_preset" else "(informative)"
            rows.append(("flops", f"{size}: denoiser TFLOP/s ({entry['denoiser_gflop_per_image']:.3g} GFLOP/image) "
                         "/ bf16 matmul", value + (f" = {fraction:.1%}" if fraction is not None else ""),
                         f">= {FLOPS_GOAL:.0%}", judged))
    if note := problem(matmul):
        rows.append(("flops", "matmul", note, "", ""))
    for net in ("autoencoder", "unet"):
        entry = phases.get("training", {}).get(net, {})
        if note := problem(entry):
            rows.append(("training", net, note, "", ""))
        elif entry:
            value = ", ".join(number(entry[key]) for key in ("images_per_s", "peak_memory_gib", "startup_s"))
            rows.append(("training", f"{net} (batch {entry['batch']}, bf16, compile {entry['compile']}): images/s, "
                         "peak GiB, start-up s", value, "", ""))
    quality = phases.get("quality", {})
    scores = quality.get("scores", {})
    if scores:
        ae, diffusion = quality.get("autoencoder", {}), quality.get("diffusion", {})
        steps = f"{ae.get('steps')}, {diffusion.get('steps')}; {number(scores['train_seconds'])}"
        rows.append(("quality", "training steps: autoencoder, diffusion; seconds (with the classifier's)", steps,
                     "about 180 s", ""))
        rows.append(("quality", "autoencoder val PSNR dB; classifier val accuracy",
                     f"{number(ae.get('psnr'))}; {number(quality.get('classifier', {}).get('val_accuracy'))}", "", ""))
        rows.append(("quality", f"raw conditional accuracy ({scores['samples']} samples)",
                     number(scores["conditional_accuracy"]), "", ""))
        rows.append(("quality", "FD ratio (generated / real val, classifier features)", number(scores["fd_ratio"]),
                     "<= 4 (the gate)", verdict(scores["fd_ratio"], 4.0, higher=False)))
        rows.append(("quality", "per-class grid; autoencoder reconstructions", "quality_grid.png; quality_recon.png",
                     "", ""))
    return rows


def write_table(report: Report, out: Path) -> str:
    data = report.read()
    meta = data["meta"]
    head = (f"gpu_check ({meta.get('mode')}), {meta.get('device', 'no CUDA device')}, torch {meta.get('torch', '-')}, "
            f"started {meta.get('started')}, wall {number(meta.get('wall_s'))} s\n\n")
    lines = ["| phase | figure | value | goal | verdict |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in table_rows(data)]
    text = head + "\n".join(lines) + "\n"
    (out / TABLE).write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.md and the PNGs")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on any device: the same code paths in seconds")
    parser.add_argument("--budget", type=float, help="seconds for all phases (default 450 on a GPU, 240 dry)")
    parser.add_argument("--phase", choices=["sampling", "training", "quality"], help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out)
    if args.phase:
        child_phase(args, out, report)
    else:
        run_phases(args, out, report)


if __name__ == "__main__":
    main()
