"""Classifier-free guidance: label dropout, one batched guided forward, the model -> eps_fn adapter, and the
methods that curb CFG's overshoot (rescaled CFG, APG) and their params."""
import pytest
import torch

from synthgen.config import ConfigError, load_params
from synthgen.diffusion import NoiseSchedule, drop_labels, eps_fn_from_model, guided_prediction
from synthgen.diffusion.guidance import (CFG, Guidance, GuidanceMomentum, projected_guidance,
                                         rescaled_guidance)
from synthgen.diffusion.parameterization import PREDICTION_TYPES, convert, to_epsilon

NULL = 3
SCHEDULE = NoiseSchedule.linear(1000)


class RecordingModel:
    """A deterministic stand-in for a class-conditional network that logs every call's batch."""

    def __init__(self, prediction_type: str = "epsilon"):
        self.batches = []
        self.prediction_type = prediction_type

    def __call__(self, x_t, t, labels):
        self.batches.append((x_t.shape[0], labels.clone()))
        shift = labels.to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        return torch.tanh(x_t) * (1 + shift) + t.to(x_t.dtype).reshape_as(shift) / 1000


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 2, 3, 3, generator=g), torch.tensor([10, 200, 500, 999]), torch.tensor([0, 1, 2, 1])


def test_drop_labels_rate_and_null_value():
    labels = torch.randint(0, NULL, (20000,), generator=torch.Generator().manual_seed(0))
    dropped = drop_labels(labels, 0.1, NULL, torch.Generator().manual_seed(1))
    is_null = dropped == NULL
    # 20k Bernoulli(0.1) draws: SE of the rate = 0.0021; 0.01 is ~5 SE
    assert is_null.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert torch.equal(dropped[~is_null], labels[~is_null])


def test_drop_labels_extremes_and_reproducibility():
    labels = torch.arange(3).repeat(10)
    assert torch.equal(drop_labels(labels, 0.0, NULL, torch.Generator().manual_seed(0)), labels)
    assert bool((drop_labels(labels, 1.0, NULL, torch.Generator().manual_seed(0)) == NULL).all())
    a, b = (drop_labels(labels, 0.5, NULL, torch.Generator().manual_seed(7)) for _ in "ab")
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_labels(labels, 1.5, NULL, torch.Generator())


def test_scale_one_is_the_conditional_model_in_one_half_size_forward():
    x, t, labels = batch()
    model = RecordingModel()
    out = guided_prediction(model, x, t, labels, 1.0, NULL)
    assert torch.equal(out, model(x, t, labels))
    assert [size for size, _ in model.batches] == [4, 4]


def test_guidance_uses_one_batched_forward_with_null_half():
    x, t, labels = batch()
    model = RecordingModel()
    out = guided_prediction(model, x, t, labels, 3.0, NULL)
    assert len(model.batches) == 1
    size, seen_labels = model.batches[0]
    assert size == 8 and torch.equal(seen_labels, torch.cat([labels, torch.full_like(labels, NULL)]))
    cond, uncond = model(x, t, labels), model(x, t, torch.full_like(labels, NULL))
    torch.testing.assert_close(out, uncond + 3.0 * (cond - uncond))


def test_scale_zero_is_the_unconditional_model():
    x, t, labels = batch()
    model = RecordingModel()
    unconditional = model(x, t, torch.full_like(labels, NULL))
    torch.testing.assert_close(guided_prediction(model, x, t, labels, 0.0, NULL), unconditional)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_adapter_guides_in_eps_whatever_the_model_predicts(prediction_type):
    """Guiding the raw output then converting == converting each half then guiding eps (Ho & Salimans eq. 6)."""
    x, t, labels = batch(1)
    x = x.double()
    model = RecordingModel(prediction_type)
    eps_fn = eps_fn_from_model(model, SCHEDULE, prediction_type, labels, guidance_scale=2.5, null_label=NULL)
    abar = SCHEDULE.at(SCHEDULE.alphas_cumprod, t, x)

    def eps_of(lab):
        return convert(model(x, t, lab), x, abar, prediction_type, "epsilon")

    cond, uncond = eps_of(labels), eps_of(torch.full_like(labels, NULL))
    torch.testing.assert_close(eps_fn(x, t), uncond + 2.5 * (cond - uncond))


