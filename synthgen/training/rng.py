"""Seeded generators, and the random-number state a checkpoint must carry (seeds come from synthgen/seeds.py)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def capture_rng(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The loop's generator and torch's default generators (dropout draws from those) as uint8 tensors."""
    state = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


@contextlib.contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Seed torch's default CPU generator inside the block and restore it afterwards (for weight init)."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield
