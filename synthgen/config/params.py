"""`Params`: the whole `params.yaml`, one section per stage."""
from __future__ import annotations

from pydantic import model_validator

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

    @model_validator(mode="after")
    def _resolution_fits_the_autoencoder(self) -> Params:
        """Latents are `data.resolution / autoencoder.model.downsample` wide: checked now, not in train-ae."""
        resolution, factor = self.data.resolution, self.autoencoder.model.downsample
        if resolution % factor:
            nearest = resolution - resolution % factor
            raise ValueError(f"data.resolution = {resolution} must be divisible by autoencoder.model.downsample = "
                             f"{factor}; try {nearest} or {nearest + factor}")
        return self

    @model_validator(mode="after")
    def _filter_is_not_the_judge(self) -> Params:
        """The evaluator must not be a copy of the filter whose choices it scores (same architecture and seed)."""
        f, judge = self.sample.filter, self.evaluate
        if f.enabled and f.classifier == judge.classifier and f.train.seed == judge.classifier_train.seed:
            raise ValueError("sample.filter would train the same classifier as evaluate (same architecture and seed), "
                             "so the judge would be the filter; change sample.filter.train.seed or sample.filter.classifier")
        return self