def test_adapter_without_labels_is_unconditional_and_checks_guidance_arguments():
    x, t, _ = batch()
    calls = []

    def unconditional(x_t, t_, labels):
        calls.append(labels)
        return torch.zeros_like(x_t)

    assert torch.equal(eps_fn_from_model(unconditional, SCHEDULE, "epsilon")(x, t), torch.zeros_like(x))
    assert calls == [None]
    with pytest.raises(ValueError, match="null_label"):
        eps_fn_from_model(unconditional, SCHEDULE, "epsilon", guidance_scale=2.0)


def test_guidance_interval_guides_only_the_samples_whose_noise_level_is_inside():
    """Kynkaanniemi et al. 2024: guided inside (low, high] of sigma_t, conditional outside, one forward."""
    x, t, labels = batch(2)
    x = x.double()
    sigma = SCHEDULE.sigmas[t]
    low, high = sigma[0].item(), sigma[2].item()  # (t=10, t=500]: t=200 and t=500 are inside
    model = RecordingModel()
    eps = eps_fn_from_model(model, SCHEDULE, "epsilon", labels, 3.0, NULL, guidance_interval=(low, high))(x, t)
    everywhere = eps_fn_from_model(model, SCHEDULE, "epsilon", labels, 3.0, NULL)(x, t)
    conditional = model(x, t, labels)
    inside = torch.tensor([False, True, True, False])
    torch.testing.assert_close(eps[inside], everywhere[inside])
    torch.testing.assert_close(eps[~inside], conditional[~inside])
    assert model.batches[0][0] == 8  # still one batched forward of 2B


# Rescaled CFG (Lin et al. 2024) and adaptive projected guidance (Sadat et al. 2024)

NO_GUIDE = {"autoguidance_scale": 1.0}  # these models have no autoguidance guide
METHODS = [Guidance(**NO_GUIDE), Guidance(guidance_method="cfg_rescale", **NO_GUIDE),
           Guidance(guidance_method="apg", **NO_GUIDE),
           Guidance(guidance_method="apg", apg_norm_threshold=0.5, apg_momentum=-0.5, **NO_GUIDE)]


def pair(seed=3):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(5, 4, 6, 6, generator=g, dtype=torch.float64)
    return cond, cond + 0.7 * torch.randn(5, 4, 6, 6, generator=g, dtype=torch.float64)


def cfg(cond, uncond, scale):
    return uncond + scale * (cond - uncond)


def per_sample_dot(a, b):
    return (a * b).sum(dim=(1, 2, 3))


def test_rescale_with_phi_zero_is_cfg_and_with_phi_one_keeps_the_conditional_std():
    cond, uncond = pair()
    torch.testing.assert_close(rescaled_guidance(cond, uncond, 5.0, 0.0), cfg(cond, uncond, 5.0))
    full = rescaled_guidance(cond, uncond, 5.0, 1.0)
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)))
    # phi mixes linearly between the two
    torch.testing.assert_close(rescaled_guidance(cond, uncond, 5.0, 0.7), 0.7 * full + 0.3 * cfg(cond, uncond, 5.0))


def test_apg_with_eta_one_no_threshold_no_momentum_is_cfg():
    cond, uncond = pair()
    torch.testing.assert_close(projected_guidance(cond, uncond, 5.0, eta=1.0), cfg(cond, uncond, 5.0))


def test_apg_update_has_no_component_parallel_to_d_cond_when_eta_is_zero():
    cond, uncond = pair()
    update = projected_guidance(cond, uncond, 7.0, eta=0.0) - cond
    assert per_sample_dot(update, cond).abs().max() < 1e-9 * per_sample_dot(cond, cond).min()
    assert per_sample_dot(update, update).min() > 0  # the orthogonal part is kept


