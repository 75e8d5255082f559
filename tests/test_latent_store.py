"""The latent store: shard round trip, checksum refusal, and unit-variance scaled latents."""
import json

import numpy as np
import pytest
import torch

from synthgen.autoencoder import LatentStoreError, load_latents, scaled_latents
from synthgen.autoencoder.latent_store import write_latents
from synthgen.autoencoder.scale import estimate_scale_factor
from synthgen.autoencoder.trained import write_trained
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.models.autoencoder import Autoencoder
from synthgen.stages.encode_latents import encode_latents


pytestmark = pytest.mark.usefixtures("one_thread")


def test_shards_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(5, 2, 3, 3, generator=g), torch.rand(5, 2, 3, 3, generator=g)
    labels = torch.tensor([0, 1, 2, 1, 0])
    index = write_latents(tmp_path, mean, std, labels, scale_factor=0.5, model_sha256="ab" * 32, per_shard=2)
    assert [s["count"] for s in index["shards"]] == [2, 2, 1]
    latents = load_latents(tmp_path)
    assert torch.equal(latents.mean, mean) and torch.equal(latents.std, std) and torch.equal(latents.labels, labels)
    assert latents.mean.dtype == torch.float32 and latents.labels.dtype == torch.int64
    assert latents.scale_factor == 0.5 and latents.info["shape"] == [2, 3, 3] and len(latents) == 5
    assert torch.equal(scaled_latents(latents.mean, latents.std, 0.5, None), mean * 0.5)
    z = scaled_latents(latents.mean, latents.std, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(z, scaled_latents(latents.mean, latents.std, 0.5, torch.Generator().manual_seed(3)))


def test_corrupt_shard_is_refused(tmp_path):
    write_latents(tmp_path, torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2), torch.zeros(2), 1.0, "00" * 32)
    shard = tmp_path / "latents-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(LatentStoreError, match="sha256"):
        load_latents(tmp_path)
    with pytest.raises(LatentStoreError, match="latents.json"):
        load_latents(tmp_path / "missing")


def test_scale_factor_gives_unit_variance_latents(tmp_path):
    cfg = AutoencoderConfig.model_validate(
        {"model": {"base_channels": 8, "channel_mult": [1, 2], "downsample": 2, "latent_channels": 4, "norm_groups": 4}})
    torch.manual_seed(0)
    model = Autoencoder(cfg.model).eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(64, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=64)
    scale = estimate_scale_factor(model, pixels, sample_size=64, seed=0, batch_size=32, device=torch.device("cpu"))
    digest = write_trained(tmp_path / "ae", model, cfg, scale)
    index = encode_latents(tmp_path / "ae", pixels, labels, tmp_path / "latents", batch_size=32, device="cpu")
    assert index["model_sha256"] == digest and index["count"] == 64 and index["shape"] == [4, 8, 8]
    latents = load_latents(tmp_path / "latents")
    z = scaled_latents(latents.mean, latents.std, latents.scale_factor, torch.Generator().manual_seed(1))
    assert abs(z.std().item() - 1.0) < 0.05
    assert torch.equal(latents.labels, torch.as_tensor(labels))
    assert json.loads((tmp_path / "latents/latents.json").read_text())["dtype"] == "float32"
