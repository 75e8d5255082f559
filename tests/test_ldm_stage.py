"""The train_diffusion stage and its loader: outputs, round trip, exact resume, tamper refusal, overfitting."""
import json

import pytest
import torch
from PIL import Image

from synthgen.autoencoder import load_latents
from synthgen.autoencoder.latent_store import write_latents
from synthgen.autoencoder.trained import write_trained as write_autoencoder
from synthgen.config.autoencoder import AutoencoderConfig, AutoencoderModelConfig
from synthgen.config.diffusion import DiffusionConfig, PreviewConfig, ScheduleConfig, UNetConfig
from synthgen.config.training import TrainConfig
from synthgen.diffusion import sample
from synthgen.errors import SynthgenError
from synthgen.ldm import load_diffusion
from synthgen.models.autoencoder import Autoencoder
from synthgen.stages.train_diffusion import GRID_MIN_PIXELS, DiffusionObjective, train_diffusion
from synthgen.training.checkpoint import CheckpointError
from synthgen.training.rng import seeded_cpu_rng

CLASSES = ["red", "green", "blue"]
LATENT = (4, 8, 8)  # a tiny f=2 autoencoder on 16 px images
TINY = DiffusionConfig(
    model=UNetConfig(base_channels=16, channel_mult=(1,), attention_resolutions=(), attention_head_channels=16,
                     norm_groups=4, dropout=0.0, num_classes=10),  # num_classes is refilled from CLASSES
    train=TrainConfig(steps=6, batch_size=8, lr=2e-3, warmup_steps=2, ema_decay=0.9, checkpoint_every=2,
                      log_every=1, device="cpu", cpu_threads=1, progress=False),
    preview=PreviewConfig(steps=4, images_per_class=2),
)


def with_overrides(cfg: DiffusionConfig, **sections) -> DiffusionConfig:
    data = cfg.model_dump()
    for name, values in sections.items():
        data[name] = {**data[name], **values} if isinstance(values, dict) else values
    return DiffusionConfig.model_validate(data)


def loss_column(folder) -> list[float]:
    rows = [line.split(",") for line in (folder / "metrics.csv").read_text().splitlines()]
    return [float(r[rows[0].index("loss")]) for r in rows[1:]]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(folder, count: int, seed: int = 0):
    """A random tiny autoencoder folder and a latent store of `count` class-patterned latents encoded 'by' it."""
    ae_cfg = AutoencoderConfig(model=AutoencoderModelConfig(base_channels=8, channel_mult=(1, 2), norm_groups=4))
    with seeded_cpu_rng(seed):
        autoencoder = Autoencoder(ae_cfg.model)
    digest = write_autoencoder(folder / "autoencoder", autoencoder, ae_cfg, scale_factor=0.5)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(CLASSES)
    patterns = 2 * torch.randn(len(CLASSES), *LATENT, generator=g)
    mean = patterns[labels] + 0.1 * torch.randn(count, *LATENT, generator=g)
    std = torch.full((count, *LATENT), 0.01)
    write_latents(folder / "latents", mean, std, labels, scale_factor=0.5, model_sha256=digest)
    return folder / "latents", folder / "autoencoder"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"), count=24)


