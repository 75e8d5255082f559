"""Sampling with acceptance: what it costs, and what an independent judge says of what it accepts.

cost (default): the sample stage's shard code with and without the filter, side by side on the same
planned samples in this one process, so their ratio holds under load. The filtered run makes
1 / acceptance times the draws; its bound is that ratio times the unfiltered run, plus the filter's own
time (scoring every draw), measured separately.
--judge FOLDER: the first draws of --images samples scored by the filter and by an evaluator folder
(stage train_classifier); for each --thresholds value of min_confidence, the share accepted (overall and
worst class) and the evaluator's accuracy on the accepted draws (overall and worst class).

    python bench/filter.py --diffusion models/diffusion --autoencoder models/autoencoder --filter models/filter
    python bench/filter.py ... --images 1200 --judge models/classifier --thresholds 0 0.5 0.9 0.99
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


def judge_thresholds(models, shard, cfg: SampleConfig, screen, judge_dir: Path, thresholds: list[float]) -> None:
    from synthgen.evaluation.trained import load_classifier
    from synthgen.generate.filter import SampleFilter

    names = models.diffusion.class_names
    pixels = np.concatenate([generate_pixels(models, shard.labels[i: i + cfg.batch_size],
                                             list(shard.seeds[i: i + cfg.batch_size]), cfg)
                             for i in range(0, len(shard.labels), cfg.batch_size)])
    labels = shard.labels
    mine = screen.judge(pixels, labels)
    judged = SampleFilter(load_classifier(judge_dir), cfg.filter, cfg.micro_batch).judge(pixels, labels)
    print(f"{len(labels)} first draws; raw accuracy: filter {mine.top1.mean():.3f}, evaluator {judged.top1.mean():.3f}")
    print("| min_confidence | accepted | worst class accepted | evaluator on accepted | its worst class |")
    print("| --- | --- | --- | --- | --- |")
    for threshold in thresholds:
        accepted = mine.top1 & (mine.confidence >= threshold)
        rate = [accepted[labels == c].mean() for c in range(len(names))]
        right = [judged.top1[accepted & (labels == c)].mean() if (accepted & (labels == c)).any() else np.nan
                 for c in range(len(names))]
        worst = int(np.nanargmin(right))
        print(f"| {threshold} | {accepted.mean():.3f} | {min(rate):.3f} ({names[int(np.argmin(rate))]}) | "
              f"{judged.top1[accepted].mean():.3f} | {right[worst]:.3f} ({names[worst]}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffusion", required=True)
    ap.add_argument("--autoencoder", required=True)
    ap.add_argument("--filter", required=True, help="a train_filter folder")
    ap.add_argument("--images", type=int, default=250, help="samples in the one shard drawn by both runs")
    ap.add_argument("--min-confidence", type=float, default=None, help="override sample.filter.min_confidence")
    ap.add_argument("--guidance", type=float, default=None, help="override sample.sampler.guidance_scale")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--judge", help="an evaluator folder: print acceptance against its accuracy instead of cost")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.5, 0.7, 0.9, 0.95, 0.99])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = SampleConfig(num_images=args.images, images_per_shard=args.images, device="cpu", encode_workers=1)
    if args.min_confidence is not None:
        cfg = cfg.model_copy(update={"filter": cfg.filter.model_copy(update={"min_confidence": args.min_confidence})})
    if args.guidance is not None:
        cfg = cfg.model_copy(update={"sampler": cfg.sampler.model_copy(update={"guidance_scale": args.guidance})})
    models = load_models(args.diffusion, args.autoencoder, "cpu")
    names = models.diffusion.class_names
    screen = screen_for(cfg, Path(args.filter), models, names)
    shard = build_plan(cfg, names).shard(0)
    if args.judge:
        return judge_thresholds(models, shard, cfg, screen, Path(args.judge), args.thresholds)
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