def test_apg_norm_threshold_caps_the_update_and_leaves_small_ones_alone():
    cond, uncond = pair()
    delta = cond - uncond
    norms = delta.flatten(1).norm(dim=1)
    r = norms.median().item()
    capped = (projected_guidance(cond, uncond, 2.0, eta=1.0, norm_threshold=r) - cond).flatten(1).norm(dim=1)
    torch.testing.assert_close(capped, torch.clamp(norms, max=r))
    torch.testing.assert_close(projected_guidance(cond, uncond, 2.0, eta=1.0, norm_threshold=10 * norms.max().item()),
                               cfg(cond, uncond, 2.0))


def test_apg_momentum_accumulates_only_inside_the_interval_and_starts_fresh_per_run():
    cond, uncond = pair()
    delta = cond - uncond
    momentum = GuidanceMomentum(-0.5)
    first = momentum(delta)
    torch.testing.assert_close(first, delta)  # the running average starts at 0 (Sadat et al. 2024)
    inside = torch.tensor([True, False, True, False, True]).reshape(-1, 1, 1, 1)
    second = momentum(2 * delta, inside)
    torch.testing.assert_close(second[inside.flatten()], 1.5 * delta[inside.flatten()])
    torch.testing.assert_close(second[~inside.flatten()], delta[~inside.flatten()])
    with pytest.raises(ValueError, match="one sampler run"):
        momentum(delta[:2])
    assert Guidance(guidance_method="apg", apg_momentum=-0.5).momentum() is not Guidance(
        guidance_method="apg", apg_momentum=-0.5).momentum()
    assert Guidance(guidance_method="apg").momentum() is None and Guidance(apg_momentum=-0.5).momentum() is None


@pytest.mark.parametrize("guidance", METHODS, ids=lambda g: g.guidance_method)
def test_scale_one_is_conditional_only_for_every_method(guidance):
    cond, uncond = pair()
    torch.testing.assert_close(guidance.combine_x0(cond, uncond, 1.0, guidance.momentum()), cond)
    x, t, labels = batch(4)
    x = x.double()
    model = RecordingModel("v_prediction")
    eps = eps_fn_from_model(model, SCHEDULE, "v_prediction", labels, 1.0, NULL, guidance=guidance)(x, t)
    torch.testing.assert_close(eps, to_epsilon(model(x, t, labels), x, SCHEDULE.at(SCHEDULE.alphas_cumprod, t, x),
                                               "v_prediction"))
    assert [size for size, _ in model.batches] == [4, 4]  # the conditional half alone


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("guidance", METHODS[1:], ids=lambda g: f"{g.guidance_method}-{g.apg_momentum}")
def test_adapter_applies_the_x0_methods_to_denoised_predictions(prediction_type, guidance):
    """Rescale and APG act on x0 = D(x_t) from one batched forward, whatever the network predicts."""
    x, t, labels = batch(5)
    x = x.double()
    model = RecordingModel(prediction_type)
    eps_fn = eps_fn_from_model(model, SCHEDULE, prediction_type, labels, 4.0, NULL, guidance=guidance)
    abar = SCHEDULE.at(SCHEDULE.alphas_cumprod, t, x)
    cond, uncond = (convert(model(x, t, lab), x, abar, prediction_type, "sample")
                    for lab in (labels, torch.full_like(labels, NULL)))
    model.batches.clear()
    want = convert(guidance.combine_x0(cond, uncond, 4.0, guidance.momentum()), x, abar, "sample", "epsilon")
    torch.testing.assert_close(eps_fn(x, t), want)
    assert [size for size, _ in model.batches] == [8]


def test_x0_methods_keep_the_conditional_prediction_outside_the_guidance_interval():
    x, t, labels = batch(6)
    x = x.double()
    sigma = SCHEDULE.sigmas[t]
    model = RecordingModel("v_prediction")
    conditional = eps_fn_from_model(model, SCHEDULE, "v_prediction", labels)(x, t)
    for guidance in METHODS[1:]:
        eps = eps_fn_from_model(model, SCHEDULE, "v_prediction", labels, 5.0, NULL, (sigma[0].item(), sigma[2].item()),
                                guidance=guidance)(x, t)
        outside = torch.tensor([True, False, False, True])
        torch.testing.assert_close(eps[outside], conditional[outside])
        assert not torch.allclose(eps[~outside], conditional[~outside])


