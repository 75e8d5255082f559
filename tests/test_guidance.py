"""Classifier-free guidance: label dropout, one batched guided forward, and the model -> eps_fn adapter."""
import pytest
import torch

from synthgen.diffusion import NoiseSchedule, drop_labels, eps_fn_from_model, guided_prediction
from synthgen.diffusion.parameterization import PREDICTION_TYPES, convert

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
