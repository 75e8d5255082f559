"""Params sections of the latent diffusion model: network, noise schedule, loss, training and preview."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, create_model, field_validator, model_validator

from synthgen.config.base import Section, unkeyed
from synthgen.config.template import source_comments
from synthgen.config.training import TrainConfig
from synthgen.diffusion.guidance import Guidance
from synthgen.diffusion.losses import LossWeighting, TimestepSampling
from synthgen.diffusion.parameterization import PredictionType
from synthgen.diffusion.samplers import SAMPLERS
from synthgen.diffusion.timesteps import TimestepSpacing

SamplerName = Literal[tuple(SAMPLERS)]


class UNetConfig(Section):
    """Class-conditional UNet on latents (ADM-style; Dhariwal & Nichol 2021)."""

    in_channels: int = Field(4, ge=1, le=64)  # latent channels; train_diffusion sets it from the latent store
    sample_size: int = Field(8, ge=1, le=1024)  # latent height = width (places attention); train_diffusion sets it from the latent store
    base_channels: int = Field(16, ge=4, le=1024)  # width of the first level
    channel_mult: tuple[int, ...] = Field((1, 4, 4), min_length=1, max_length=6)  # width per level = base * mult
    num_res_blocks: int = Field(1, ge=1, le=8)  # ResNet blocks per level on the way down
    attention_resolutions: tuple[int, ...] = (4,)  # feature-map sizes with self-attention (the middle always has it)
    attention_head_channels: int = Field(32, ge=1, le=1024)  # channels per attention head
    norm_groups: int = Field(8, ge=1, le=128)  # GroupNorm groups; must divide every level's width
    num_classes: int = Field(12, ge=0, le=100_000)  # train_diffusion sets it to len(class_names); CFG null class = num_classes
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # dropout inside ResNet blocks (slows short runs down)
    scale_shift_norm: bool = True  # condition by GroupNorm scale/shift (ADM) instead of addition
    self_conditioning: bool = False  # also feed the model its previous x0 estimate (Chen et al. 2023, Analog Bits, Sec. 3.2)

    DERIVED: ClassVar[tuple[str, ...]] = ("in_channels", "sample_size", "num_classes")  # train_diffusion takes these from the data

    def derived_from_data(self, channels: int, size: int, num_classes: int) -> dict[str, int]:
        """The DERIVED fields as the latent store gives them (latent channels and side, the class count;
        an unconditional model, num_classes 0, stays unconditional)."""
        return {"in_channels": channels, "sample_size": size, "num_classes": num_classes if self.num_classes > 0 else 0}

    def disagreements(self, derived: dict[str, int]) -> list[str]:
        """One `key = value (params: value)` per DERIVED field a user set to something the data overrides
        (a field still at its class default is a placeholder, not a user value)."""
        return [f"{key} = {value} (params: {getattr(self, key)})" for key, value in derived.items()
                if getattr(self, key) != value and getattr(self, key) != type(self).model_fields[key].default]

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Feature-map size at each level: sample_size, sample_size/2, ..."""
        return tuple(self.sample_size // 2**i for i in range(len(self.channel_mult)))

    @model_validator(mode="after")
    def _check_shapes(self) -> UNetConfig:
        levels = len(self.channel_mult)
        if self.sample_size % 2 ** (levels - 1):
            raise ValueError(
                f"sample_size={self.sample_size} must be divisible by 2**(len(channel_mult)-1)={2 ** (levels - 1)}"
            )
        if any(m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult entries must be >= 1, got {self.channel_mult}")
        unreachable = set(self.attention_resolutions) - set(self.level_resolutions)
        if unreachable:
            raise ValueError(
                f"attention_resolutions {sorted(unreachable)} are not feature-map sizes; "
                f"allowed: {list(self.level_resolutions)}"
            )
        for width in {self.base_channels * m for m in self.channel_mult}:
            if width % self.norm_groups:
                raise ValueError(f"norm_groups={self.norm_groups} must divide every level width, not {width}")
        attended = [m for res, m in zip(self.level_resolutions, self.channel_mult) if res in self.attention_resolutions]
        for width in {self.base_channels * m for m in attended + [self.channel_mult[-1]]}:  # + the middle block
            if width % self.attention_head_channels:
                raise ValueError(
                    f"attention_head_channels={self.attention_head_channels} must divide the width {width} "
                    "of every attention layer (the attention_resolutions levels and the middle block)"
                )
        return self


class ScheduleConfig(Section):
    """Forward-process variance schedule (Ho et al. 2020; Nichol & Dhariwal 2021)."""

    kind: Literal["linear", "scaled_linear", "cosine", "rectified_flow"] = "cosine"  # beta schedule family; rectified_flow: x_t = (1 - t) x0 + t eps, rescaled (Liu et al. 2023)
    num_timesteps: int = Field(1000, ge=2, le=100_000)  # T, number of training noise levels
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)  # first beta (linear, scaled_linear)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)  # last beta (linear, scaled_linear)
    cosine_s: float = Field(0.008, ge=0.0, le=1.0)  # cosine offset s (cosine only)

    @model_validator(mode="after")
    def _check_betas(self) -> ScheduleConfig:
        if self.kind in ("linear", "scaled_linear") and self.beta_start >= self.beta_end:
            raise ValueError(f"beta_start={self.beta_start} must be below beta_end={self.beta_end}")
        return self


class SamplerSettings(Section):
    """How to draw samples: sampler, step grid and guidance (SamplerConfig adds the guidance method's and the
    samplers' own options)."""

    name: SamplerName = "dpm_solver_pp_2m"  # one of the registered samplers (stage sweep_samplers compares them)
    steps: int = Field(20, ge=1, le=100_000)  # number of timesteps visited (network calls differ per sampler)
    timestep_spacing: TimestepSpacing = "trailing"  # Lin et al. 2023, Table 2
    guidance_scale: float = Field(5.0, ge=0.0, le=100.0)  # classifier-free guidance w; 1 = conditional only
    guidance_interval: tuple[float, float] | None = (0.5, 10.0)  # guide only where sigma_t = sqrt((1 - abar) / abar) is in (low, high] (Kynkaanniemi et al. 2024); None = every step

    @property
    def guidance(self) -> Guidance:
        """The guidance method and its options (SamplerConfig's fields named as `Guidance`'s)."""
        return Guidance(**{name: getattr(self, name) for name in Guidance.__pydantic_fields__})

    @field_validator("guidance_interval")
    @classmethod
    def _interval_is_ordered(cls, interval: tuple[float, float] | None) -> tuple[float, float] | None:
        if interval is not None and not 0.0 <= interval[0] < interval[1]:
            raise ValueError("must be [low, high] noise levels with 0 <= low < high, or null to guide at every step")
        return interval


def option_fields(options: type, describe: str = "{comment}", taken: Any = ()) -> dict[str, Any]:
    """The fields of an options dataclass (a pydantic dataclass) as config fields, each described by
    `describe` filled with its one-line source comment; refuses a name in `taken`."""
    comments = source_comments(options)
    fields: dict[str, Any] = {}
    for name, info in options.__pydantic_fields__.items():
        if name in taken:
            raise TypeError(f"option {name!r} of {options.__name__} is already a sampler field; rename it")
        fields[name] = (Annotated[info.annotation, info], Field(description=describe.format(comment=comments[name])))
    return fields


def guidance_fields() -> dict[str, Any]:
    """The guidance method and its options (`diffusion.guidance.Guidance`) as flat fields."""
    return option_fields(Guidance, taken=SamplerSettings.model_fields)


def sampler_option_fields() -> dict[str, Any]:
    """Every registered sampler's options as flat fields, described "<sampler>: <the option's comment>".

    Samplers in alphabetical order of name, so the keys (and config dumps) do not depend on the registry's
    order: today eta (ddim), variance (ddpm), snr and corrector_steps (pc).
    """
    fields: dict[str, Any] = {}
    taken = {*SamplerSettings.model_fields, *guidance_fields()}
    for spec in sorted(SAMPLERS.values(), key=lambda s: s.name):
        fields.update(option_fields(spec.options, f"{spec.name}: {{comment}}", taken | set(fields)))
    return fields


SamplerConfig = create_model("SamplerConfig", __base__=SamplerSettings, __module__=__name__,
                             __doc__="Sampler settings, the guidance method's options and every sampler's own options.",
                             **guidance_fields(), **sampler_option_fields())


class PreviewConfig(SamplerConfig):
    """The sampler of the per-class grid drawn with the EMA weights after training."""

    images_per_class: int = Field(8, ge=1, le=64)  # columns of grid.png (one row per class)


# About 8-10 minutes on a 2-core CPU with native bf16 (AVX512-BF16). Batch 64 draws better shapes
# than batch 32 for twice the steps, in 0.7 times the time (docs/benchmarks.md).
DEFAULT_TRAIN = TrainConfig(
    steps=4000, batch_size=64, lr=1e-3, warmup_steps=100, grad_clip=1.0, ema_decay=0.999,
    checkpoint_every=1000, log_every=25, cpu_threads=0, cpu_bf16=True,
)


class DiffusionConfig(Section):
    """The latent diffusion model: network, schedule, training objective and the preview grid."""

    model: UNetConfig = UNetConfig()  # denoiser network (~1.0M parameters by default)
    schedule: ScheduleConfig = ScheduleConfig()  # forward process
    prediction_type: PredictionType = "v_prediction"  # network output: eps, v (Salimans & Ho 2022), x0, or flow u = eps - x0 (Liu et al. 2023)
    loss_weighting: LossWeighting = "min_snr"  # uniform (on v targets: EDM's lambda(sigma), Karras et al. 2022) or Min-SNR-gamma (Hang et al. 2023)
    min_snr_gamma: float = Field(5.0, gt=0.0, le=1e6)  # gamma of Min-SNR weighting
    timestep_sampling: TimestepSampling = "uniform"  # training t: uniform, t/T logit-normal (Esser et al. 2024) or ln sigma normal (EDM, Karras et al. 2022)
    timestep_logit_mean: float = Field(0.0, ge=-4.0, le=4.0)  # logit_normal: mean of logit(t/T); > 0 favours noisier t
    timestep_logit_std: float = Field(1.0, gt=0.0, le=4.0)  # logit_normal: std of logit(t/T)
    timestep_log_sigma_mean: float = Field(-1.2, ge=-10.0, le=10.0)  # log_normal_sigma: mean of ln sigma, sigma^2 = (1 - abar) / abar (EDM's P_mean)
    timestep_log_sigma_std: float = Field(1.2, gt=0.0, le=10.0)  # log_normal_sigma: std of ln sigma (EDM's P_std)
    p_uncond: float = Field(0.1, ge=0.0, le=1.0)  # label-drop probability for CFG training
    latents: Literal["sample", "mean"] = "sample"  # train on posterior samples z = mean + std * eps (LDM) or on the mean
    guide_fraction: float | None = Field(0.5, gt=0.0, lt=1.0)  # keep the EMA weights at this share of train.steps as guide.safetensors, the weaker model autoguidance extrapolates away from (Karras et al. 2024); None = none
    train: TrainConfig = unkeyed(DEFAULT_TRAIN)  # optimizer, steps, EMA, checkpoints (defaults sized for a 2-core CPU)
    preview: PreviewConfig = unkeyed(PreviewConfig())  # sampler and size of the per-class grid after training

    @property
    def guide_step(self) -> int | None:
        """The training step whose EMA weights become the autoguidance guide (None: no guide)."""
        return None if self.guide_fraction is None else max(1, round(self.guide_fraction * self.train.steps))

    @model_validator(mode="after")
    def _check_consistency(self) -> DiffusionConfig:
        if self.preview.steps > self.schedule.num_timesteps:
            raise ValueError(
                f"preview.steps={self.preview.steps} exceeds schedule.num_timesteps={self.schedule.num_timesteps}"
            )
        if self.model.num_classes == 0 and self.p_uncond > 0:
            raise ValueError("p_uncond must be 0 for an unconditional model (model.num_classes = 0)")
        if self.guide_fraction is None and self.preview.autoguidance_scale != 1.0:
            raise ValueError("preview.autoguidance_scale must be 1 when guide_fraction is null (no guide is kept)")
        if self.model.num_classes == 0 and self.preview.guidance_scale != 1.0:
            raise ValueError("preview.guidance_scale must be 1 for an unconditional model (model.num_classes = 0)")
        return self
