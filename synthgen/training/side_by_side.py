"""Independent CPU training runs side by side, in worker processes, with the results of running them one by one.

The small classifiers (the evaluator beside the CAS reference in train_classifier; CAS beside the utility
curve in evaluate) train on one thread each (`train.cpu_threads`), which leaves the other cores idle; a
second thread buys them nothing. Run in
spawned processes, each with the thread count it would have inline, their results are the same
numbers in less wall time. On CUDA, or under torchrun, the runs stay one by one in this process.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from synthgen.config.training import TrainConfig
from synthgen.training.distributed import resolve_device


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(train_cfgs: Sequence[TrainConfig], max_workers: int) -> int:
    """Processes for runs of `train_cfgs`: `max_workers`, or with 0 as many as the cores hold at their thread count;
    1 when any run is on an accelerator or this is a torchrun rank."""
    on_cpu = all(resolve_device(cfg.device).type == "cpu" for cfg in train_cfgs)
    if not on_cpu or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return 1
    if max_workers:
        return max_workers
    threads = max((cfg.cpu_threads for cfg in train_cfgs), default=1)
    return max(1, usable_cores() // threads) if threads else 1


def run_side_by_side(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> list[Any]:
    """`[fn(*job) for job in jobs]`, in up to `workers` spawned processes; `fn` and the jobs must pickle."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch's thread pools
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(fn, *zip(*jobs)))
