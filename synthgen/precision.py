"""Mixed precision: bf16 autocast on CUDA, and on CPUs with native bf16 where a config asks for it."""
from __future__ import annotations

import contextlib
from functools import cache

import torch


@cache
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matmuls natively here (AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """torch.autocast to bfloat16 on a CUDA device when `enabled`, and on the CPU when `cpu` is also set and
    the CPU has native bf16 (elsewhere bf16 is emulated and slower); otherwise a no-op context (fp32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and cpu and device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
