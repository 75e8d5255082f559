"""Learning-rate schedule of the shared training loop."""
from __future__ import annotations

import math

COSINE_FLOOR = 0.1  # cosine decay ends at this share of the peak rate (as nanoGPT's min_lr = lr / 10)


def warmup_lr(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warmup to `base_lr` over `warmup_steps`, constant afterwards (Goyal et al. 2017, Sec. 2.2).

    `step` counts completed optimizer steps, so the first update uses base_lr / warmup_steps.
    """
    if warmup_steps <= 0:
        return base_lr
    return base_lr * min(1.0, (step + 1) / warmup_steps)


def learning_rate(step: int, base_lr: float, warmup_steps: int, total_steps: int, decay: str) -> float:
    """`warmup_lr`, then for decay="cosine" a half cosine from `base_lr` down to COSINE_FLOOR * base_lr at
    `total_steps` (Loshchilov & Hutter 2017, Eq. 5, one cycle without restarts)."""
    lr = warmup_lr(step, base_lr, warmup_steps)
    if decay == "constant" or step < warmup_steps:
        return lr
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    floor = COSINE_FLOOR * base_lr
    return floor + 0.5 * (base_lr - floor) * (1 + math.cos(math.pi * progress))
