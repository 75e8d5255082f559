"""Params for the evaluate stage: the feature classifier, the metrics and the quality gate."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from synthgen.config.base import Section

Width = Annotated[int, Field(ge=8, le=1024)]


class ClassifierConfig(Section):
    """The small ResNet whose penultimate layer is the feature space of every distance metric."""

    widths: tuple[Width, ...] = Field((32, 64, 128), min_length=1, max_length=6)  # channels per stage; each stage after the first halves the resolution
    blocks_per_stage: int = Field(2, ge=1, le=8)  # residual blocks in every stage
    norm_groups: int = Field(8, ge=1, le=64)  # GroupNorm groups; must divide every width
    stem_stride: Literal[1, 2, 4] = 1  # downsampling of the first conv: 1 for 16-64 px, 2-4 for 128-256 px
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # dropout on the features before the linear head

    @model_validator(mode="after")
    def _groups_divide_widths(self) -> "ClassifierConfig":
        bad = [w for w in self.widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"classifier.norm_groups={self.norm_groups} must divide every width; {bad} do not")
        return self


class GateConfig(Section):
    """Thresholds that decide whether a generated dataset is published or rejected."""

    min_conditional_accuracy: float = Field(0.6, ge=0.0, le=1.0)  # share of samples the classifier assigns to the requested label
    max_fd_ratio: float = Field(4.0, gt=0.0)  # FD(generated, train) / FD(real val, train); 1 means as close as held-out real data
    max_near_duplicate_fraction: float = Field(0.05, ge=0.0, le=1.0)  # share of samples closer to a training image than the calibrated threshold
    min_cas_ratio: float | None = Field(None, ge=0.0)  # CAS accuracy / real-trained accuracy; None skips the check


class EvaluateConfig(Section):
    """How many samples to score, how each metric is estimated, and the gate."""

    num_samples: int = Field(1000, ge=16)  # generated images scored per evaluation
    seed: int = Field(0, ge=0)  # seeds every random choice of the stage (sampling, KID subsets)
    batch_size: int = Field(256, ge=1)  # images per forward pass when extracting features
    distance_chunk: int = Field(1024, ge=16)  # rows per block of pairwise distances; bounds memory
    kid_subsets: int = Field(100, ge=1)  # random subsets averaged for KID (Binkowski et al. 2018)
    kid_subset_size: int = Field(1000, ge=2)  # samples per KID subset; capped at the smaller set size
    pr_k: int = Field(3, ge=1, le=64)  # k of the k-NN radii for precision/recall (Kynkaanniemi et al. 2019)
    memorisation_space: Literal["features", "pixels"] = "features"  # space in which nearest training images are searched
    memorisation_quantile: float = Field(0.01, gt=0.0, lt=1.0)  # quantile of real val-to-train NN distances used as near-duplicate threshold
    inception_weights: str | None = None  # local TorchScript Inception file for FID; None skips Inception FID, never downloaded
    gate: GateConfig = GateConfig()  # the publish/reject thresholds
    classifier: ClassifierConfig = ClassifierConfig()  # the feature classifier architecture
