"""Params of the `sample` stage: how many images, which classes, which sampler, where it runs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.base import Name, Section, Seed, unkeyed
from synthgen.config.diffusion import SamplerConfig
from synthgen.config.evaluate import ClassifierConfig
from synthgen.config.training import TrainConfig

FILTER_CLASSIFIER = ClassifierConfig(blocks_per_stage=1)  # the evaluator's widths at half its depth
FILTER_TRAIN = TrainConfig(  # seed 1 (the evaluator's is 0); 1,200 steps: real val 0.996, every class >= 0.95 (600: 0.76)
    steps=1200, batch_size=64, lr=2e-3, warmup_steps=50, weight_decay=0.05, checkpoint_every=600, log_every=25,
    cpu_threads=1, seed=1)


class FilterConfig(Section):
    """Sampling with acceptance: a classifier of its own screens every generated image, and an image it does not
    assign to the requested class (with at least `min_confidence`) is replaced by a fresh sample of that class."""

    enabled: bool = True  # screen every sample; off writes the generator's first draws as they come
    min_confidence: float = Field(0.9, ge=0.0, lt=1.0)  # accept when the requested class is the filter's top class with at least this probability
    max_attempts: int = Field(64, ge=1, le=1000)  # draws per sample at most; a sample still rejected then fails the stage, naming its class
    min_acceptance: float = Field(0.1, ge=0.0, le=1.0)  # a class whose share of accepted draws is lower fails the stage (the generator cannot draw it)
    classifier: ClassifierConfig = unkeyed(FILTER_CLASSIFIER)  # the filter's architecture (stage train_filter; keep it unlike evaluate.classifier)
    train: TrainConfig = unkeyed(FILTER_TRAIN)  # the filter's schedule on the real train split (stage train_filter)


class SampleConfig(Section):
    """Large-scale generation into WebDataset shards (one task per shard)."""

    num_images: int = Field(1000, ge=1, le=100_000_000)  # synthetic images in the dataset
    images_per_shard: int = Field(250, ge=1, le=100_000)  # samples per tar shard (and per task)
    seed: Seed = 0  # with the global sample index, derives every sample's noise seed
    class_mix: Literal["uniform", "weights", "counts"] = "uniform"  # how num_images splits over classes
    class_weights: dict[Name, float] | None = None  # class_mix=weights: class name -> relative weight
    class_counts: dict[Name, int] | None = None  # class_mix=counts: class name -> exact count (sum = num_images)
    sampler: SamplerConfig = SamplerConfig()  # sampler, steps, eta and guidance scale
    filter: FilterConfig = FilterConfig()  # screen each image with a filter classifier; replace the ones it rejects
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
