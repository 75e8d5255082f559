"""The shared training loop: one objective, one or more networks each with its own AdamW.

An objective is a callable `(nets, batch, generator, step) -> (losses, logs)`:
- `nets` maps names to the (possibly DDP-wrapped or compiled) networks; "model" is the main one,
  the one EMA tracks and whose loss is the `loss` column.
- `losses` maps network names to the scalar loss that updates that network. Only the networks
  named are stepped this step (a discriminator that has not started yet is simply left out). The
  losses are summed and backpropagated once, so a loss must send no gradient into another
  network: run the other network under `frozen(...)` or on detached inputs.
- `logs` are scalar tensors with the same keys at every step; they become CSV columns.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator, Mapping, Protocol

import torch
from torch import nn
from tqdm import tqdm

from synthgen.atomic import canonical_json, remove_leftovers
from synthgen.config.training import TrainConfig
from synthgen.errors import SynthgenError
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.training.batches import BatchOrder, take_batch
from synthgen.training.checkpoint import (
    CheckpointError, TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint,
)
from synthgen.training.distributed import (
    DistContext, barrier, cpu_threads, gather_cpu_tensors, mean_across_ranks, setup_distributed, wrap_ddp,
)
from synthgen.training.ema import EMA
from synthgen.training.metrics_log import MetricsLog
from synthgen.training.rng import capture_rng, make_generator, restore_rng
from synthgen.training.schedule import learning_rate

log = logging.getLogger(__name__)

MAIN = "model"  # name of the main network in `nets`
RESERVED_COLUMNS = {"step", "loss", "lr", "images_per_s", "grad_norm"}


class Objective(Protocol):
    """(nets, batch, generator, step) -> (losses per network name, scalar logs); see the module docstring."""

    def __call__(
        self, nets: Mapping[str, nn.Module], batch: dict[str, torch.Tensor], generator: torch.Generator, step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]: ...


@dataclass
class TrainResult:
    """The trained networks (unwrapped, on the training device) and facts about the run."""

    nets: dict[str, nn.Module]
    ema: nn.Module | None  # EMA copy of nets["model"], None when ema_decay = 0
    step: int  # optimizer steps completed
    resumed_from: int  # step of the checkpoint the run continued from; 0 for a fresh run
    seconds: float  # wall time of this call's training steps
    images_per_s: float  # global training throughput of this call
    rank: int  # 0 outside torchrun

    @property
    def final_model(self) -> nn.Module:
        """The weights to ship: the EMA when there is one."""
        return self.ema if self.ema is not None else self.nets[MAIN]


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Run `module` without accumulating gradients into its parameters (inputs still get gradients)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def train(
    cfg: TrainConfig,
    nets: Mapping[str, nn.Module],
    objective: Objective,
    data: Mapping[str, torch.Tensor],
    checkpoint_dir: str | Path,
    metrics_path: str | Path,
    run_config: Mapping | None = None,
    keep_steps: Collection[int] = (),
) -> TrainResult:
    """Train `nets` on `data` (tensors sharing their first dimension) to `cfg.steps`, resuming from
    the newest checkpoint in `checkpoint_dir` if there is one. Under torchrun every rank calls this.

    Checkpoints are resumed only by a run with the same data and the same `run_config` (the stage's
    settings, JSON-able) up to `cfg.steps`: raising the step count continues a run exactly, while
    any other change starts it over instead of silently mixing two runs. A checkpoint is also written at each
    of `keep_steps`, and never pruned (a stage that needs an early snapshot reads it after training)."""
    if MAIN not in nets:
        raise SynthgenError(f"train() needs a network named {MAIN!r}; got {sorted(nets)}")
    counts = {k: len(v) for k, v in data.items()}
    if len(set(counts.values())) != 1:
        raise SynthgenError(f"training tensors must have equal lengths, got {counts}")
    ctx = setup_distributed(cfg.device)
    forked = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), cpu_threads(cfg.cpu_threads):
        key = run_fingerprint(cfg, data, run_config)
        return Run(cfg, nets, objective, data, Path(checkpoint_dir), Path(metrics_path), ctx, key, keep_steps).run()


NOT_IN_FINGERPRINT = {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "progress", "cpu_threads"}


def run_fingerprint(cfg: TrainConfig, data: Mapping[str, torch.Tensor], run_config: Mapping | None) -> str:
    """What a checkpoint must share with this run to be resumed: settings (but the step count) and data."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in NOT_IN_FINGERPRINT}
    digest.update(canonical_json({"train": settings, "run": run_config or {}}).encode())
    for name in sorted(data):
        digest.update(name.encode())
        digest.update(data[name].contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class Run:
    """State of one call to `train`: networks, optimizers, EMA, RNG, metrics."""

    def __init__(self, cfg: TrainConfig, nets: Mapping[str, nn.Module], objective: Objective,
                 data: Mapping[str, torch.Tensor], checkpoint_dir: Path, metrics_path: Path, ctx: DistContext,
                 fingerprint: str, keep_steps: Collection[int] = ()):
        self.cfg, self.objective, self.data, self.ctx, self.fingerprint = cfg, objective, data, ctx, fingerprint
        self.keep_steps = frozenset(keep_steps)
        self.checkpoint_dir, self.metrics_path = checkpoint_dir, metrics_path
        memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
        self.nets = {name: net.to(ctx.device, memory_format=memory_format).train() for name, net in nets.items()}
        fused = ctx.device.type in ("cuda", "cpu")  # one kernel per step; the per-tensor default is ~5x slower on CPU
        self.optimizers = {
            name: torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                                    betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, fused=fused)
            for name, net in self.nets.items()
        }
        self.ema = EMA(self.nets[MAIN], cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.generator = make_generator(ctx.device, derive_seed(cfg.seed, "train/objective_noise", ctx.rank))
        torch.random.default_generator.manual_seed(derive_seed(cfg.seed, "train/torch_default", ctx.rank))
        if ctx.device.type == "cuda":
            torch.cuda.manual_seed(derive_seed(cfg.seed, "train/torch_default", ctx.rank))
        self.step = self.resume()
        self.resumed_from = self.step
        self.wrapped = {name: self.wrap(net) for name, net in self.nets.items()}
        count = len(next(iter(data.values())))
        self.order = BatchOrder(count, cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
        self.metrics = MetricsLog(metrics_path, self.step) if ctx.is_main else None

    def wrap(self, net: nn.Module) -> nn.Module:
        net = wrap_ddp(net, self.ctx)
        return torch.compile(net) if self.cfg.compile else net

    # ---- resume and checkpoints -------------------------------------------------------------
    def resume(self) -> int:
        """Load the newest checkpoint, if any; return the step it was taken at (0 when none)."""
        if self.ctx.is_main:
            remove_leftovers(self.checkpoint_dir)
        barrier(self.ctx)
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return 0
        state = load_checkpoint(path)
        if state.extra.get("fingerprint") != self.fingerprint:
            if self.ctx.is_main:
                log.warning("checkpoints in %s come from other settings or data: starting over", self.checkpoint_dir)
                shutil.rmtree(self.checkpoint_dir)
            barrier(self.ctx)
            return 0
        try:
            for name, net in self.nets.items():
                net.load_state_dict(state.nets[name])
            for name, opt in self.optimizers.items():
                if name in state.optimizers:
                    opt.load_state_dict(state.optimizers[name])
        except (KeyError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path} does not fit these networks ({first}); delete {self.checkpoint_dir} to start over") from None
        if self.ema is not None and state.ema is not None:
            self.ema.load_state_dict(state.ema, state.ema_updates)
        if len(state.rng) == self.ctx.world_size:
            restore_rng(state.rng[self.ctx.rank], self.generator, self.ctx.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: random streams restart, the resume is not exact",
                        path, len(state.rng), self.ctx.world_size)
        if self.ctx.is_main:
            log.info("resumed from %s (step %d)", path, state.step)
        return state.step

    def gather_rng(self) -> list[dict[str, torch.Tensor]]:
        local = capture_rng(self.generator, self.ctx.device)
        per_kind = {kind: gather_cpu_tensors(t, self.ctx) for kind, t in local.items()}
        return [{kind: per_kind[kind][r] for kind in local} for r in range(self.ctx.world_size)]

    def save(self) -> None:
        rng = self.gather_rng()  # a collective: every rank takes part
        if not self.ctx.is_main:
            return
        self.metrics.flush()
        state = TrainingState(
            step=self.step,
            nets={name: net.state_dict() for name, net in self.nets.items()},
            optimizers={name: opt.state_dict() for name, opt in self.optimizers.items()},
            rng=rng,
            ema=self.ema.state_dict() if self.ema is not None else None,
            ema_updates=self.ema.num_updates if self.ema is not None else 0,
            extra={"world_size": self.ctx.world_size, "fingerprint": self.fingerprint},
        )
        save_checkpoint(self.checkpoint_dir, state, self.cfg.keep_checkpoints, self.keep_steps)

    # ---- one step ---------------------------------------------------------------------------
    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimizer step of every network the objective returned a loss for."""
        # 1) this rank's slice of the batch, and the warmed-up learning rate
        batch = take_batch(self.data, self.order.indices(self.step), self.ctx.device, self.cfg.channels_last)
        lr = learning_rate(self.step, self.cfg.lr, self.cfg.warmup_steps, self.cfg.steps, self.cfg.lr_decay)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = lr
        # 2) losses, one backward pass through their sum
        with bf16_autocast(self.ctx.device, self.cfg.bf16, cpu=self.cfg.cpu_bf16):
            losses, logs = self.objective(self.wrapped, batch, self.generator, self.step)
        if MAIN not in losses:
            raise SynthgenError(f"the objective must return a loss for {MAIN!r}; it returned {sorted(losses)}")
        if RESERVED_COLUMNS & logs.keys():
            raise SynthgenError(f"objective log keys {sorted(RESERVED_COLUMNS & logs.keys())} clash with the loop's columns")
        sum(losses.values()).backward()
        # 3) clip and step each network that has a loss
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norms = {name: torch.nn.utils.clip_grad_norm_(self.nets[name].parameters(), max_norm) for name in losses}
        for name in losses:
            self.optimizers[name].step()
        # 4) EMA of the main network
        if self.ema is not None:
            self.ema.update(self.nets[MAIN])
        self.step += 1
        return {"loss": losses[MAIN].detach().float(), "lr": torch.tensor(lr), "grad_norm": norms[MAIN].float(),
                **{k: v.detach().float() for k, v in logs.items()}}

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (ctx.is_main and cfg.progress))
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start, run_start = 0, time.perf_counter(), time.perf_counter()
        while self.step < cfg.steps:
            values = self.train_step()
            for k, v in values.items():
                window[k] = window.get(k, 0) + v.to(ctx.device)
            window_steps += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self.write_row(window, window_steps, window_start, bar)
                window, window_steps, window_start = {}, 0, time.perf_counter()
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or self.step in self.keep_steps:
                self.save()
        bar.close()
        if self.metrics is not None:
            self.metrics.flush()
        barrier(ctx)
        seconds = time.perf_counter() - run_start
        images = (self.step - self.resumed_from) * cfg.batch_size
        return TrainResult(
            nets=self.nets, ema=self.ema.module if self.ema is not None else None, step=self.step,
            resumed_from=self.resumed_from, seconds=seconds, images_per_s=images / max(seconds, 1e-9), rank=ctx.rank,
        )

    def write_row(self, window: dict[str, torch.Tensor], steps: int, window_start: float, bar: tqdm) -> None:
        """Means over the window, averaged over ranks; one CSV row and the progress-bar postfix."""
        keys = sorted(window)
        means = mean_across_ranks(torch.stack([window[k] for k in keys]) / steps, self.ctx).tolist()
        seconds = max(time.perf_counter() - window_start, 1e-9)  # after tolist(), which waited for the device
        row = {"step": self.step, **dict(zip(keys, means)), "images_per_s": steps * self.cfg.batch_size / seconds}
        if self.metrics is not None:
            self.metrics.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}", img_s=f"{row['images_per_s']:.0f}")