@pytest.fixture(scope="module")
def trained_dir(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion")
    train_diffusion(TINY, *inputs, CLASSES, out)
    return out


def test_stage_writes_every_output(trained_dir):
    for name in ["model.safetensors", "model.manifest.json", "model_raw.safetensors", "model_raw.manifest.json",
                 "schedule.safetensors", "schedule.manifest.json", "config.json", "metrics.json", "metrics.csv",
                 "grid.png"]:
        assert (trained_dir / name).is_file(), name
    assert sorted(p.name for p in (trained_dir / "checkpoints").glob("*.safetensors"))[-1] == "step-000000006.safetensors"
    config = json.loads((trained_dir / "config.json").read_text())
    model = config["diffusion"]["model"]
    assert (model["num_classes"], model["in_channels"], model["sample_size"]) == (3, 4, 8)  # filled from the data
    assert config["class_names"] == CLASSES and config["latent_shape"] == list(LATENT)
    assert config["diffusion"]["train"] == TINY.train.model_dump(mode="json")
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["final_loss"] > 0 and metrics["images_per_s"] > 0
    assert abs(metrics["data_latent_std"] - 1.0) < 0.5 and len(metrics["sample_latent_channel_std"]) == 4
    rows = (trained_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 6
    scale = GRID_MIN_PIXELS // 16
    with Image.open(trained_dir / "grid.png") as grid:  # 3 class rows of 2 images of 16 px, 2 px padding
        assert grid.size == ((2 * 18 + 2) * scale, (3 * 18 + 2) * scale)


def test_load_diffusion_round_trip(trained_dir):
    trained = load_diffusion(trained_dir)
    manifest = json.loads((trained_dir / "model.manifest.json").read_text())
    assert trained.sha256 == manifest["sha256"]
    assert (trained.latent_shape, trained.num_classes, trained.null_label) == (LATENT, 3, 3)
    assert trained.class_names == CLASSES and trained.prediction_type == TINY.prediction_type
    assert not trained.model.training and not any(p.requires_grad for p in trained.model.parameters())
    assert trained.schedule.num_timesteps == 1000 and trained.config.model.num_classes == 3
    raw = load_diffusion(trained_dir, weights="model_raw.safetensors")
    assert any(not torch.equal(a, b) for a, b in zip(trained.model.parameters(), raw.model.parameters()))
    x_T = torch.randn(3, *LATENT, generator=torch.Generator().manual_seed(0))
    eps_fn = trained.eps_fn(torch.tensor([0, 1, 2]), guidance_scale=2.0)
    z = sample(eps_fn, x_T, schedule=trained.schedule, sampler="ddim", steps=3)
    assert z.shape == x_T.shape and torch.isfinite(z).all()


def test_resume_after_a_crash_reaches_bit_identical_weights(inputs, tmp_path, monkeypatch):
    train_diffusion(TINY, *inputs, CLASSES, tmp_path / "straight")
    original = DiffusionObjective.__call__

    def crash_at_step_3(self, nets, batch, generator, step):
        if step == 3:
            raise KeyboardInterrupt("killed")
        return original(self, nets, batch, generator, step)

    monkeypatch.setattr(DiffusionObjective, "__call__", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(TINY, *inputs, CLASSES, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    monkeypatch.setattr(DiffusionObjective, "__call__", original)
    summary = train_diffusion(TINY, *inputs, CLASSES, tmp_path / "resumed")
    assert summary["resumed_from"] == 3  # the guide's checkpoint: guide_fraction 0.5 of 6 steps
    for name in ["model.safetensors", "model_raw.safetensors", "guide.safetensors", "grid.png"]:
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name
    assert loss_column(tmp_path / "straight") == loss_column(tmp_path / "resumed")


def test_the_guide_is_the_ema_of_the_kept_checkpoint_at_its_step(trained_dir):
    from synthgen.training.checkpoint import checkpoint_name, load_checkpoint, load_verified

    assert TINY.guide_step == 3 and TINY.train.keep_checkpoints == 2
    kept = sorted(p.name for p in (trained_dir / "checkpoints").glob("step-*.safetensors"))
    assert kept == [checkpoint_name(3), checkpoint_name(4), checkpoint_name(6)]  # step 3 outlives the pruning
    guide, _, _ = load_verified(trained_dir / "guide.safetensors")
    ema = load_checkpoint(trained_dir / "checkpoints" / checkpoint_name(3)).ema
    assert guide.keys() == ema.keys() and all(torch.equal(guide[k], ema[k]) for k in ema)
    trained = load_diffusion(trained_dir)
    assert trained.guide is not None and trained.guide_sha256 is not None


def test_without_a_guide_autoguided_sampling_is_one_clear_line(inputs, tmp_path):
    from synthgen.diffusion.guidance import Guidance

    no_guide = TINY.model_copy(update={"guide_fraction": None,
                                       "preview": TINY.preview.model_copy(update={"autoguidance_scale": 1.0})})
    train_diffusion(no_guide, *inputs, CLASSES, tmp_path)
    trained = load_diffusion(tmp_path)
    assert trained.guide is None and not (tmp_path / "guide.safetensors").exists()
    with pytest.raises(SynthgenError, match="autoguidance_scale = 2.0 needs the guide snapshot guide.safetensors"):
        trained.eps_fn(torch.tensor([0]), 5.0, guidance=Guidance(autoguidance_scale=2.0))
    trained.eps_fn(torch.tensor([0]), 5.0, guidance=Guidance(autoguidance_scale=1.0))  # off: no guide needed


def test_tampered_weights_are_refused(trained_dir, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for path in trained_dir.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_diffusion(folder)


def test_latents_of_another_autoencoder_are_refused(inputs, tmp_path):
    other_latents, _ = make_inputs(tmp_path, count=6, seed=1)
    with pytest.raises(SynthgenError, match="re-run encode_latents"):
        train_diffusion(TINY, other_latents, inputs[1], CLASSES, tmp_path / "out")


def test_labels_beyond_the_class_names_are_refused(inputs, tmp_path):
    with pytest.raises(SynthgenError, match="class names"):
        train_diffusion(TINY, *inputs, CLASSES[:2], tmp_path / "out")


OBJECTIVES = {  # the default v-prediction; EDM's density of ln sigma (Karras et al. 2022); rectified flow (Liu et al. 2023)
    "v_min_snr": {},
    "edm": dict(timestep_sampling="log_normal_sigma", loss_weighting="uniform"),
    "rectified_flow": dict(schedule={"kind": "rectified_flow"}, prediction_type="flow", loss_weighting="uniform",
                           timestep_sampling="logit_normal"),
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_a_tiny_unet_overfits_a_handful_of_latents(tmp_path, objective):
    latents_dir, autoencoder_dir = make_inputs(tmp_path, count=6)
    cfg = with_overrides(TINY, train=dict(steps=300, batch_size=6, lr=3e-3, warmup_steps=10, ema_decay=0.0,
                                          checkpoint_every=300, log_every=30),
                         p_uncond=0.0, **{"prediction_type": "v_prediction", **OBJECTIVES[objective]})
    train_diffusion(cfg, latents_dir, autoencoder_dir, CLASSES, tmp_path / "out")
    loss = loss_column(tmp_path / "out")
    assert loss[-1] < 0.5 * loss[0], loss
    # each class's sample lands nearest that class's training latents (class patterns are ~1.4 RMS apart)
    trained = load_diffusion(tmp_path / "out")
    labels = torch.tensor([0, 1, 2])
    x_T = torch.randn(3, *LATENT, generator=torch.Generator().manual_seed(1))
    z = trained.sample_latents(labels, cfg.preview.model_copy(update={"steps": 20, "guidance_scale": 1.0}), x_T)
    data = load_latents(latents_dir)
    targets = torch.stack([data.mean[data.labels == c].mean(0) for c in range(3)]) * data.scale_factor
    distance = (z[:, None] - targets[None]).flatten(2).pow(2).mean(-1).sqrt()  # (sample, class) RMS
    assert torch.equal(distance.argmin(1), labels), distance
