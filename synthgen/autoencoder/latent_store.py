"""The encoded training set: posterior moments of every image, written once, read whole and fast.

Layout of a latent folder:
  latents-00000.safetensors, ...  tensors `mean` and `std` (float32, (n, c, h, w)) and `labels` (int64, (n,))
  latents.json                    scale_factor, shape, count, dtype, sha256 of the autoencoder
                                  weights, and name, count and sha256 of every shard (written last)
Diffusion training never runs the encoder: it draws z = (mean + std * eps) * scale_factor per
batch (`scaled_latents`), or uses mean * scale_factor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from synthgen.atomic import atomic_write_bytes, atomic_write_json, sha256_bytes
from synthgen.errors import SynthgenError

INDEX = "latents.json"
DTYPE = torch.float32  # storage type of `mean` and `std`: exact, and small at our image counts


class LatentStoreError(SynthgenError):
    """A latent folder that is missing, incomplete or whose shards do not match their checksums."""


@dataclass(frozen=True)
class LatentSet:
    """Posterior moments of an encoded image set, with the factor that gives unit-variance latents."""

    mean: torch.Tensor  # (N, c, h, w) float32
    std: torch.Tensor  # (N, c, h, w) float32
    labels: torch.Tensor  # (N,) int64
    scale_factor: float  # multiply latents by this before diffusion; divide before decoding
    info: dict[str, Any]  # the rest of latents.json

    def __len__(self) -> int:
        return len(self.labels)


def scaled_latents(mean: torch.Tensor, std: torch.Tensor, scale_factor: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """z * scale_factor with z = mean + std * eps drawn from `generator`; None gives the posterior mean."""
    if generator is None:
        return mean * scale_factor
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return (mean + std * eps) * scale_factor


def write_latents(out_dir: str | Path, mean: torch.Tensor, std: torch.Tensor, labels: torch.Tensor,
                  scale_factor: float, model_sha256: str, per_shard: int = 50_000) -> dict[str, Any]:
    """Write the shards, then latents.json; return the index."""
    out_dir = Path(out_dir)
    shards = []
    for i, start in enumerate(range(0, len(labels), per_shard)):
        part = slice(start, start + per_shard)
        tensors = {"mean": mean[part].to(DTYPE).contiguous(), "std": std[part].to(DTYPE).contiguous(),
                   "labels": labels[part].to(torch.int64).contiguous()}
        data = safetensors.torch.save(tensors)
        name = f"latents-{i:05d}.safetensors"
        atomic_write_bytes(out_dir / name, data)
        shards.append({"file": name, "count": len(tensors["labels"]), "sha256": sha256_bytes(data)})
    index = {
        "scale_factor": scale_factor, "shape": list(mean.shape[1:]), "count": len(labels),
        "dtype": str(DTYPE).removeprefix("torch."), "model_sha256": model_sha256, "shards": shards,
    }
    atomic_write_json(out_dir / INDEX, index)
    return index


def read_shard(folder: Path, entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = folder / entry["file"]
    if not path.is_file():
        raise LatentStoreError(f"{path}: shard listed in {INDEX} is missing; re-run the encode stage")
    data = path.read_bytes()
    if sha256_bytes(data) != entry["sha256"]:
        raise LatentStoreError(f"{path}: sha256 does not match {INDEX}; the shard is corrupt, re-run the encode stage")
    return safetensors.torch.load(data)


def load_latents(folder: str | Path) -> LatentSet:
    """Read and verify every shard of a latent folder into one LatentSet (CPU tensors)."""
    folder = Path(folder)
    if not (folder / INDEX).is_file():
        raise LatentStoreError(f"{folder}: no {INDEX}; encode the dataset first")
    index = json.loads((folder / INDEX).read_text())
    parts = [read_shard(folder, entry) for entry in index["shards"]]
    mean, std, labels = (torch.cat([p[k] for p in parts]) for k in ("mean", "std", "labels"))
    if len(labels) != index["count"]:
        raise LatentStoreError(f"{folder}: shards hold {len(labels)} latents, {INDEX} says {index['count']}")
    info = {k: v for k, v in index.items() if k != "scale_factor"}
    return LatentSet(mean, std, labels, float(index["scale_factor"]), info)


def label_tensor(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64)
