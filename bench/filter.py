"""What sampling with acceptance costs: the sample stage's shard code with and without the filter, side by side.

Both runs draw the same planned samples with the same models in this one process, so their ratio holds
under load. The filtered run makes 1 / acceptance times the draws; its bound is that ratio plus the
filter's own time (scoring every draw), which is measured separately on the filtered run's draws.

    python bench/filter.py --diffusion models/diffusion --autoencoder models/autoencoder --filter models/filter
    python bench/filter.py ... --images 500 --min-confidence 0.5 --threads 2
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synthgen.config.sample import SampleConfig
from synthgen.generate.models import load_models
from synthgen.generate.shard_sampler import Provenance, generate_pixels, generate_shard, screen_for
from synthgen.stages.sample import build_plan


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffusion", required=True)
    ap.add_argument("--autoencoder", required=True)
    ap.add_argument("--filter", required=True, help="a train_filter folder")
    ap.add_argument("--images", type=int, default=250, help="samples in the one shard drawn by both runs")
    ap.add_argument("--min-confidence", type=float, default=None, help="override sample.filter.min_confidence")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = SampleConfig(num_images=args.images, images_per_shard=args.images, device="cpu", encode_workers=1)
    if args.min_confidence is not None:
        cfg = cfg.model_copy(update={"filter": cfg.filter.model_copy(update={"min_confidence": args.min_confidence})})
    models = load_models(args.diffusion, args.autoencoder, "cpu")
    names = models.diffusion.class_names
    screen = screen_for(cfg, Path(args.filter), models, names)
    shard = build_plan(cfg, names).shard(0)
    provenance = Provenance(models.diffusion.sha256, models.autoencoder.sha256, "bench")
    with tempfile.TemporaryDirectory() as tmp:
        _, plain = timed(generate_shard, models, shard, cfg, names, provenance, Path(tmp) / "plain")
        entry, screened = timed(generate_shard, models, shard, cfg, names, provenance, Path(tmp) / "screened",
                                screen=screen)
    attempts, accepted = sum(entry["filter"]["attempts"]), sum(entry["filter"]["accepted"])
    pixels = generate_pixels(models, shard.labels, list(shard.seeds), cfg)
    _, judging = timed(screen.judge, pixels, shard.labels)
    judging *= attempts / len(pixels)  # the filter's time per draw, times the draws the filtered run made
    rates = np.array(entry["filter"]["accepted"]) / np.maximum(entry["filter"]["attempts"], 1)
    bound = plain * attempts / accepted + judging
    print(f"{args.images} images, {cfg.sampler.name} {cfg.sampler.steps} steps, min_confidence "
          f"{cfg.filter.min_confidence}, {args.threads} thread(s)")
    print(f"acceptance {accepted / attempts:.3f} ({attempts} draws; worst class "
          f"{names[int(rates.argmin())]} {rates.min():.3f})")
    print(f"unfiltered {plain:.1f} s, filtered {screened:.1f} s: ratio {screened / plain:.2f}")
    print(f"filter's own time {judging:.2f} s for {attempts} draws; bound 1/acceptance x unfiltered + filter = "
          f"{bound:.1f} s; filtered / bound = {screened / bound:.2f}")


if __name__ == "__main__":
    main()
