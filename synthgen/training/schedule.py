"""Learning-rate schedule of the shared training loop."""
from __future__ import annotations


def warmup_lr(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warmup to `base_lr` over `warmup_steps`, constant afterwards (Goyal et al. 2017, Sec. 2.2).

    `step` counts completed optimizer steps, so the first update uses base_lr / warmup_steps.
    """
    if warmup_steps <= 0:
        return base_lr
    return base_lr * min(1.0, (step + 1) / warmup_steps)
