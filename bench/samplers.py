"""Every sampler at several step counts on a trained latent diffusion model: wall time, quality, overhead.

    python bench/samplers.py --diffusion models/diffusion --autoencoder models/autoencoder \
        --latents data/latents --steps 10 20 50 250 --per-class 4 --out bench/samplers.csv

All runs start from the same x_T and use the same class labels (the guidance scale and sampler options
of the model's preview config unless overridden), so the rows compare samplers, not noise draws.
For each (sampler, steps) it reports:
- seconds: wall time of the sampler alone (decoding excluded), and the network calls (nfe);
- overhead: the share of that time spent outside the denoiser (eps_fn is wrapped with a timer that
  synchronises CUDA on both sides), i.e. the sampler's own arithmetic and Python;
- quality: mean and std of the generated scaled latents against the training latents (which have
  std 1 by construction); with --classifier (a trained `train_classifier` folder) and --prepared, also
  the classifier's accuracy on the requested classes and the Frechet distance of its features to
  an equally large set of real validation images (printed first: the FD of as many real training
  images, the floor at this sample size).
Prints a markdown table and writes the CSV that `dvc plots` can draw (x = steps, y = any column).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import time
from pathlib import Path

import numpy as np
import torch

from synthgen import paths
from synthgen.atomic import atomic_write_bytes
from synthgen.autoencoder import load_autoencoder, load_latents, scaled_latents
from synthgen.diffusion import SAMPLERS, sample, sampler_options
from synthgen.imaging import save_grid, to_uint8
from synthgen.ldm import TrainedDiffusion, load_diffusion
from synthgen.training.distributed import resolve_device


class TimedEpsFn:
    """eps_fn that adds the time spent inside it (CUDA synchronised) to `seconds`."""

    def __init__(self, eps_fn, device: torch.device):
        self.eps_fn, self.device = eps_fn, device
        self.seconds, self.calls = 0.0, 0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.sync()
        start = time.perf_counter()
        eps = self.eps_fn(x_t, t)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return eps


def autocast(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def run_sampler(model: TrainedDiffusion, name: str, steps: int, x_T: torch.Tensor, labels: torch.Tensor | None,
                guidance: float, seed: int, bf16: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Scaled latents from one sampler, and its timing: total seconds, model seconds, network calls."""
    device = x_T.device
    timed = TimedEpsFn(model.eps_fn(labels, guidance), device)
    preview = model.config.preview
    options = {key: getattr(preview, key) for key in sampler_options(name)}
    generator = torch.Generator(device).manual_seed(seed)
    timed.sync()
    start = time.perf_counter()
    with autocast(device, bf16):
        z = sample(timed, x_T, schedule=model.schedule, sampler=name, steps=steps, generator=generator,
                   timestep_spacing=preview.timestep_spacing, **options)
    timed.sync()
    seconds = time.perf_counter() - start
    return z.float(), {"seconds": seconds, "model_seconds": timed.seconds, "nfe": timed.calls}


