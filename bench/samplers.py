"""Every sampler at several step counts on a trained latent diffusion model: wall time, quality, overhead.

    python bench/samplers.py --steps 10 20 50 250 --per-class 8 --classifier models/classifier \
        --out bench/samplers.csv --grids bench/grids

The same sweep as stage `sweep_samplers` (synthgen/evaluation/sweep.py), with the step counts and
sample size on the command line. All runs share x_T and labels; sampler options other than name and
steps come from params.yaml's `sample.sampler` unless overridden. For each (sampler, steps):
- seconds: wall time of the sampler alone (decoding excluded), and the network calls (nfe);
- overhead: the share of that time spent outside the denoiser (the sampler's own arithmetic and Python);
- latent mean/std of the generated scaled latents, against the training latents' (std 1 by construction);
- with --classifier: conditional accuracy (overall, and of the worst requested class: the table's last
  columns, not in the CSV), and the FD of the classifier features to as many real val images (printed
  first: the FD of as many real train images, the floor at this sample size).
--guidance-method and --guidance-option pick the guidance (params.yaml's guidance_method and its options).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from pydantic import ValidationError

from synthgen.autoencoder import load_latents, scaled_latents
from synthgen.config import load_params
from synthgen.config.diffusion import SamplerConfig
from synthgen.diffusion import SAMPLERS
from synthgen.diffusion.guidance import GUIDANCE_METHODS, Guidance
from synthgen.evaluation.sweep import COLUMNS, ClassifierScore, sweep_labels, sweep_samplers, write_sweep
from synthgen.evaluation.trained import load_classifier
from synthgen.generate.models import load_models
from synthgen.imaging import save_grid
from synthgen.ldm.trained import RAW_WEIGHTS, WEIGHTS
from synthgen.training.trained_folder import load_weights
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, LatentsLayout, PreparedLayout


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def with_guidance_options(base: SamplerConfig, options: list[str]) -> SamplerConfig:
    """`base` with KEY=VALUE guidance options (values parsed as YAML), validated like params.yaml."""
    update = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in Guidance.__pydantic_fields__:
            raise SystemExit(f"--guidance-option {option!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(Guidance.__pydantic_fields__)}")
        update[key] = yaml.safe_load(value)
    try:
        return SamplerConfig.model_validate({**base.model_dump(), **update})
    except ValidationError as e:
        raise SystemExit(f"--guidance-option: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (sample.sampler gives the options)")
    parser.add_argument("--diffusion", default=DiffusionLayout.DEFAULT, help="trained diffusion folder")
    parser.add_argument("--autoencoder", default=AutoencoderLayout.DEFAULT, help="trained autoencoder folder")
    parser.add_argument("--latents", default=LatentsLayout.DEFAULT, help="latent store (for the data statistics)")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS),
                        help="; ".join(f"{s.name} ({s.paper})" for s in SAMPLERS.values()))
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20, 50, 250])
    parser.add_argument("--per-class", type=int, default=8, help="samples per class in every run")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: sample.sampler's)")
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="guide only where sigma_t is in (LOW, HIGH] (default: sample.sampler's)")
    parser.add_argument("--guidance-method", default=None, choices=GUIDANCE_METHODS,
                        help="how the conditional and unconditional predictions combine (default: sample.sampler's)")
    parser.add_argument("--guidance-option", nargs="+", default=[], metavar="KEY=VALUE",
                        help="the method's options as in params.yaml, e.g. apg_eta=0 apg_norm_threshold=null "
                             "guidance_rescale=0.7 (default: sample.sampler's)")
    parser.add_argument("--classifier", default=None, help="trained classifier folder: adds accuracy and FD")
    parser.add_argument("--prepared", default=PreparedLayout.DEFAULT, help="prepared data (its val split is the FD reference)")
    parser.add_argument("--grids", default=None, help="folder for one decoded per-class grid per run")
    parser.add_argument("--weights", default=WEIGHTS, choices=[WEIGHTS, RAW_WEIGHTS],
                        help="the denoiser's EMA weights (default) or the raw weights of its last training step")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="CSV to write (the columns of stage sweep_samplers)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    base = load_params(args.params, check_paths=False).sample.sampler
    if args.guidance is not None:
        base = base.model_copy(update={"guidance_scale": args.guidance})
    if args.guidance_interval is not None:
        base = base.model_copy(update={"guidance_interval": tuple(args.guidance_interval)})
    if args.guidance_method is not None:
        base = base.model_copy(update={"guidance_method": args.guidance_method})
    base = with_guidance_options(base, args.guidance_option)
    models = load_models(args.diffusion, args.autoencoder, args.device)
    if args.weights != WEIGHTS:
        models.diffusion.model, _ = load_weights(models.diffusion.model, Path(args.diffusion) / args.weights, models.device)
    latents = load_latents(args.latents)
    data = scaled_latents(latents.mean, latents.std, latents.scale_factor, torch.Generator().manual_seed(args.seed))
    count = len(sweep_labels(models.diffusion.num_classes, args.per_class))
    score = None
    print(f"{count} samples ({args.per_class} per class), guidance {base.guidance_scale} ({base.guidance}), "
          f"interval {base.guidance_interval}, device {models.device}, "
          f"{torch.get_num_threads()} CPU threads; data latents: mean {data.mean():.3f}, std {data.std():.3f}")
    if args.classifier:
        score = ClassifierScore(load_classifier(args.classifier, models.device), args.prepared, count, args.seed)
        print(f"FD of {count} real train images to as many real val images (the floor at this size): "
              f"{score.baseline_fd:.3f}")
        if count <= score.feature_dim:
            print(f"warning: {count} samples <= {score.feature_dim} feature dims: the covariances are rank-deficient "
                  "and FD is unreliable; raise --per-class")

    rows = []
    for row, pixels in sweep_samplers(models.diffusion, models.autoencoder, base, args.samplers, args.steps,
                                      args.per_class, args.seed, score, args.bf16):
        rows.append(row)
        print(f"{row['sampler']:>16} {row['steps']:>4} steps: {row['seconds']:.2f} s, overhead {row['overhead']:.1%}, "
              f"latent std {row['latent_std']:.3f} (data {data.std():.3f})", flush=True)
        if args.grids:
            save_grid(pixels, Path(args.grids) / f"{row['sampler']}-{row['steps']}.png", nrow=args.per_class,
                      scale=max(1, 128 // pixels.shape[1]))

    for row in rows:
        if "worst_class" in row:
            row["worst_class"] = models.diffusion.class_names[row["worst_class"]]
    columns = [c for c in (*COLUMNS, "worst_class") if any(c in r for r in rows)]
    print(markdown_table(rows, columns))
    if args.out:
        write_sweep(Path(args.out), rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
