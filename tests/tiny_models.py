"""Untrained but complete model folders (autoencoder + diffusion) for fast generation tests."""
from pathlib import Path

import torch

from synthgen.autoencoder import trained as ae_folder
from synthgen.config.autoencoder import AutoencoderConfig, AutoencoderModelConfig
from synthgen.config.diffusion import DiffusionConfig, ScheduleConfig, UNetConfig
from synthgen.ldm import trained as ldm_folder
from synthgen.models.autoencoder import Autoencoder
from synthgen.models.unet import UNet

CLASS_NAMES = ["red", "green", "blue"]


def write_tiny_models(folder: Path, seed: int = 0, self_conditioning: bool = False) -> tuple[str, str]:
    """16 px images, f = 2, 4 x 8 x 8 latents, 3 classes. Returns (diffusion_dir, autoencoder_dir)."""
    torch.manual_seed(seed)
    ae_cfg = AutoencoderConfig(model=AutoencoderModelConfig(base_channels=8, norm_groups=4))
    autoencoder = Autoencoder(ae_cfg.model)
    ae_sha = ae_folder.write_trained(folder / "autoencoder", autoencoder, ae_cfg, scale_factor=0.5)
    cfg = DiffusionConfig(
        model=UNetConfig(in_channels=4, sample_size=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                         attention_resolutions=(4,), attention_head_channels=8, norm_groups=4,
                         num_classes=len(CLASS_NAMES), self_conditioning=self_conditioning),
        schedule=ScheduleConfig(num_timesteps=100),
    )
    unet, guide = UNet(cfg.model), UNet(cfg.model)  # the guide: other random weights, so autoguidance shows
    ldm_folder.write_trained(folder / "diffusion", unet, unet, cfg, CLASS_NAMES, (4, 8, 8), ae_sha, 0.5,
                             guide.state_dict())
    return str(folder / "diffusion"), str(folder / "autoencoder")



def write_tiny_filter(folder: Path, calibration_pixels, seed: int = 0) -> str:
    """An untrained 3-class classifier folder (as stage train_filter writes one) for the tiny models' images.

    Its head is centred and scaled on `calibration_pixels` (uint8 (N, 16, 16, 3) draws of the tiny
    models), so its verdicts vary from draw to draw: arbitrary but fixed, each class's draws accepted
    a fifth to a half of the time at min_confidence 0.5, and some samples redrawn several times.
    """
    from synthgen.config.evaluate import ClassifierConfig
    from synthgen.evaluation.features import pixels_nchw, to_model_range
    from synthgen.evaluation.trained import write_trained
    from synthgen.models.classifier import FeatureClassifier

    torch.manual_seed(seed)
    cfg = ClassifierConfig(widths=(8, 16), blocks_per_stage=1, norm_groups=4, stem_stride=1, dropout=0.0)
    model = FeatureClassifier(cfg, len(CLASS_NAMES)).eval()
    with torch.no_grad():
        features = model.features(to_model_range(pixels_nchw(calibration_pixels)))
        mean, std = features.mean(0), features.std(0) + 1e-6
        weight = torch.randn(len(CLASS_NAMES), model.feature_dim) * 2 / std
        model.head.weight.copy_(weight)
        model.head.bias.copy_(-(weight @ mean))
    write_trained(folder, model, cfg, {"filter": "tiny, untrained"}, CLASS_NAMES, (16, 16), {"val_accuracy": None})
    return str(folder)