class ClassifierQuality:
    """Accuracy on the requested classes and FD of classifier features against real validation images."""

    def __init__(self, classifier_dir: str, prepared_dir: str, count: int, seed: int, device: torch.device):
        from synthgen.evaluation.features import embed_pixels, seeded_subset
        from synthgen.evaluation.trained import load_classifier
        from synthgen.metrics import frechet_distance
        from synthgen.shards import read_arrays

        self.embed, self.frechet = embed_pixels, frechet_distance
        self.classifier = load_classifier(classifier_dir, device)
        val, _, _ = read_arrays(Path(prepared_dir) / "val")
        train, _, _ = read_arrays(Path(prepared_dir) / "train")
        self.real_features = embed_pixels(self.classifier.model, val[seeded_subset(len(val), count, seed)], 256).features
        train_features = embed_pixels(self.classifier.model, train[seeded_subset(len(train), count, seed)], 256).features
        self.baseline_fd = frechet_distance(train_features, self.real_features)  # real vs real at this sample size

    def __call__(self, pixels: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        embedding = self.embed(self.classifier.model, pixels, 256)
        accuracy = float((embedding.predicted.numpy() == labels).mean())
        return {"classifier_accuracy": accuracy, "fd": self.frechet(embedding.features, self.real_features)}


def decode(autoencoder, z: torch.Tensor, bf16: bool) -> np.ndarray:
    device = next(autoencoder.model.parameters()).device
    with torch.no_grad(), autocast(device, bf16):
        return to_uint8(autoencoder.decode(z.to(device)).float())


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", default=paths.DIFFUSION, help="trained diffusion folder")
    parser.add_argument("--autoencoder", default=paths.AUTOENCODER, help="trained autoencoder folder")
    parser.add_argument("--latents", default=paths.LATENTS, help="latent store (for the data statistics)")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20, 50, 250])
    parser.add_argument("--per-class", type=int, default=4, help="samples per class in every run")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the preview's)")
    parser.add_argument("--classifier", default=None, help="trained classifier folder: adds accuracy and FD")
    parser.add_argument("--prepared", default=paths.PREPARED, help="prepared data (its val split is the FD reference)")
    parser.add_argument("--grids", default=None, help="folder for one decoded per-class grid per run")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="CSV to write (columns sampler, steps, seconds, ...)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    # 1) model, decoder, data statistics, fixed labels and x_T
    device = resolve_device(args.device)
    model = load_diffusion(args.diffusion, device)
    autoencoder = load_autoencoder(args.autoencoder, device)
    latents = load_latents(args.latents)
    data = scaled_latents(latents.mean, latents.std, latents.scale_factor, torch.Generator().manual_seed(args.seed))
    classes = max(model.num_classes, 1)
    labels = torch.arange(classes).repeat_interleave(args.per_class)
    x_T = torch.randn((len(labels), *model.latent_shape), generator=torch.Generator().manual_seed(args.seed))
    conditional = labels.to(device) if model.num_classes > 0 else None
    guidance = model.config.preview.guidance_scale if args.guidance is None else args.guidance
    quality = ClassifierQuality(args.classifier, args.prepared, len(labels), args.seed, device) if args.classifier else None
    print(f"{len(labels)} samples ({args.per_class} per class), guidance {guidance}, device {device}, "
          f"{torch.get_num_threads()} CPU threads; data latents: mean {data.mean():.3f}, std {data.std():.3f}")
    if quality is not None:
        print(f"FD of {len(labels)} real train images to as many real val images (the floor at this size): "
              f"{quality.baseline_fd:.3f}")
        dim = quality.real_features.shape[1]
        if len(labels) <= dim:
            print(f"warning: {len(labels)} samples <= {dim} feature dims: the covariances are rank-deficient and "
                  "FD is unreliable; raise --per-class")

    # 2) every sampler at every step count
    rows = []
    for name in args.samplers:
        for steps in args.steps:
            z, timing = run_sampler(model, name, steps, x_T.to(device), conditional, guidance, args.seed + 1, args.bf16)
            row = {"sampler": name, "steps": steps, "nfe": timing["nfe"], "seconds": timing["seconds"],
                   "images_per_s": len(labels) / timing["seconds"],
                   "overhead": 1 - timing["model_seconds"] / timing["seconds"],
                   "latent_mean": z.mean().item(), "latent_std": z.std().item(),
                   "data_mean": data.mean().item(), "data_std": data.std().item()}
            if quality is not None or args.grids:
                pixels = decode(autoencoder, z, args.bf16)
                if quality is not None:
                    row.update(quality(pixels, labels.numpy()))
                if args.grids:
                    save_grid(pixels, Path(args.grids) / f"{name}-{steps}.png", nrow=args.per_class,
                              scale=max(1, 128 // pixels.shape[1]))
            rows.append(row)
            print(f"{name:>16} {steps:>4} steps: {row['seconds']:.2f} s, overhead {row['overhead']:.1%}, "
                  f"latent std {row['latent_std']:.3f}", flush=True)

    # 3) the table and the CSV
    columns = ["sampler", "steps", "nfe", "seconds", "images_per_s", "overhead", "latent_mean", "latent_std",
               "data_mean", "data_std"] + (["classifier_accuracy", "fd"] if quality is not None else [])
    print(markdown_table(rows, columns))
    if args.out:
        write_csv(Path(args.out), rows, columns)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
