"""Mixed precision: bf16 autocast on CUDA where asked, full precision everywhere else."""
from __future__ import annotations

import contextlib

import torch


def bf16_autocast(device: torch.device, enabled: bool):
    """torch.autocast to bfloat16 on a CUDA device when `enabled`; a no-op context otherwise (CPU stays fp32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
