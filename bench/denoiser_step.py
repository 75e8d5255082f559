"""Where one training step of the default denoiser spends its time, at two batch sizes.

A step is timed in three parts (forward with the loss, backward, AdamW), with the per-tensor AdamW
that torch picks on CPU by default and with the fused one the training loop uses. Batch 64 against
batch 32 shows how far a step's cost is fixed rather than per image.

    .venv/bin/python bench/denoiser_step.py
    python bench/denoiser_step.py --device cuda --batch-sizes 64 256
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from synthgen.config.diffusion import DiffusionConfig
from synthgen.models.unet import UNet
from synthgen.precision import bf16_autocast

LATENT_SHAPE = (4, 16, 16)  # the default autoencoder's latents of 32 px images


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def default_unet() -> UNet:
    """The default denoiser for the default latents, with a fixed initialisation."""
    cfg = DiffusionConfig().model.model_copy(update={"in_channels": LATENT_SHAPE[0], "sample_size": LATENT_SHAPE[1]})
    torch.manual_seed(0)
    return UNet(cfg)


def flops_per_step(batch_size: int) -> float:
    """Forward plus backward FLOPs of one step (torch's flop counter: convolutions, matmuls, attention)."""
    x = torch.randn(batch_size, *LATENT_SHAPE)
    t = y = torch.zeros(batch_size, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        default_unet()(x, t, y).sum().backward()
    return counter.get_total_flops()


def time_step(batch_size: int, fused: bool, flops: float, args: argparse.Namespace,
              channels_last: bool = False, compiled: bool = False) -> dict[str, float]:
    """Mean milliseconds of forward, backward and optimizer over args.steps steps, after warm-up.

    `warmup_s` is the wall time of the warm-up steps, which include torch.compile's compilation.
    """
    device = torch.device(args.device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = default_unet().to(device, memory_format=memory_format)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=fused)
    model = torch.compile(net) if compiled else net
    x = torch.randn(batch_size, *LATENT_SHAPE, device=device).contiguous(memory_format=memory_format)
    t = torch.randint(0, 1000, (batch_size,), device=device)
    y = torch.randint(0, net.config.num_classes + 1, (batch_size,), device=device)
    totals = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    start = time.perf_counter()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            warmup_s = time.perf_counter() - start
        marks = [time.perf_counter()]
        with bf16_autocast(device, True, cpu=True):
            loss = (model(x, t, y).float() - x).pow(2).mean()
        sync(device)
        marks.append(time.perf_counter())
        loss.backward()
        sync(device)
        marks.append(time.perf_counter())
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        marks.append(time.perf_counter())
        if step >= args.warmup:
            for key, start, end in zip(totals, marks, marks[1:]):
                totals[key] += (end - start) * 1000 / args.steps
    step_ms = sum(totals.values())
    return {**totals, "step": step_ms, "images_per_s": batch_size * 1000 / step_ms,
            "gflop_per_s": flops / step_ms / 1e6, "warmup_s": warmup_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--layouts", action="store_true",
                        help="also time channels_last and torch.compile (fused AdamW, largest batch)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| batch | AdamW | forward ms | backward ms | optimizer ms | step ms | latents/s | GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = {}
    for batch_size in args.batch_sizes:
        flops = flops_per_step(batch_size)
        for fused in (False, True):
            r = rows[batch_size, fused] = time_step(batch_size, fused, flops, args)
            print(f"| {batch_size} | {'fused' if fused else 'per-tensor'} | {r['forward']:.1f} | {r['backward']:.1f} | "
                  f"{r['optimizer']:.1f} | {r['step']:.1f} | {r['images_per_s']:.0f} | {r['gflop_per_s']:.0f} |")
    small, large = min(args.batch_sizes), max(args.batch_sizes)
    print(f"fused / per-tensor step time at batch {small}: {rows[small, True]['step'] / rows[small, False]['step']:.2f}")
    if large != small:
        print(f"batch {large} / batch {small} step time (fused): "
              f"{rows[large, True]['step'] / rows[small, True]['step']:.2f} for {large / small:.0f}x the latents")
    if args.layouts:
        time_layouts(large, args)


def time_layouts(batch_size: int, args: argparse.Namespace) -> None:
    """The fused step at `batch_size` in eager and compiled form, NCHW and channels_last, side by side."""
    flops = flops_per_step(batch_size)
    print(f"\n| batch {batch_size}, fused AdamW | warm-up s | step ms | latents/s | ratio to eager NCHW |")
    print("| --- | --- | --- | --- | --- |")
    base = None
    for compiled in (False, True):
        for channels_last in (False, True):
            r = time_step(batch_size, True, flops, args, channels_last=channels_last, compiled=compiled)
            base = base or r["step"]
            name = f"{'torch.compile' if compiled else 'eager'}, {'channels_last' if channels_last else 'NCHW'}"
            print(f"| {name} | {r['warmup_s']:.1f} | {r['step']:.1f} | {r['images_per_s']:.0f} | "
                  f"{r['step'] / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()