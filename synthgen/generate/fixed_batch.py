"""Run a network on fixed-size row chunks, padding the last one.

CPU kernels may pick different algorithms (and summation orders) for different batch sizes, which
moves results by an ulp and, after rounding to uint8, sometimes a pixel. Calling the network only
ever with `size` rows makes each sample's numbers independent of the batch it was generated in.
"""
from __future__ import annotations

from typing import Callable

import torch


def pad_rows(t: torch.Tensor | None, size: int) -> torch.Tensor | None:
    if t is None or t.shape[0] == size:
        return t
    return torch.cat([t, t[-1:].expand(size - t.shape[0], *t.shape[1:])])


def in_fixed_batches(fn: Callable[..., torch.Tensor], size: int) -> Callable[..., torch.Tensor]:
    """`fn(x, *rest)` evaluated on chunks of exactly `size` rows of x and of each tensor in rest."""
    def call(x: torch.Tensor, *rest: torch.Tensor | None) -> torch.Tensor:
        outputs = []
        for start in range(0, x.shape[0], size):
            chunk = [x[start: start + size]] + [r[start: start + size] if r is not None else None for r in rest]
            rows = chunk[0].shape[0]
            outputs.append(fn(*(pad_rows(c, size) for c in chunk))[:rows])
        return torch.cat(outputs)

    return call
