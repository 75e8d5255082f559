"""Training throughput of the autoencoder through the shared loop: images/s and peak memory.

Two configurations are measured in one run: the default (32 px, sized for a CPU) and a GPU-size one
(64 px, f = 4, attention). Each runs `2 * steps` steps with one metrics row per `steps`; the second
row is the steady-state figure (the first pays for start-up and, with --compile, compilation).

    .venv/bin/python bench/train.py --device cpu --steps 20 --gpu-steps 1
    python bench/train.py --device cuda --steps 50 --compile
"""
from __future__ import annotations

import argparse
import csv
import resource
import tempfile
from pathlib import Path

import numpy as np
import torch

from synthgen.autoencoder.losses import AutoencoderObjective
from synthgen.stages.train_autoencoder import build_networks
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.training.loop import MAIN, train

GPU_SIZE = {  # the values suggested for configs/gpu.yaml's autoencoder section (64 px, f = 4)
    "model": {"base_channels": 64, "channel_mult": [1, 2, 4], "downsample": 4, "latent_channels": 4,
              "num_res_blocks": 2, "attention": True, "norm_groups": 32},
    "train": {"batch_size": 64, "lr": 4.5e-4, "warmup_steps": 500, "ema_decay": 0.999, "cpu_threads": 0},
}


def measure(name: str, overrides: dict, resolution: int, steps: int, args: argparse.Namespace) -> dict:
    """Steady-state images/s of `2 * steps` training steps on random pixels, and peak memory."""
    defaults = AutoencoderConfig().train.model_dump()
    train_overrides = {**defaults, **overrides.get("train", {}), "steps": 2 * steps, "log_every": steps,
                       "checkpoint_every": 10 * steps, "device": args.device, "compile": args.compile,
                       "channels_last": args.channels_last, "progress": False}
    if args.threads is not None:
        train_overrides["cpu_threads"] = args.threads
    cfg = AutoencoderConfig.model_validate({**overrides, "train": train_overrides})
    batch = cfg.train.batch_size
    pixels = np.random.default_rng(0).integers(0, 256, (max(4 * batch, 256), 3, resolution, resolution), np.uint8)
    nets = build_networks(cfg)
    objective = AutoencoderObjective(cfg, nets[MAIN].last_layer)
    if torch.cuda.is_available() and args.device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg.train, nets, objective, {"pixels": torch.from_numpy(pixels)}, Path(tmp) / "ckpt",
                       Path(tmp) / "metrics.csv")
        rows = list(csv.DictReader((Path(tmp) / "metrics.csv").open()))
    device = next(result.nets[MAIN].parameters()).device
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated (CUDA peak)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak so far)"
    params = sum(p.numel() for p in result.nets[MAIN].parameters())
    return {"name": name, "device": str(device), "resolution": resolution, "batch": batch, "params": params,
            "images_per_s": float(rows[-1]["images_per_s"]), "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=20, help="steps per window for the default config")
    parser.add_argument("--gpu-steps", type=int, default=None, help="steps per window for the GPU-size config")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (0 = torch's default); "
                        "default: each config's own train.cpu_threads")
    parser.add_argument("--configs", default="default,gpu-size", help="comma-separated: default, gpu-size")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--discriminator", action="store_true", help="also train the PatchGAN (from step 0)")
    args = parser.parse_args()
    gan = {"discriminator": True, "disc_start": 0} if args.discriminator else {}
    chosen = args.configs.split(",")
    results = []
    if "default" in chosen:
        results.append(measure("default (32 px)", gan, 32, args.steps, args))
    if "gpu-size" in chosen:
        results.append(measure("gpu-size (64 px)", {**GPU_SIZE, **gan}, 64, args.gpu_steps or args.steps, args))
    print(f"{'config':<18} {'device':<8} {'px':>4} {'batch':>6} {'params':>11} {'images/s':>10}  peak memory")
    for r in results:
        print(f"{r['name']:<18} {r['device']:<8} {r['resolution']:>4} {r['batch']:>6} {r['params']:>11,} "
              f"{r['images_per_s']:>10.1f}  {r['peak']}")
    if len(results) == 2:
        print(f"ratio default / gpu-size images/s: {results[0]['images_per_s'] / results[1]['images_per_s']:.1f}x")


if __name__ == "__main__":
    main()
