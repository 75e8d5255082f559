"""Params for the evaluate stage: the feature classifier, the metrics and the quality gate."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from synthgen.config.base import Section, Seed
from synthgen.config.diffusion import SamplerName
from synthgen.config.training import TrainConfig
from synthgen.diffusion.samplers import SAMPLERS

Width = Annotated[int, Field(ge=8, le=1024)]


CLASSIFIER_TRAIN = TrainConfig(  # trains the default classifier on 32x32 shapes on a 2-core CPU in about a minute
    steps=600, batch_size=64, lr=2e-3, warmup_steps=50, weight_decay=0.05, checkpoint_every=200, log_every=25,
    cpu_threads=1)
CAS_TRAIN = TrainConfig(  # the schedule of both CAS classifiers: 1000 shapes images to ~99% real val accuracy
    steps=600, batch_size=64, lr=2e-3, warmup_steps=50, lr_decay="cosine", weight_decay=0.05, checkpoint_every=300,
    log_every=25, cpu_threads=1)
UTILITY_TRAIN = TrainConfig(  # every utility classifier: shapes need ~400 steps (at 300 the figures still swing by 0.1)
    steps=400, batch_size=64, lr=2e-3, warmup_steps=10, weight_decay=0.05, checkpoint_every=400, log_every=25,
    cpu_threads=1, progress=False)
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


class ClassifierConfig(Section):
    """The small ResNet whose penultimate layer is the feature space of every distance metric."""

    widths: tuple[Width, ...] = Field((16, 32, 64), min_length=1, max_length=6)  # channels per stage; each stage after the first halves the resolution
    blocks_per_stage: int = Field(2, ge=1, le=8)  # residual blocks in every stage
    norm_groups: int = Field(8, ge=1, le=64)  # GroupNorm groups; must divide every width
    stem_stride: Literal[1, 2, 4] = 2  # downsampling of the first conv: 1 for 16 px, 2 for 32-64 px, 4 for 128-256 px
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # dropout on the features before the linear head

    @model_validator(mode="after")
    def _groups_divide_widths(self) -> "ClassifierConfig":
        bad = [w for w in self.widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"classifier.norm_groups={self.norm_groups} must divide every width; {bad} do not")
        return self


class AugmentConfig(Section):
    """Random changes to each training image of every classifier (drawn from the loop's generator)."""

    shift: int = Field(2, ge=0, le=32)  # random translation of up to this many pixels each way (edge pixels repeat)
    hflip: bool = False  # random horizontal mirroring; leave off where mirroring changes the class (digits, text)


class CasConfig(Section):
    """Classification Accuracy Score: runs on synthetic images, and as many with the same schedules on as many real
    ones; each side's accuracy is the mean of its runs, which differ only in their seed."""

    samples: int = Field(1000, ge=16)  # training images of each CAS classifier (synthetic, and the real reference)
    train: TrainConfig = CAS_TRAIN  # schedule both CAS classifiers share
    runs: int = Field(3, ge=1, le=16)  # classifiers per side, run k seeded train.seed + k; CAS is their mean (one run's seed moves it by ~0.05)

    def schedules(self) -> list[TrainConfig]:
        """The schedule of each run: `train`, seeded train.seed + k for run k."""
        return [self.train.model_copy(update={"seed": self.train.seed + k}) for k in range(self.runs)]


class UtilityConfig(Section):
    """Augmentation utility: real val accuracy of a classifier trained on n real images, alone and with the synthetic set."""

    enabled: bool = True  # measure it in stage evaluate (two classifier runs per fraction)
    fractions: tuple[Fraction, ...] = Field((0.05, 1.0), min_length=1, max_length=8)  # shares of the real train split used as n, ascending; each costs two runs (~18 s each on the default data)
    train: TrainConfig = UTILITY_TRAIN  # schedule of every utility run; both runs of a fraction take the same steps

    @model_validator(mode="after")
    def _fractions_ascend(self) -> "UtilityConfig":
        if list(self.fractions) != sorted(set(self.fractions)):
            raise ValueError(f"utility.fractions must be distinct and ascending; got {list(self.fractions)}")
        return self


class GateConfig(Section):
    """Thresholds that decide whether a generated dataset is published or rejected."""

    min_conditional_accuracy: float = Field(0.85, ge=0.0, le=1.0)  # share of samples the classifier assigns to the requested label (quickstart: 0.94)
    max_fd_ratio: float = Field(1.5, gt=0.0)  # FD(generated, train) / FD(real val, train); 1 means as close as held-out real data (quickstart: 0.99)
    max_near_duplicate_fraction: float = Field(0.05, ge=0.0, le=1.0)  # share of samples closer to a training image than the calibrated threshold
    min_cas_ratio: float | None = Field(0.75, ge=0.0)  # CAS accuracy / real-trained accuracy (means of evaluate.cas.runs each); None skips the check (quickstart: 0.82)
    min_class_accuracy: float | None = Field(0.6, ge=0.0, le=1.0)  # conditional accuracy of every requested class; None skips the check (quickstart's worst: 0.79)


class SweepConfig(Section):
    """Stage sweep_samplers: quality and time of each sampler at each step count (other options from sample.sampler)."""

    samplers: tuple[SamplerName, ...] = Field(tuple(SAMPLERS), min_length=1)  # samplers compared
    steps: tuple[Annotated[int, Field(ge=1, le=100_000)], ...] = Field((5, 10, 20), min_length=1)  # step counts tried with each sampler
    per_class: int = Field(8, ge=1, le=4096)  # samples per class in every run; all runs share one x_T
    cpu_threads: int = Field(0, ge=0, le=1024)  # torch intra-op threads; 0 = torch's default (all cores)


RefillCriterion = Literal["near_duplicate"]


class RefillConfig(Section):
    """Releases: replace near-duplicates of training images with new samples (fresh seeds, same labels) and evaluate
    again; samples of the wrong class are the sample filter's to replace (sample.filter)."""

    enabled: bool = False  # after evaluating a release, regenerate its flagged samples until none are flagged or max_rounds
    criteria: tuple[RefillCriterion, ...] = Field(("near_duplicate",), min_length=1)  # what flags a sample: near_duplicate (of a training image); labels are screened by sample.filter
    max_rounds: int = Field(3, ge=1, le=100)  # refill-then-evaluate rounds at most; samples still flagged after the last stay

    @field_validator("criteria", mode="before")
    @classmethod
    def _misclassified_is_the_filters(cls, criteria: Any) -> Any:
        if isinstance(criteria, (list, tuple)) and "misclassified" in criteria:
            raise ValueError("misclassified is no longer a refill criterion: the sample filter (sample.filter) now "
                             "replaces samples of the wrong class while sampling; remove it")
        return criteria

    @model_validator(mode="after")
    def _criteria_once(self) -> "RefillConfig":
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError(f"refill.criteria names a criterion twice: {list(self.criteria)}")
        return self


class EvaluateConfig(Section):
    """How many samples to score, how each metric is estimated, and the gate."""

    num_samples: int = Field(1000, ge=16)  # generated images the metrics use (a seeded subset of a larger set); quality.parquet covers all
    seed: Seed = 0  # seeds every random choice of the evaluate stage (measured subset, FD/KID/CAS subsets)
    batch_size: int = Field(256, ge=1)  # images per forward pass when extracting features
    distance_chunk: int = Field(1024, ge=16)  # rows per block of pairwise distances; bounds memory
    kid_subsets: int = Field(100, ge=1)  # random subsets averaged for KID (Binkowski et al. 2018)
    kid_subset_size: int = Field(1000, ge=2)  # samples per KID subset; capped at the smaller set size
    pr_k: int = Field(3, ge=1, le=64)  # k of the k-NN radii for precision/recall (Kynkaanniemi et al. 2019)
    memorisation_space: Literal["features", "pixels"] = "features"  # space of the gated near-duplicate fraction (both are reported)
    memorisation_quantile: float = Field(0.01, gt=0.0, lt=1.0)  # quantile of real val-to-train NN distances used as near-duplicate threshold
    inception_weights: str | None = None  # local TorchScript Inception file for FID; None skips Inception FID, never downloaded
    histogram_bins: int = Field(30, ge=2, le=1000)  # bins of the nearest-neighbour distance histogram plot
    worst_pairs: int = Field(8, ge=0, le=100)  # closest generated-training pairs shown in the report
    gallery_per_class: int = Field(8, ge=1, le=64)  # samples per class in the grid PNG and the report
    gate: GateConfig = GateConfig()  # the publish/reject thresholds
    classifier: ClassifierConfig = ClassifierConfig()  # the feature classifier architecture
    classifier_train: TrainConfig = CLASSIFIER_TRAIN  # schedule of the feature classifier (stage train_classifier)
    augment: AugmentConfig = AugmentConfig()  # augmentation of every classifier's training images
    cas: CasConfig = CasConfig()  # the Classification Accuracy Score runs
    utility: UtilityConfig = UtilityConfig()  # does adding the synthetic set to real training data raise real val accuracy
    classifier_workers: int = Field(0, ge=0, le=64)  # processes training independent classifiers at once (evaluator and CAS reference; CAS and utility): same results; 0 = cores / their cpu_threads, 1 = one by one
    sweep: SweepConfig = SweepConfig()  # the sampler sweep behind the quality-versus-steps plot
    refill: RefillConfig = RefillConfig()  # releases only: regenerate flagged samples with new seeds until the quota is clean
