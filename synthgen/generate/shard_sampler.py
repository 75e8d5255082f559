"""Sample one planned shard: denoise in batches, decode, quantise, encode in a background pool, write.

Each sample's starting noise and sampler noise come from its own seed, so its bytes do not depend
on which batch or worker it ran in.
"""
from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from synthgen.config.sample import SampleConfig
from synthgen.diffusion import sample_with_config
from synthgen.diffusion.noise import SampleGenerators
from synthgen.generate.fixed_batch import in_fixed_batches
from synthgen.generate.models import GenerationModels, load_models
from synthgen.generate.plan import SamplingPlan, ShardPlan
from synthgen.imaging import encode_image, to_uint8
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.shards import ShardSample, write_shard
from synthgen.shards.keys import sample_key
from synthgen.shards.progress import record_done
from synthgen.stages.layout import SyntheticLayout
from synthgen.storage import join
from synthgen.training.distributed import cpu_threads

def initial_noise(seeds: list[int], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """x_T ~ N(0, I), one row per seed, drawn on the CPU so that it is the same on every device."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(derive_seed(s, "sample/x_T"))) for s in seeds]
    return torch.stack(rows).to(device)


@dataclass(frozen=True)
class Provenance:
    """Facts shared by every sample of a run: written into each row so a sample explains itself."""

    diffusion_sha256: str
    autoencoder_sha256: str
    config_hash: str

    def row(self, cfg: SampleConfig, seed: int) -> dict[str, Any]:
        s = cfg.sampler
        return {
            "seed": seed,
            "sampler": s.name, "steps": s.steps, "eta": float(s.eta), "guidance_scale": float(s.guidance_scale),
            "timestep_spacing": s.timestep_spacing,
            "diffusion_sha256": self.diffusion_sha256, "autoencoder_sha256": self.autoencoder_sha256,
            "config_hash": self.config_hash,
        }


@torch.no_grad()
def generate_pixels(models: GenerationModels, labels: np.ndarray, seeds: list[int], cfg: SampleConfig) -> np.ndarray:
    """uint8 images (N, H, W, 3) for the given labels and per-sample seeds."""
    d = models.diffusion
    x_T = initial_noise(seeds, d.latent_shape, models.device)
    y = torch.as_tensor(labels, device=models.device)
    generators = SampleGenerators([derive_seed(s, "sample/sampler_noise") for s in seeds], models.device)
    denoiser = in_fixed_batches(d.model, cfg.micro_batch)
    decoder = in_fixed_batches(models.autoencoder.decode, cfg.micro_batch)
    with bf16_autocast(models.device, cfg.bf16):
        eps_fn = d.eps_fn(y, cfg.sampler.guidance_scale, cfg.sampler.guidance_interval, network=denoiser,
                          guidance=cfg.sampler.guidance)
        z0 = sample_with_config(eps_fn, x_T, d.schedule, cfg.sampler, generator=generators)
        images = decoder(z0.float())
    return to_uint8(images.float())


def batches(shard: ShardPlan, batch_size: int) -> Iterator[tuple[np.ndarray, list[int]]]:
    for start in range(0, len(shard.labels), batch_size):
        yield shard.labels[start: start + batch_size], list(shard.seeds[start: start + batch_size])


def encoded(pixels: np.ndarray, fmt: str, pool: Executor | None) -> list[Future | bytes]:
    if pool is None:
        return [encode_image(p, fmt) for p in pixels]
    return [pool.submit(encode_image, p, fmt) for p in pixels]


def generate_shard(models: GenerationModels, shard: ShardPlan, cfg: SampleConfig, class_names: list[str],
                   provenance: Provenance, folder: str | Path, prefix: str = SyntheticLayout.PREFIX) -> dict[str, Any]:
    """Generate, encode and atomically write one shard; return its manifest entry."""
    pool = ThreadPoolExecutor(cfg.encode_workers) if cfg.encode_workers > 0 else None
    try:
        images: list[Future | bytes] = []
        for labels, seeds in batches(shard, cfg.batch_size):
            images += encoded(generate_pixels(models, labels, seeds, cfg), cfg.image_format, pool)
        samples = []
        for i, (index, label, seed) in enumerate(zip(shard.sample_indices, shard.labels, shard.seeds)):
            data = images[i] if isinstance(images[i], bytes) else images[i].result()
            size = models.image_size
            samples.append(ShardSample(
                key=sample_key(prefix, int(index)), image=data, label=int(label),
                class_name=class_names[int(label)], width=size, height=size, format=cfg.image_format,
                meta=provenance.row(cfg, seed),
            ))
        return write_shard(join(folder, shard.name), samples)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard of a run needs, small enough to ship to a worker (which loads the models once)."""

    plan: SamplingPlan
    cfg: SampleConfig
    diffusion: Path  # model folders
    autoencoder: Path
    class_names: list[str]
    provenance: Provenance
    out: str | Path  # a local folder or an fsspec URL

    def make(self, index: int) -> dict[str, Any]:
        """Generate shard `index`, write it atomically, then record its receipt; returns its manifest entry."""
        cfg = self.cfg
        models = load_models(str(self.diffusion), str(self.autoencoder), cfg.device, cfg.compile, cfg.channels_last)
        with cpu_threads(cfg.cpu_threads):
            entry = generate_shard(models, self.plan.shard(index), cfg, self.class_names, self.provenance, self.out)
        record_done(self.out, entry, self.provenance.config_hash)
        return entry
