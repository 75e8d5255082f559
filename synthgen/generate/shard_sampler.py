"""Sample one planned shard: denoise in batches, decode, quantise, screen, encode in a background pool, write.

Each sample's starting noise and sampler noise come from its own seed, so its bytes do not depend
on which batch or worker it ran in. With a filter (`synthgen.generate.filter`) a rejected draw is
redrawn from the next attempt's seed until the filter accepts it.
"""
from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from synthgen.config.sample import SampleConfig
from synthgen.diffusion import sample_with_config
from synthgen.diffusion.noise import SampleGenerators
from synthgen.errors import SynthgenError
from synthgen.generate.filter import SampleFilter, Tally, load_filter
from synthgen.generate.fixed_batch import in_fixed_batches
from synthgen.generate.models import GenerationModels, load_models
from synthgen.generate.plan import SamplingPlan, ShardPlan
from synthgen.imaging import encode_image, to_uint8
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.shards import ShardSample, write_shard
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

    def row(self, cfg: SampleConfig, seed: int, position: int) -> dict[str, Any]:
        """The generation columns of the shard's `position`-th sample, drawn from `seed`."""
        s = cfg.sampler
        return {
            "seed": seed,
            "sampler": s.name, "steps": s.steps, "eta": float(s.eta), "guidance_scale": float(s.guidance_scale),
            "guidance_method": s.guidance_method, "autoguidance_scale": float(s.autoguidance_scale),
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
    guide = in_fixed_batches(d.guide, cfg.micro_batch) if d.guide is not None else None
    decoder = in_fixed_batches(models.autoencoder.decode, cfg.micro_batch)
    with bf16_autocast(models.device, cfg.bf16):
        eps_fn = d.eps_fn(y, cfg.sampler.guidance_scale, cfg.sampler.guidance_interval, network=denoiser,
                          guidance=cfg.sampler.guidance, guide_network=guide)
        z0 = sample_with_config(eps_fn, x_T, d.schedule, cfg.sampler, generator=generators)
        images = decoder(z0.float())
    return to_uint8(images.float())


@dataclass(frozen=True)
class Draw:
    """The accepted draw of one planned sample."""

    pixels: np.ndarray  # uint8 (H, W, 3)
    seed: int  # the seed of the accepted attempt: `regenerate` remakes the image from it
    attempts: int  # draws made, 1 = the first was accepted
    confidence: float | None  # the filter's probability of the requested class; None without a filter


def chunks(rows: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(rows), size):
        yield rows[start: start + size]


def planned_draws(rows: list[int], attempts: list[int], max_attempts: int, fill: int) -> list[tuple[int, int]]:
    """(row, attempt) of one batch: each row's next attempt, then later attempts of the same rows, round-robin,
    until the batch fills a multiple of `fill` rows (the padded network call would compute them anyway)."""
    draws = [(r, attempts[r]) for r in rows]
    room = -len(draws) % fill
    extra = 1
    while room and any(attempts[r] + extra < max_attempts for r in rows):
        for r in rows:
            if room and attempts[r] + extra < max_attempts:
                draws.append((r, attempts[r] + extra))
                room -= 1
        extra += 1
    return draws


def accepted_draws(models: GenerationModels, shard: ShardPlan, cfg: SampleConfig, screen: SampleFilter | None,
                   tally: Tally, key_of: Callable[[int], str]) -> Iterator[tuple[int, Draw]]:
    """(row, draw) of every sample of `shard` as the filter accepts it (all first draws without a filter).

    A sample's accepted draw is its first attempt the filter accepts, whatever the batching: rejected rows
    are drawn again from their next attempts' seeds, and a batch's padding is filled with later attempts of
    its rows, whose verdicts count only up to the first accepted one. A row rejected `max_attempts` times
    fails the stage, naming its class.
    """
    attempts = [0] * len(shard.labels)
    pending = list(range(len(shard.labels)))
    while pending:
        rejected = []
        for rows in chunks(pending, cfg.batch_size):
            draws = [(r, attempts[r]) for r in rows] if screen is None else \
                planned_draws(rows, attempts, screen.cfg.max_attempts, cfg.micro_batch)
            labels = shard.labels[[r for r, _ in draws]]
            seeds = [derive_seed(shard.seeds[r], "sample/attempt", a) for r, a in draws]
            pixels = generate_pixels(models, labels, seeds, cfg)
            verdicts = screen.judge(pixels, labels) if screen is not None else None
            done: set[int] = set()
            for j in sorted(range(len(draws)), key=lambda j: draws[j][::-1]):  # each row's attempts in order
                r = draws[j][0]
                if r in done:
                    continue
                attempts[r] += 1
                if verdicts is None:
                    done.add(r)
                    yield r, Draw(pixels[j], seeds[j], attempts[r], None)
                    continue
                tally.count(int(labels[j]), bool(verdicts.top1[j]), bool(verdicts.accepted[j]))
                if verdicts.accepted[j]:
                    done.add(r)
                    yield r, Draw(pixels[j], seeds[j], attempts[r], float(verdicts.confidence[j]))
                elif attempts[r] >= screen.cfg.max_attempts:
                    raise SynthgenError(
                        f"sample.filter rejected all {attempts[r]} draws of {key_of(r)} (class "
                        f"{models.diffusion.class_names[int(labels[j])]!r}); train the generator longer, lower "
                        f"sample.filter.min_confidence or raise sample.filter.max_attempts")
            rejected += [r for r in rows if r not in done]
        pending = rejected


def encoded(pixels: np.ndarray, fmt: str, pool: Executor | None) -> Future | bytes:
    return pool.submit(encode_image, pixels, fmt) if pool is not None else encode_image(pixels, fmt)


def generate_shard(models: GenerationModels, shard: ShardPlan, cfg: SampleConfig, class_names: list[str],
                   provenance: Provenance, folder: str | Path, prefix: str = SyntheticLayout.PREFIX,
                   screen: SampleFilter | None = None) -> dict[str, Any]:
    """Generate (screened by `screen`, if any), encode and atomically write one shard; return its manifest
    entry, which carries the filter's tally of the shard under "filter"."""
    pool = ThreadPoolExecutor(cfg.encode_workers) if cfg.encode_workers > 0 else None
    tally = Tally.empty(len(class_names))
    keys = shard.keys(prefix)
    try:
        draws: dict[int, tuple[Draw, Future | bytes]] = {}
        for row, draw in accepted_draws(models, shard, cfg, screen, tally, keys.__getitem__):
            draws[row] = draw, encoded(draw.pixels, cfg.image_format, pool)
        samples = []
        for row, (key, label) in enumerate(zip(keys, shard.labels)):
            draw, image = draws[row]
            size = models.image_size
            samples.append(ShardSample(
                key=key, image=image if isinstance(image, bytes) else image.result(), label=int(label),
                class_name=class_names[int(label)], width=size, height=size, format=cfg.image_format,
                meta={**provenance.row(cfg, draw.seed, row), "attempts": draw.attempts,
                      "filter_confidence": draw.confidence},
            ))
        entry = write_shard(join(folder, shard.name), samples)
        return {**entry, "filter": tally.as_json()} if screen is not None else entry
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def screen_for(cfg: SampleConfig, folder: str | Path, models: GenerationModels,
               class_names: list[str]) -> SampleFilter | None:
    """The filter of `folder` on the models' device, checked against the classes drawn; None when
    `sample.filter.enabled` is off (then `folder` is never read)."""
    if not cfg.filter.enabled:
        return None
    screen = SampleFilter(load_filter(str(folder), str(models.device)), cfg.filter, cfg.micro_batch)
    screen.check_classes(class_names, folder)
    return screen


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
    filter: Path  # the filter classifier's folder, read only when sample.filter.enabled

    def make(self, index: int) -> dict[str, Any]:
        """Generate shard `index`, write it atomically, then record its receipt; returns its manifest entry."""
        cfg = self.cfg
        models = load_models(str(self.diffusion), str(self.autoencoder), cfg.device, cfg.compile, cfg.channels_last)
        with cpu_threads(cfg.cpu_threads):
            entry = generate_shard(models, self.plan.shard(index), cfg, self.class_names, self.provenance, self.out,
                                   screen=screen_for(cfg, self.filter, models, self.class_names))
        record_done(self.out, entry, self.provenance.config_hash)
        return entry
