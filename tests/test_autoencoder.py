"""KL autoencoder: shapes for every f, losses, overfitting, the stage's outputs and reloading them."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from synthgen.autoencoder import load_autoencoder
from synthgen.autoencoder.losses import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from synthgen.autoencoder.quality import psnr, ssim
from synthgen.config.autoencoder import AutoencoderConfig, AutoencoderModelConfig
from synthgen.imaging import decode_image, from_uint8
from synthgen.models.autoencoder import Autoencoder, DiagonalGaussian
from synthgen.models.discriminator import PatchDiscriminator
from synthgen.stages.train_autoencoder import train_autoencoder
from synthgen.training.checkpoint import CheckpointError


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random uint8 images (N, size, size, 3): a 4x4 colour grid upsampled bilinearly."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (fine * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("factor, mult", [(1, (1,)), (2, (1, 2)), (4, (1, 2, 2)), (8, (1, 1, 2, 2))])
def test_latent_and_output_shapes_for_every_factor(factor, mult):
    cfg = AutoencoderModelConfig(base_channels=8, channel_mult=mult, downsample=factor, latent_channels=3,
                                 norm_groups=4, attention=factor == 4)
    model = Autoencoder(cfg)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    posterior = model.encode(x)
    assert posterior.mean.shape == posterior.std.shape == (2, 3, 16 // factor, 16 // factor)
    recon, _ = model(x, torch.Generator().manual_seed(0))
    assert recon.shape == x.shape


def test_config_names_the_level_mismatch():
    with pytest.raises(ValidationError, match="downsample=4 needs exactly 3"):
        AutoencoderModelConfig(downsample=4, channel_mult=(1, 2))
    with pytest.raises(ValidationError, match="norm_groups"):
        AutoencoderModelConfig(base_channels=12, norm_groups=8)


def test_posterior_sampling_uses_the_generator_and_kl_is_closed_form():
    moments = torch.cat([torch.full((1, 2, 3, 3), 0.5), torch.full((1, 2, 3, 3), np.log(4.0))], dim=1)
    q = DiagonalGaussian(moments)
    a = q.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, q.sample(torch.Generator().manual_seed(1)))
    kl_per_dim = 0.5 * (0.25 + 4.0 - 1.0 - np.log(4.0))
    assert torch.allclose(q.kl(), torch.tensor([18 * kl_per_dim], dtype=torch.float32))


def test_gan_losses_and_adaptive_weight():
    assert hinge_d_loss(torch.tensor([2.0]), torch.tensor([-2.0])).item() == 0.0
    assert hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == 1.0
    assert hinge_g_loss(torch.tensor([1.0, 3.0])).item() == -2.0
    layer = torch.randn(4, requires_grad=True)
    rec = (layer * torch.randn(4)).pow(2).sum()
    assert torch.allclose(adaptive_gan_weight(rec, 2 * rec, layer), torch.tensor(0.5), rtol=1e-3)
    logits = PatchDiscriminator(3, channels=8, layers=2)(torch.zeros(1, 3, 32, 32))
    assert logits.shape == (1, 1, 6, 6)


def test_quality_metrics():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert torch.allclose(psnr(x, x + 0.02), torch.full((2,), 10 * np.log10(4 / 0.02**2)), rtol=1e-4)
    assert (ssim(x, -x) < 0.5).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    cfg = AutoencoderConfig.model_validate({
        "model": {"base_channels": 8, "channel_mult": [1, 2], "downsample": 2, "latent_channels": 4, "norm_groups": 4},
        "train": {"steps": 80, "batch_size": 8, "lr": 3e-3, "warmup_steps": 5, "ema_decay": 0.0,
                  "checkpoint_every": 40, "log_every": 10, "device": "cpu", "progress": False},
        "scale_sample_size": 16, "recon_images": 8,
    })
    pixels = toy_images(8, 16, seed=0)
    summary = train_autoencoder(cfg, pixels, np.arange(8) % 2, pixels[:4], out)
    return out, summary, pixels


def test_tiny_autoencoder_overfits_a_handful_of_images(trained):
    out, summary, _ = trained
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) / 3
    assert summary["psnr"] > 20


def test_stage_writes_its_outputs(trained):
    out, summary, _ = trained
    for name in ("model.safetensors", "model.manifest.json", "config.json", "scale_factor", "metrics.json",
                 "metrics.csv", "recon.png", "checkpoints/step-000000080.safetensors"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"psnr", "ssim", "l1", "kl", "latent_std_scaled", "scale_factor"}
    assert float((out / "scale_factor").read_text()) == metrics["scale_factor"] == summary["scale_factor"]
    grid = decode_image((out / "recon.png").read_bytes())
    assert grid.shape[0] >= 2 * 128  # one row of originals, one of reconstructions, enlarged to be visible


def test_load_autoencoder_rebuilds_from_the_folder_alone(trained):
    out, _, pixels = trained
    ae = load_autoencoder(out)
    x = from_uint8(pixels[:2])
    z = ae.encode(x).mode()
    assert torch.allclose(ae.decode(z * ae.scale_factor), ae.model.decode(z), atol=1e-5)
    assert psnr(x, ae.decode(z * ae.scale_factor).clamp(-1, 1)).mean() > 20


def test_tampered_weights_are_refused(trained, tmp_path):
    out, _, _ = trained
    copy = shutil.copytree(out, tmp_path / "copy")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-3] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_autoencoder(copy)
