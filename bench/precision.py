"""Training-step time of the default denoiser in fp32 and under bf16 autocast, side by side.

    python bench/precision.py --threads 1 --batch 32 --steps 20 --repeats 2

One optimizer step (forward, backward, AdamW) of the UNet that params.yaml describes, on the latent
shape of the default data (4x16x16). Modes alternate, so drift in machine load hits both. On a CPU
without native bf16 (no AVX512-BF16/AMX) the bf16 row shows what emulation costs.
"""
from __future__ import annotations

import argparse
import time

import torch

from synthgen.config import load_params
from synthgen.models.unet import UNet


def step_ms(net: UNet, opt: torch.optim.Optimizer, batch: tuple, bf16: bool, steps: int, device: torch.device) -> float:
    """Mean milliseconds of `steps` training steps after 5 warm-up steps."""
    x, t, y = batch
    for i in range(steps + 5):
        if i == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = net(x, t, y).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--latent-size", type=int, default=16, help="latent height = width")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = load_params(args.params, check_paths=False).diffusion.model.model_copy(update={"sample_size": args.latent_size})
    torch.manual_seed(0)
    net = UNet(cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    batch = (torch.randn(args.batch, cfg.in_channels, args.latent_size, args.latent_size, device=device),
             torch.randint(0, 1000, (args.batch,), device=device),
             torch.randint(0, max(cfg.num_classes, 1), (args.batch,), device=device))
    times = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for mode in times:
            times[mode].append(step_ms(net, opt, batch, mode == "bf16", args.steps, device))
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    print(f"{device}, {torch.get_num_threads()} threads, batch {args.batch}: fp32 {fp32:.1f} ms/step, "
          f"bf16 autocast {bf16:.1f} ms/step, speed-up {fp32 / bf16:.2f}x (best of {args.repeats})")


if __name__ == "__main__":
    main()
