"""Quality against sampling steps: every sampler at several step counts on the trained model.

All runs start from the same x_T and labels, so rows compare samplers, not noise draws. For each
(sampler, steps) a row holds the network calls (nfe), the sampler's wall time with the share spent
outside the denoiser (`overhead`: the sampler's own arithmetic and Python), the generated latents'
mean and std, and, scored by the feature classifier, the conditional accuracy (overall and of the worst
requested class) and the FD of the features to as many real val images. Stage `sweep_samplers` writes
the rows as `sweep.csv`; stage `evaluate` plots them per sampler; `bench/samplers.py` prints them as a
table.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from synthgen.atomic import atomic_write_bytes
from synthgen.autoencoder.trained import TrainedAutoencoder
from synthgen.config.diffusion import SamplerConfig
from synthgen.diffusion.sample import sample_with_config
from synthgen.evaluation.features import embed_pixels, seeded_subset
from synthgen.evaluation.trained import TrainedClassifier
from synthgen.stages.train_diffusion import decode_to_pixels
from synthgen.ldm.trained import TrainedDiffusion
from synthgen.metrics.conditional import conditional_accuracy
from synthgen.metrics.frechet import frechet_distance
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.shards import read_arrays

COLUMNS = ("sampler", "steps", "nfe", "seconds", "overhead", "images_per_s", "latent_mean", "latent_std",
           "conditional_accuracy", "worst_class_accuracy", "fd")


class TimedEpsFn:
    """eps_fn that adds the time spent inside it (CUDA synchronised on both sides) to `seconds`."""

    def __init__(self, eps_fn, device: torch.device):
        self.eps_fn, self.device = eps_fn, device
        self.seconds, self.calls = 0.0, 0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.sync()
        start = time.perf_counter()
        eps = self.eps_fn(x_t, t)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return eps


@dataclass
class SampledRun:
    latents: torch.Tensor  # scaled latents z0, float32
    seconds: float  # wall time of the sampler, decoding excluded
    model_seconds: float  # of which inside the denoiser
    nfe: int  # network calls


@torch.no_grad()
def run_sampler(model: TrainedDiffusion, sampler: SamplerConfig, x_T: torch.Tensor, labels: torch.Tensor | None,
                seed: int, bf16: bool = True) -> SampledRun:
    """Scaled latents from one sampler setting, with its timing."""
    device = x_T.device
    eps_fn = model.eps_fn(labels, sampler.guidance_scale, sampler.guidance_interval, guidance=sampler.guidance)
    timed = TimedEpsFn(eps_fn, device)
    generator = torch.Generator(device).manual_seed(seed)
    timed.sync()
    start = time.perf_counter()
    with bf16_autocast(device, bf16):
        z = sample_with_config(timed, x_T, model.schedule, sampler, generator)
    timed.sync()
    return SampledRun(z.float(), time.perf_counter() - start, timed.seconds, timed.calls)


class ClassifierScore:
    """Conditional accuracy of generated images and the FD of their classifier features to `count` real
    val images; `baseline_fd` is the FD of as many real train images to the same val set (the floor
    at this sample size: FD is biased upwards for small sets)."""

    def __init__(self, classifier: TrainedClassifier, prepared_dir: str | Path, count: int, seed: int,
                 batch_size: int = 256):
        self.model, self.batch_size = classifier.model, batch_size
        val, _, _ = read_arrays(Path(prepared_dir) / "val")
        train, _, _ = read_arrays(Path(prepared_dir) / "train")
        reference_seed = derive_seed(seed, "sweep/fd_reference")
        self.real = embed_pixels(self.model, val[seeded_subset(len(val), count, reference_seed)], batch_size).features
        train_rows = seeded_subset(len(train), count, reference_seed)
        train_features = embed_pixels(self.model, train[train_rows], batch_size).features
        self.baseline_fd = frechet_distance(train_features, self.real)

    @property
    def feature_dim(self) -> int:
        return self.real.shape[1]

    def __call__(self, pixels: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """accuracy, the worst requested class's accuracy and its label (not CSV columns) and FD."""
        embedding = embed_pixels(self.model, pixels, self.batch_size)
        accuracy = conditional_accuracy(embedding.predicted, labels, self.model.num_classes)
        worst = min((a, c) for c, a in enumerate(accuracy.per_class) if a is not None)
        return {"conditional_accuracy": accuracy.overall, "worst_class_accuracy": worst[0], "worst_class": worst[1],
                "fd": frechet_distance(embedding.features, self.real)}


def sweep_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """`per_class` requests of every class, class after class (one unconditional block if num_classes is 0)."""
    return torch.arange(max(num_classes, 1)).repeat_interleave(per_class)


def sweep_samplers(model: TrainedDiffusion, autoencoder: TrainedAutoencoder, base: SamplerConfig,
                   samplers: Sequence[str], steps: Sequence[int], per_class: int, seed: int,
                   score: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None,
                   bf16: bool = True) -> Iterator[tuple[dict, np.ndarray]]:
    """For every sampler and step count (other options from `base`), yield its row and decoded images."""
    labels = sweep_labels(model.num_classes, per_class)
    device = next(model.model.parameters()).device
    g_x_T = torch.Generator().manual_seed(derive_seed(seed, "sweep/x_T"))
    x_T = torch.randn((len(labels), *model.latent_shape), generator=g_x_T).to(device)
    conditional = labels.to(device) if model.num_classes > 0 else None
    for name in samplers:
        for count in steps:
            run = run_sampler(model, base.model_copy(update={"name": name, "steps": count}), x_T, conditional,
                              derive_seed(seed, "sweep/sampler_noise"), bf16)
            pixels = decode_to_pixels(autoencoder, run.latents, device, bf16)
            row = {"sampler": name, "steps": count, "nfe": run.nfe, "seconds": run.seconds,
                   "overhead": 1 - run.model_seconds / run.seconds, "images_per_s": len(labels) / run.seconds,
                   "latent_mean": run.latents.mean().item(), "latent_std": run.latents.std().item()}
            if score is not None:
                row.update(score(pixels, labels.numpy()))
            yield row, pixels


def write_sweep(path: str | Path, rows: Sequence[dict]) -> None:
    """The rows as CSV (columns `COLUMNS`; missing values empty), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_curves(path: str | Path, column: str = "conditional_accuracy") -> dict[str, list[tuple[int, float]]]:
    """sampler -> [(steps, value of `column`), ...] from a sweep CSV, in the order rows were written."""
    curves: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(column):
                curves.setdefault(row["sampler"], []).append((int(row["steps"]), float(row[column])))
    return curves
