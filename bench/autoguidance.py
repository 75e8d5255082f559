"""Autoguidance on top of the default CFG: does guiding the conditional prediction away from a worse model help?

Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself", eq. 2;
`synthgen.diffusion.guidance.autoguided`) replaces the conditional prediction D(x|c) with
a D(x|c) + (1 - a) D_bad(x|c): an extrapolation away from a weaker model of the same kind (smaller, or trained
for less), whose errors point the same way as the good model's, only further. The sample stage's CFG
(sample.sampler: rescaled CFG 5 in its sigma interval) acts on top, so a draw costs three network rows, not two.

Every --scales value a (1 = the default sampler, no autoguidance) runs on the same x_T and labels as the
sweep (`bench/samplers.py`), scored by the evaluator: conditional accuracy, the worst class, the FD of its
features to as many real val images. --guide is the weaker model: a trained diffusion folder, or a training
checkpoint (`checkpoints/step-*.safetensors`) whose EMA weights load into the good model's architecture;
without it, the folder's own guide.safetensors (diffusion.guide_fraction).

    python bench/autoguidance.py --guide models/diffusion/checkpoints/step-000002000.safetensors \
        --scales 1 1.25 1.5 2 --per-class 48 --grids /tmp/ag
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch import nn

from synthgen.config import load_params
from synthgen.evaluation.sweep import ClassifierScore, sweep_labels, sweep_samplers
from synthgen.evaluation.trained import load_classifier
from synthgen.generate.models import load_models
from synthgen.imaging import save_grid
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, PreparedLayout
from synthgen.training.checkpoint import load_checkpoint
from synthgen.training.loop import MAIN


def load_guide(path: Path, model: nn.Module, autoencoder: str, device: torch.device) -> nn.Module:
    """A trained diffusion folder's EMA weights, or a checkpoint's, in the architecture of `model`."""
    if path.suffix == ".safetensors":
        guide = copy.deepcopy(model)
        state = load_checkpoint(path)
        guide.load_state_dict(state.ema if state.ema is not None else state.nets[MAIN])
        return guide.eval()
    return load_models(str(path), autoencoder, str(device)).diffusion.model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="sample.sampler gives the sampler and its CFG")
    ap.add_argument("--diffusion", default=DiffusionLayout.DEFAULT)
    ap.add_argument("--autoencoder", default=AutoencoderLayout.DEFAULT)
    ap.add_argument("--classifier", default="models/classifier", help="the evaluator that scores the draws")
    ap.add_argument("--prepared", default=PreparedLayout.DEFAULT)
    ap.add_argument("--guide", default=None,
                    help="a diffusion folder or a training checkpoint (.safetensors); default: the folder's guide")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0], help="autoguidance a")
    ap.add_argument("--guidance", type=float, default=None, help="CFG scale (default: sample.sampler's)")
    ap.add_argument("--per-class", type=int, default=48)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    ap.add_argument("--grids", default=None, help="folder for one per-class grid per scale")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sampler = load_params(args.params, check_paths=False).sample.sampler
    if args.guidance is not None:
        sampler = sampler.model_copy(update={"guidance_scale": args.guidance})
    models = load_models(args.diffusion, args.autoencoder, "cpu")
    if args.guide is not None:
        models.diffusion.guide = load_guide(Path(args.guide), models.diffusion.model, args.autoencoder, models.device)
    count = len(sweep_labels(models.diffusion.num_classes, args.per_class))
    score = ClassifierScore(load_classifier(args.classifier, models.device), args.prepared, count, seed=0)
    print(f"{count} samples, {sampler.name} {sampler.steps} steps, {sampler.guidance_method} {sampler.guidance_scale} "
          f"in {sampler.guidance_interval}; guide {args.guide or 'guide.safetensors'}; FD floor (real train to val) {score.baseline_fd:.3f}")
    print("| autoguidance a | accuracy | worst class | FD | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for scale in args.scales:
        guided = sampler.model_copy(update={"autoguidance_scale": scale})
        for row, pixels in sweep_samplers(models.diffusion, models.autoencoder, guided, [sampler.name],
                                          [sampler.steps], args.per_class, 0, score, False):
            worst = models.diffusion.class_names[row["worst_class"]]
            print(f"| {scale:g} | {row['conditional_accuracy']:.3f} | {row['worst_class_accuracy']:.2f} {worst} | "
                  f"{row['fd']:.2f} | {row['seconds']:.1f} |", flush=True)
            if args.grids:
                save_grid(pixels, Path(args.grids) / f"autoguidance-{scale:g}.png", nrow=args.per_class,
                          scale=max(1, 128 // pixels.shape[1]))


if __name__ == "__main__":
    main()
