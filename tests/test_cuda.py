"""The CUDA paths: bf16 autocast, compile and channels_last against eager, per-sample generators, safetensors.

Marked `cuda` and skipped where no CUDA device is visible; `bench/gpu_check.py` runs them on a GPU box.
Untrained UNets output exactly zero (zero-initialised output and residual convs), which would hide
every difference, so each test first adds the same seeded noise to the weights (`perturb`).

Stated tolerances (each failure message carries the measured value):
- one forward under bf16 autocast against fp32: relative L2 error below 3e-2 (bf16 keeps 8 mantissa bits);
- compile + channels_last against eager: forward relative L2 error below 1e-2 in fp32 (cuDNN's TF32
  convolutions pick other algorithms for channels_last) and 3e-2 under bf16; sampled uint8 images
  differ by at most 1 level on average in fp32 and 3 under bf16;
- a sample's bytes for two batch sizes on the same GPU: identical.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthgen.autoencoder.trained import load_autoencoder
from synthgen.config.sample import SampleConfig
from synthgen.diffusion.noise import SampleGenerators, gaussian_like
from synthgen.generate.models import GenerationModels, load_models
from synthgen.generate.shard_sampler import generate_pixels
from synthgen.ldm.trained import WEIGHTS, load_diffusion
from synthgen.precision import bf16_autocast
from tests.tiny_models import CLASS_NAMES, write_tiny_models

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
LABELS = np.arange(6) % len(CLASS_NAMES)
SEEDS = [11, 12, 13, 14, 15, 16]


def perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Add the same seeded N(0, scale^2) noise to every parameter, whatever the device or memory format."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g).to(p.device))


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def sample_config(bf16: bool, sampler: str = "dpm_solver_pp_2m", **extra) -> SampleConfig:
    return SampleConfig(num_images=len(SEEDS), batch_size=len(SEEDS), micro_batch=4, device="cuda", bf16=bf16,
                        sampler={"name": sampler, "steps": 10, "guidance_scale": 2.0, "guidance_interval": None},
                        **extra)


def fresh_models(dirs: tuple[str, str], compile: bool, channels_last: bool) -> GenerationModels:
    """Models on CUDA, perturbed; load_models' per-process cache is bypassed so no test sees another's weights."""
    models = load_models.__wrapped__(*dirs, "cuda", compile, channels_last)
    perturb(models.diffusion.model)
    return models


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> tuple[str, str]:
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def eager(dirs) -> GenerationModels:
    return fresh_models(dirs, compile=False, channels_last=False)


@pytest.fixture(scope="module")
def compiled(dirs) -> GenerationModels:
    return fresh_models(dirs, compile=True, channels_last=True)


def network_inputs(rows: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(rows, 4, 8, 8, generator=g)
    t = torch.linspace(0, 99, rows).long()
    y = torch.arange(rows) % (len(CLASS_NAMES) + 1)  # the null label included
    return x.to(CUDA), t.to(CUDA), y.to(CUDA)


@torch.no_grad()
def test_bf16_autocast_runs_the_networks_in_bf16_within_tolerance(eager):
    x, t, y = network_inputs()
    unet = eager.diffusion.model
    fp32 = unet(x, t, y)
    with bf16_autocast(CUDA, True):
        bf16 = unet(x, t, y)
    assert bf16.dtype == torch.bfloat16
    assert relative_error(bf16, fp32) < 3e-2, f"UNet bf16 vs fp32 relative error {relative_error(bf16, fp32):.3g}"
    decoder = eager.autoencoder
    fp32_images = decoder.decode(x)
    with bf16_autocast(CUDA, True):
        bf16_images = decoder.decode(x)
    error = relative_error(bf16_images, fp32_images)
    assert error < 3e-2, f"decoder bf16 vs fp32 relative error {error:.3g}"


@torch.no_grad()
@pytest.mark.parametrize("bf16, forward_tolerance", [(False, 1e-2), (True, 3e-2)])
def test_compile_and_channels_last_match_eager_forward(eager, compiled, bf16, forward_tolerance):
    x, t, y = network_inputs(4)  # sample_config's micro_batch: the shape the sampler compiles
    with bf16_autocast(CUDA, bf16):
        reference, fast = eager.diffusion.model(x, t, y), compiled.diffusion.model(x, t, y)
    error = relative_error(fast, reference)
    assert error < forward_tolerance, f"compiled + channels_last vs eager (bf16={bf16}): relative error {error:.3g}"


@pytest.mark.parametrize("bf16, pixel_tolerance", [(False, 1.0), (True, 3.0)])
def test_compile_and_channels_last_give_the_eager_samples(eager, compiled, bf16, pixel_tolerance):
    cfg = sample_config(bf16)
    reference = generate_pixels(eager, LABELS, SEEDS, cfg).astype(np.int16)
    fast = generate_pixels(compiled, LABELS, SEEDS, cfg).astype(np.int16)
    diff = np.abs(fast - reference)
    assert diff.mean() <= pixel_tolerance, (
        f"bf16={bf16}: mean |difference| {diff.mean():.3f} levels (max {diff.max()}, "
        f"{(diff > 0).mean():.2%} of values differ)")


@pytest.mark.parametrize("bf16", [False, True])
def test_a_samples_bytes_do_not_depend_on_batch_size_on_one_gpu(compiled, bf16):
    """The stochastic DDPM sampler draws fresh per-sample noise every step: all of it must follow the seeds."""
    whole = generate_pixels(compiled, LABELS, SEEDS, sample_config(bf16, "ddpm"))
    split = np.concatenate([generate_pixels(compiled, LABELS[:1], SEEDS[:1], sample_config(bf16, "ddpm")),
                            generate_pixels(compiled, LABELS[1:], SEEDS[1:], sample_config(bf16, "ddpm"))])
    differing = int((whole != split).any(axis=(1, 2, 3)).sum())
    assert differing == 0, f"bf16={bf16}: {differing} of {len(SEEDS)} samples changed with the batch split 6 -> 1 + 5"


def test_per_sample_generators_draw_the_cpu_noise_on_cuda():
    like = torch.empty(len(SEEDS), 4, 8, 8)
    on_cpu = gaussian_like(like, SampleGenerators(SEEDS))
    on_cuda = gaussian_like(like.to(CUDA), SampleGenerators(SEEDS, CUDA))
    assert on_cuda.device.type == "cuda"
    assert torch.equal(on_cuda.cpu(), on_cpu)


def test_safetensors_weights_load_to_cuda_unchanged(dirs):
    diffusion_dir, autoencoder_dir = dirs
    on_cpu, on_cuda = load_diffusion(diffusion_dir, "cpu"), load_diffusion(diffusion_dir, CUDA)
    for (name, cpu_tensor), cuda_tensor in zip(on_cpu.model.state_dict().items(), on_cuda.model.state_dict().values()):
        assert cuda_tensor.device.type == "cuda", name
        assert torch.equal(cuda_tensor.cpu(), cpu_tensor), name
    assert on_cuda.schedule.betas.device.type == "cuda"
    direct = load_file(f"{diffusion_dir}/{WEIGHTS}", device="cuda")
    assert all(t.device.type == "cuda" for t in direct.values())
    assert all(torch.equal(direct[name].cpu(), t) for name, t in on_cpu.model.state_dict().items())
    autoencoder = load_autoencoder(autoencoder_dir, CUDA)
    assert all(p.device.type == "cuda" for p in autoencoder.model.parameters())
