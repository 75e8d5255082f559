"""The class-conditional latent UNet: shapes, conditioning, graph capture, and that it can learn."""
import pydantic
import pytest
import torch

from synthgen.config.diffusion import DiffusionConfig, UNetConfig
from synthgen.diffusion import DiffusionLoss, NoiseSchedule, drop_labels, eps_fn_from_model, sample
from synthgen.models.unet import UNet, timestep_embedding

TINY = dict(base_channels=16, channel_mult=(1,), attention_resolutions=(8,), attention_head_channels=16,
            norm_groups=4, num_classes=2, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replace the zero-initialised output layers so outputs depend on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("overrides", [
    {},
    dict(base_channels=16, channel_mult=(1, 2), num_res_blocks=2, attention_resolutions=(8, 4),
         attention_head_channels=8),
    dict(base_channels=8, channel_mult=(1,), attention_resolutions=(), attention_head_channels=8, norm_groups=4,
         scale_shift_norm=False),
    dict(in_channels=3, sample_size=16, base_channels=8, channel_mult=(1, 2, 2, 2), attention_resolutions=(2,),
         attention_head_channels=8, norm_groups=4, num_classes=0),
])
def test_output_has_the_input_shape(overrides):
    config = UNetConfig(**overrides)
    model = UNet(config).eval()
    n = config.sample_size
    x = torch.randn(3, config.in_channels, n, n)
    labels = torch.tensor([0, config.num_classes - 1, config.num_classes]) if config.num_classes else None
    out = model(x, torch.tensor([0, 500, 999]), labels)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_default_config_suits_a_small_cpu():
    model = UNet(DiffusionConfig().model)
    assert 500_000 <= model.num_parameters <= 2_000_000
    assert model(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 10])).shape == (2, 4, 8, 8)


def test_fresh_model_predicts_zero_so_training_starts_from_the_identity_residuals():
    model = UNet(UNetConfig(**TINY))
    assert torch.equal(model(torch.randn(2, 4, 8, 8), torch.tensor([5, 6]), torch.tensor([0, 1])),
                       torch.zeros(2, 4, 8, 8))


def test_time_and_class_both_condition_the_output():
    model = randomise(UNet(UNetConfig(**TINY)).eval())
    x = torch.randn(1, 4, 8, 8)
    base = model(x, torch.tensor([10]), torch.tensor([0]))
    assert not torch.allclose(base, model(x, torch.tensor([900]), torch.tensor([0])))
    assert not torch.allclose(base, model(x, torch.tensor([10]), torch.tensor([1])))
    assert not torch.allclose(base, model(x, torch.tensor([10]), torch.tensor([2])))  # the null class


def test_samples_in_a_batch_do_not_interact():
    model = randomise(UNet(UNetConfig(**TINY)).eval())
    x, t, labels = torch.randn(4, 4, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 1])
    alone = torch.cat([model(x[i : i + 1], t[i : i + 1], labels[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(model(x, t, labels), alone, atol=1e-5, rtol=1e-4)


def test_conditional_model_requires_labels():
    with pytest.raises(ValueError, match="null class"):
        UNet(UNetConfig(**TINY))(torch.randn(1, 4, 8, 8), torch.tensor([1]))


def test_timestep_embedding_is_sinusoidal():
    emb = timestep_embedding(torch.tensor([0, 7]), 6)
    assert emb.shape == (2, 6)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    freqs = torch.tensor([1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3)])
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))


@pytest.mark.parametrize("overrides,fragment", [
    (dict(attention_resolutions=(3,)), r"allowed: \[8, 4, 2\]"),
    (dict(base_channels=20), "norm_groups=8 must divide"),
    (dict(sample_size=6), "divisible by"),
    (dict(attention_head_channels=24), "attention_head_channels=24 must divide"),
    (dict(dropout=1.0), "dropout"),
    (dict(base_channels=8, channel_mult=(1, 2, 2), norm_groups=4), "the middle block"),
])
def test_config_rejects_impossible_shapes_with_the_key_named(overrides, fragment):
    with pytest.raises(pydantic.ValidationError, match=fragment):
        UNetConfig(**overrides)


def test_diffusion_config_rejects_guidance_without_classes_and_too_many_steps():
    with pytest.raises(pydantic.ValidationError, match="p_uncond must be 0"):
        DiffusionConfig(model=UNetConfig(num_classes=0))
    with pytest.raises(pydantic.ValidationError, match="preview.steps"):
        DiffusionConfig(schedule={"num_timesteps": 100}, preview={"steps": 200})
    with pytest.raises(pydantic.ValidationError, match="'linear', 'scaled_linear', 'cosine' or 'rectified_flow'"):
        DiffusionConfig(schedule={"kind": "sigmoid"})


def test_forward_captures_as_one_graph_without_host_syncs():
    """fullgraph=True raises on any graph break (.item(), data-dependent Python branches)."""
    model = randomise(UNet(UNetConfig(**TINY)).eval())
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=False)
    x, t, labels = torch.randn(2, 4, 8, 8), torch.tensor([3, 900]), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, labels), model(x, t, labels))


