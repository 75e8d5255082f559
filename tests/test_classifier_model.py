"""The feature classifier: shapes across resolutions, batch independence, and that it can learn."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from synthgen.config.evaluate import ClassifierConfig
from synthgen.models.classifier import FeatureClassifier, embed

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = ClassifierConfig(widths=(8, 16), blocks_per_stage=1, norm_groups=4, dropout=0.0)


def images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("size, stem_stride", [(16, 1), (32, 1), (64, 2), (256, 4)])
def test_logits_and_features_shapes(size, stem_stride):
    cfg = TINY.model_copy(update={"stem_stride": stem_stride})
    model = FeatureClassifier(cfg, num_classes=5)
    x = images(2, size, seed=0)
    assert model(x).shape == (2, 5)
    assert model.features(x).shape == (2, 16) == (2, model.feature_dim)


def test_features_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = FeatureClassifier(TINY, num_classes=3).train()
    x = images(8, 16, seed=1)
    whole, split = embed(model, x, batch_size=8), embed(model, x, batch_size=3)
    torch.testing.assert_close(whole.features, split.features, rtol=1e-5, atol=1e-5)
    assert whole.logits.shape == (8, 3) and whole.predicted.shape == (8,)
    assert model.training  # embed restores the mode it found


def test_tiny_classifier_overfits_a_few_images():
    torch.manual_seed(0)
    model = FeatureClassifier(TINY, num_classes=4)
    x, y = images(8, 16, seed=2), torch.arange(4).repeat(2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    assert torch.equal(embed(model, x).predicted, y)


def test_wrong_input_and_config_are_rejected_clearly():
    model = FeatureClassifier(TINY, num_classes=2)
    with pytest.raises(AssertionError, match="expected images"):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValidationError, match="norm_groups=8 must divide every width"):
        ClassifierConfig(widths=(12, 24), norm_groups=8)
    with pytest.raises(ValidationError, match="stem_stride"):
        ClassifierConfig(stem_stride=3)
