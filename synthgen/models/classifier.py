"""The feature classifier: a small pre-activation ResNet whose penultimate layer embeds images.

Its pooled features are the default space for every distance metric (FD, KID, precision/recall,
memorisation); its logits score conditional accuracy. Residual blocks follow He et al. 2016,
"Identity Mappings in Deep Residual Networks" (pre-activation), with GroupNorm (Wu & He 2018) so
features do not depend on the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from synthgen.config.evaluate import ClassifierConfig


class ResidualBlock(nn.Module):
    """Pre-activation basic block: norm-act-conv twice, plus a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class FeatureClassifier(nn.Module):
    """Images (N, 3, H, W) in [-1, 1], 16 <= H, W <= 256, to class logits; `features` is the embedding."""

    def __init__(self, cfg: ClassifierConfig, num_classes: int):
        super().__init__()
        assert num_classes >= 2, f"the classifier needs at least 2 classes, got {num_classes}"
        groups, widths = cfg.norm_groups, cfg.widths
        self.stem = nn.Conv2d(3, widths[0], 3, cfg.stem_stride, 1)
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for b in range(cfg.blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(ResidualBlock(c_in, c_out, stride, groups))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_norm = nn.GroupNorm(groups, c_in)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, num_classes)
        self.feature_dim = c_in
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, feature_dim): global average pool of the last stage."""
        assert x.ndim == 4 and x.shape[1] == 3, f"expected images (N, 3, H, W), got shape {tuple(x.shape)}"
        h = self.blocks(self.stem(x))
        return torch.nn.functional.silu(self.out_norm(h)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@dataclass(frozen=True)
class Embedding:
    """What the classifier says about a set of images."""

    features: torch.Tensor  # (N, feature_dim) float32, penultimate features
    logits: torch.Tensor  # (N, num_classes) float32

    @property
    def predicted(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


@torch.no_grad()
def embed(model: FeatureClassifier, images: torch.Tensor, batch_size: int = 256) -> Embedding:
    """Features and logits of images (N, 3, H, W) in [-1, 1], in eval mode, batch by batch, on CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, logits = [], []
    for batch in images.split(batch_size):
        f = model.features(batch.to(device))
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    model.train(was_training)
    return Embedding(torch.cat(feats), torch.cat(logits))
