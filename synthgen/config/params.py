"""`Params`: the whole `params.yaml`, one section per stage."""
from __future__ import annotations

from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.config.base import Section
from synthgen.config.data import DataConfig
from synthgen.config.diffusion import DiffusionConfig
from synthgen.config.evaluate import EvaluateConfig
from synthgen.config.sample import SampleConfig


class Params(Section):
    data: DataConfig = DataConfig()  # stage prepare
    autoencoder: AutoencoderConfig = AutoencoderConfig()  # stages train_autoencoder and encode_latents
    diffusion: DiffusionConfig = DiffusionConfig()  # stage train_diffusion
    sample: SampleConfig = SampleConfig()  # stage sample
    evaluate: EvaluateConfig = EvaluateConfig()  # stages train_classifier, sweep_samplers and evaluate
