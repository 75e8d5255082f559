"""Data-parallel training under `torchrun`: process group, device per rank, DDP wrapping, collectives.

Without torchrun (WORLD_SIZE unset or 1) everything here degrades to a single process and no
collective is ever called. torchrun runs on one machine; all ranks read the same checkpoint folder.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from synthgen.errors import SynthgenError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: its rank among world_size and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA when available; 'cuda' without a GPU is an error the user can fix."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise SynthgenError("device=cuda but no CUDA device is available; set device to auto or cpu")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Use `count` intra-op CPU threads inside the block (0 keeps torch's default), then restore."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def setup_distributed(device_preference: str) -> DistContext:
    """Join the torchrun process group (NCCL on GPU, gloo on CPU) when launched by torchrun;
    the group lives until the process exits."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, 0, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # One group per process, kept for later train() calls: re-creating it on torchrun's store can hang.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(destroy_if_initialized)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def destroy_if_initialized() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `module` when there is more than one rank, else `module`."""
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def gather_cpu_tensors(tensor: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's copy of an equally shaped tensor, in rank order, on the CPU."""
    if not ctx.distributed:
        return [tensor.cpu()]
    local = tensor.to(ctx.device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    return [t.cpu() for t in gathered]


def mean_across_ranks(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if not ctx.distributed:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