def test_tiny_unet_overfits_a_handful_of_latents_and_samples():
    torch.manual_seed(0)  # parameter init only; all diffusion randomness comes from `g`
    model = UNet(UNetConfig(**TINY))
    schedule = NoiseSchedule.linear(1000)
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(4, 4, 8, 8, generator=g).repeat(4, 1, 1, 1)
    labels = torch.tensor([0, 1, 0, 1]).repeat(4)

    def held_out_loss() -> float:  # the same t and noise before and after training
        with torch.no_grad():
            return DiffusionLoss(schedule)(model, latents, labels, torch.Generator().manual_seed(1)).item()

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        batch_labels = drop_labels(labels, 0.1, model.null_label, g)
        loss = DiffusionLoss(schedule, "epsilon", "min_snr", 5.0)(model, latents, batch_labels, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    # a zero-output model scores E||eps||^2 = 1; 60 Adam steps reach ~0.29 (seeds 0-3: 0.288-0.300)
    assert before == pytest.approx(1.0, abs=0.1)
    assert after < before / 2.5

    eps_fn = eps_fn_from_model(model.eval(), schedule, "epsilon", torch.tensor([0, 1]), 2.0, model.null_label)
    x0 = sample(eps_fn, torch.randn(2, 4, 8, 8, generator=g), schedule=schedule, sampler="ddim", steps=5)
    assert x0.shape == (2, 4, 8, 8) and torch.isfinite(x0).all()


class SelfConditionedRecorder:
    """A network on (x_t, x0 estimate) along channels that logs the estimate half of every input."""

    def __init__(self):
        self.estimates = []

    def __call__(self, x, t, labels):
        latent, estimate = x.chunk(2, dim=1)
        self.estimates.append(estimate.clone())
        return torch.tanh(latent) + 0.1 * estimate


def test_self_conditioned_unet_reads_the_estimate_and_predicts_the_latent_channels():
    model = randomise(UNet(UNetConfig(**{**TINY, "self_conditioning": True})).eval())
    x, t, labels = torch.randn(2, 4, 8, 8), torch.tensor([3, 900]), torch.tensor([0, 2])
    with torch.no_grad():
        blank = model(torch.cat([x, torch.zeros_like(x)], 1), t, labels)
        informed = model(torch.cat([x, torch.ones_like(x)], 1), t, labels)
    assert blank.shape == x.shape and not torch.equal(blank, informed)


def test_self_conditioning_trains_half_the_batches_on_the_nets_own_estimate():
    """Chen et al. 2023, Alg. 1: with probability 1/2 the estimate is the net's x0 from (x_t, 0), else 0."""
    schedule, x0 = NoiseSchedule.linear(1000), torch.randn(3, 4, 8, 8)
    loss = DiffusionLoss(schedule, "epsilon", self_conditioning=True)
    fed_back = 0
    for seed in range(8):
        net = SelfConditionedRecorder()
        value = loss(net, x0, None, torch.Generator().manual_seed(seed))
        assert torch.isfinite(value) and torch.count_nonzero(net.estimates[0]) == 0
        if len(net.estimates) == 2:  # the second pass sees the first's x0, not 0
            fed_back += 1
            assert torch.count_nonzero(net.estimates[1]) > 0
    assert 0 < fed_back < 8  # a coin per batch (seeds 0-7)
    # without self-conditioning the net sees the latent alone
    plain = []
    DiffusionLoss(schedule)(lambda x, t, labels: plain.append(x.shape) or x, x0, None, torch.Generator())
    assert plain == [x0.shape]


def test_a_self_conditioned_sampler_run_feeds_back_its_guided_x0():
    from synthgen.diffusion.parameterization import to_x0

    schedule, net = NoiseSchedule.linear(1000), SelfConditionedRecorder()
    labels, null = torch.tensor([0, 1]), 2
    eps_fn = eps_fn_from_model(net, schedule, "epsilon", labels, 2.0, null, self_conditioning=True)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([700, 700])
    eps = eps_fn(x, t)
    assert torch.count_nonzero(net.estimates[0]) == 0  # the first call has no estimate yet
    eps_fn(x, t)
    abar = schedule.at(schedule.alphas_cumprod, t, x)
    expected = to_x0(eps, x, abar, "epsilon")  # the guided prediction of the first call, as x0
    torch.testing.assert_close(net.estimates[-1].chunk(2)[0], expected)  # conditional half of the CFG batch
    torch.testing.assert_close(net.estimates[-1].chunk(2)[1], expected)  # and the unconditional half
    fresh = SelfConditionedRecorder()
    eps_fn_from_model(fresh, schedule, "epsilon", labels, 2.0, null, self_conditioning=True)(x, t)
    assert torch.count_nonzero(fresh.estimates[0]) == 0  # state lives in one eps_fn (one sampler run)
