"""bf16 autocast: CUDA when asked; the CPU only when asked for explicitly and the CPU has native bf16."""
import torch

import synthgen.precision as precision

CPU = torch.device("cpu")


def autocast_dtype_inside(ctx) -> torch.dtype:
    with ctx:
        return torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype


def test_cpu_stays_fp32_unless_asked_and_native(monkeypatch):
    assert autocast_dtype_inside(precision.bf16_autocast(CPU, True)) == torch.float32
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype_inside(precision.bf16_autocast(CPU, True, cpu=True)) == torch.float32
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype_inside(precision.bf16_autocast(CPU, True, cpu=True)) == torch.bfloat16
    assert autocast_dtype_inside(precision.bf16_autocast(CPU, False, cpu=True)) == torch.float32