def test_x0_methods_are_deterministic_and_independent_of_the_batch():
    """Every norm, std and momentum is per sample: a sample's guidance does not depend on its neighbours."""
    x, t, labels = batch(7)
    x, t = x.double(), torch.full_like(t, 300)
    guidance = METHODS[-1]
    model = RecordingModel()

    def run(rows):
        eps_fn = eps_fn_from_model(model, SCHEDULE, "epsilon", labels[rows], 3.0, NULL, guidance=guidance)
        return [eps_fn(x[rows], t[rows]) for _ in range(3)]  # three calls: momentum at work

    whole, first_two = run(slice(None)), run(slice(0, 2))
    for a, b in zip(whole, first_two):
        torch.testing.assert_close(a[:2], b)
    assert all(torch.equal(a, b) for a, b in zip(whole, run(slice(None))))


@pytest.mark.parametrize("text,fragment", [
    ("guidance_method: pag", "sample.sampler.guidance_method = 'pag': Input should be 'cfg', 'cfg_rescale' or 'apg'"),
    ("apg_eta: 2", "sample.sampler.apg_eta = 2: Input should be less than or equal to 1"),
    ("guidance_rescale: -0.1", "sample.sampler.guidance_rescale = -0.1: Input should be greater than or equal to 0"),
    ("apg_norm_threshold: 0", "sample.sampler.apg_norm_threshold = 0: Input should be greater than 0"),
    ("apg_momentum: -1", "sample.sampler.apg_momentum = -1: Input should be greater than -1"),
    ("autoguidance_scale: 0.5", "sample.sampler.autoguidance_scale = 0.5: Input should be greater than or equal to 1"),
])
def test_config_refuses_a_bad_guidance_value_in_one_line(tmp_path, text, fragment):
    assert_refused_in_one_line(tmp_path, f"sample:\n  sampler:\n    {text}\n", fragment)


def assert_refused_in_one_line(tmp_path, params_text: str, fragment: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(params_text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text,fragment", [
    ("guide_fraction: 1.0", "diffusion.guide_fraction = 1.0: Input should be less than 1"),
    ("guide_fraction: null", "preview.autoguidance_scale must be 1 when guide_fraction is null"),
])
def test_config_refuses_a_guide_it_cannot_keep_in_one_line(tmp_path, text, fragment):
    assert_refused_in_one_line(tmp_path, f"diffusion:\n  {text}\n", fragment)


def test_the_sampler_config_builds_the_guidance_it_names(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  sampler: {guidance_method: apg, apg_norm_threshold: 3.5, apg_momentum: -0.25}\n")
    assert load_params(path).sample.sampler.guidance == Guidance(
        guidance_method="apg", apg_norm_threshold=3.5, apg_momentum=-0.25)
    assert load_params(path).diffusion.preview.guidance == Guidance()  # the default: rescaled CFG


def test_autoguidance_extrapolates_the_conditional_rows_away_from_the_guide():
    from synthgen.diffusion.guidance import autoguided

    def model(x, t, labels):
        return x + labels[:, None].float()

    def guide(x, t, labels):
        return torch.zeros_like(x)

    x, t = torch.ones(4, 3), torch.zeros(4, dtype=torch.long)
    labels = torch.tensor([0, 2, 5, 5])  # 5: the null label of CFG's unconditional half
    assert torch.equal(autoguided(model, guide, 5, 1.0)(x, t, labels), model(x, t, labels))
    out = autoguided(model, guide, 5, 2.0)(x, t, labels)
    assert torch.equal(out[:2], 2 * model(x, t, labels)[:2]) and torch.equal(out[2:], model(x, t, labels)[2:])
