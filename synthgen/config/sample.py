"""Params of the `sample` stage: how many images, which classes, which sampler, where it runs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.base import Name, Section, Seed, unkeyed
from synthgen.config.diffusion import SamplerConfig


class SampleConfig(Section):
    """Large-scale generation into WebDataset shards (one task per shard)."""

    num_images: int = Field(1000, ge=1, le=100_000_000)  # synthetic images in the dataset
    images_per_shard: int = Field(250, ge=1, le=100_000)  # samples per tar shard (and per task)
    seed: Seed = 0  # with the global sample index, derives every sample's noise seed
    class_mix: Literal["uniform", "weights", "counts"] = "uniform"  # how num_images splits over classes
    class_weights: dict[Name, float] | None = None  # class_mix=weights: class name -> relative weight
    class_counts: dict[Name, int] | None = None  # class_mix=counts: class name -> exact count (sum = num_images)
    sampler: SamplerConfig = SamplerConfig()  # sampler, steps, eta and guidance scale
    batch_size: int = unkeyed(125, ge=1, le=65_536)  # images sampled together; never changes the bytes
    micro_batch: int = Field(64, ge=1, le=65_536)  # rows per network call (padded): fixes the numerics, so part of the bytes
    image_format: Literal["png", "webp", "jpg"] = "png"  # encoding of the synthetic images
    license: str = unkeyed("other", pattern=r"^[a-z0-9][a-z0-9.+-]*$")  # the dataset card's license: a Hugging Face id (apache-2.0, cc-by-4.0, other)
    encode_workers: int = unkeyed(2, ge=0, le=256)  # threads that PNG-encode while the model runs; 0 = inline
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    cpu_threads: int = unkeyed(1, ge=0, le=1024)  # torch intra-op threads per shard task; 0 = torch's default
    bf16: bool = True  # bf16 autocast for the denoiser and decoder on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the denoiser (CUDA)
    channels_last: bool = False  # channels_last memory format (CUDA)
    task_runner: Literal["local", "ray"] = unkeyed("local")  # Prefect task runner for the per-shard tasks
    max_workers: int = unkeyed(2, ge=1, le=1024)  # local runner: shards in flight at once (one per core with cpu_threads 1)
    ray_address: str | None = unkeyed(None)  # ray: address of an existing cluster; None starts a local one
    ray_num_gpus: float = unkeyed(0.0, ge=0.0)  # ray: GPUs each shard task asks for (1 = one shard per GPU)
    ray_num_cpus: float = unkeyed(1.0, gt=0.0)  # ray: CPUs each shard task asks for

    @model_validator(mode="after")
    def _check_mix(self) -> SampleConfig:
        if self.class_mix == "weights" and not self.class_weights:
            raise ValueError("class_mix=weights needs sample.class_weights (class name -> weight)")
        if self.class_mix == "counts":
            if not self.class_counts:
                raise ValueError("class_mix=counts needs sample.class_counts (class name -> count)")
            if sum(self.class_counts.values()) != self.num_images:
                raise ValueError(
                    f"class_counts sum to {sum(self.class_counts.values())}, but num_images is {self.num_images}")
        return self
