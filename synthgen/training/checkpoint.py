"""Checkpoints as safetensors plus a sha256 manifest: no pickle anywhere, tampering is refused.

A checkpoint file holds tensors under prefixes, and everything else as JSON in the safetensors
header metadata:
  net/<name>/<param>        weights of every trained network
  optim/<name>/<i>.<key>    optimizer state tensors (AdamW exp_avg, exp_avg_sq, step) of parameter i
  ema/<param>               EMA weights of the main network, when EMA is on
  rng/<rank>/<kind>         random-number states (uint8 tensors) of every rank
The manifest `<stem>.manifest.json` beside it is written last, so a checkpoint without one is
incomplete and ignored.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

import safetensors.torch
import torch

from synthgen.atomic import atomic_write_bytes, atomic_write_json, canonical_json, sha256_bytes
from synthgen.errors import SynthgenError

FORMAT = "synthgen.checkpoint/1"
MANIFEST_SUFFIX = ".manifest.json"
METADATA_KEY = "synthgen"  # all our header metadata, as one canonical JSON string


class CheckpointError(SynthgenError):
    """A checkpoint or weights file that is missing, incomplete, corrupt or does not fit the network."""


def manifest_path(path: Path) -> Path:
    return path.with_name(path.stem + MANIFEST_SUFFIX)


def save_verified(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write tensors as safetensors, then a manifest with their sha256; return the sha256.

    The metadata goes into the header as one canonical JSON string: safetensors writes a metadata
    map in random key order, which would make equal inputs give different bytes and checksums.
    """
    path = Path(path)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {METADATA_KEY: canonical_json(metadata)} if metadata else None
    data = safetensors.torch.save(cpu, metadata=header)
    digest = sha256_bytes(data)
    atomic_write_bytes(path, data)
    atomic_write_json(manifest_path(path), {"file": path.name, "sha256": digest, "bytes": len(data)})
    return digest


def read_header_metadata(data: bytes) -> dict[str, str]:
    """The metadata `save_verified` stored in a safetensors blob (8-byte little-endian header size,
    then the JSON header); a foreign file's `__metadata__` map is returned as it is."""
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size]).get("__metadata__", {})
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else metadata


def load_verified(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """Tensors, header metadata and sha256 of a safetensors file whose bytes match its manifest."""
    path = Path(path)
    manifest = manifest_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if not manifest.is_file():
        raise CheckpointError(f"{path}: no manifest {manifest.name} beside it; the file is incomplete or not ours")
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError):
        raise CheckpointError(f"{manifest}: not a valid manifest (no sha256); delete {path.name} and its manifest") from None
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != expected:
        raise CheckpointError(
            f"{path}: sha256 {actual[:12]}... does not match its manifest ({expected[:12]}...); "
            "the file is corrupt or was modified, delete or restore it"
        )
    return safetensors.torch.load(data), read_header_metadata(data), actual


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors keyed '<param index>.<key>' and JSON-able rest."""
    tensors, scalars = {}, {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            target = tensors if isinstance(value, torch.Tensor) else scalars
            target[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer`; JSON lists in param groups (betas) become tuples again."""
    state: dict[int, dict[str, Any]] = defaultdict(dict)
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state[int(index)][key] = value
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": dict(state), "param_groups": groups}


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    step: int  # optimizer steps completed
    nets: dict[str, dict[str, torch.Tensor]]  # state dict of every trained network
    optimizers: dict[str, dict[str, Any]]  # torch optimizer state dict per network
    rng: list[dict[str, torch.Tensor]]  # random-number states, one dict per rank
    ema: dict[str, torch.Tensor] | None = None  # EMA weights of the main network
    ema_updates: int = 0  # EMA updates so far (drives the decay warmup)
    extra: dict[str, Any] = field(default_factory=dict)  # small JSON-able facts (world size, ...)


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.safetensors"


def save_checkpoint(folder: str | Path, state: TrainingState, keep: int, pinned: Collection[int] = ()) -> Path:
    """Write `state` as the checkpoint of its step, then delete all but the `keep` newest and those of the
    `pinned` steps."""
    tensors: dict[str, torch.Tensor] = {}
    for name, weights in state.nets.items():
        tensors.update({f"net/{name}/{k}": v for k, v in weights.items()})
    optim_meta = {}
    for name, opt_state in state.optimizers.items():
        opt_tensors, optim_meta[name] = flatten_optimizer(opt_state)
        tensors.update({f"optim/{name}/{k}": v for k, v in opt_tensors.items()})
    for k, v in (state.ema or {}).items():
        tensors[f"ema/{k}"] = v
    for rank, states in enumerate(state.rng):
        tensors.update({f"rng/{rank}/{k}": v for k, v in states.items()})
    metadata = {
        "format": FORMAT,
        "step": str(state.step),
        "ema_updates": str(state.ema_updates),
        "nets": json.dumps(list(state.nets)),
        "optimizers": json.dumps(optim_meta),
        "extra": json.dumps(state.extra),
    }
    path = Path(folder) / checkpoint_name(state.step)
    save_verified(path, tensors, metadata)
    prune_checkpoints(folder, keep, pinned)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints (those with a manifest), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    manifests = sorted(folder.glob(f"step-*{MANIFEST_SUFFIX}"))
    return [m.with_name(m.name.removesuffix(MANIFEST_SUFFIX) + ".safetensors") for m in manifests]


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def checkpoint_step(path: Path) -> int:
    return int(path.name.removesuffix(".safetensors").removeprefix("step-"))


def prune_checkpoints(folder: str | Path, keep: int, pinned: Collection[int] = ()) -> None:
    for path in list_checkpoints(folder)[:-keep]:
        if checkpoint_step(path) in pinned:
            continue
        manifest_path(path).unlink(missing_ok=True)  # manifest first: a half-deleted checkpoint is ignored
        path.unlink(missing_ok=True)


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_checkpoint(path: str | Path) -> TrainingState:
    """Read and verify a checkpoint written by `save_checkpoint`; CheckpointError if it is not one."""
    tensors, meta, _ = load_verified(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    nets = {name: split_prefix(tensors, f"net/{name}/") for name in json.loads(meta["nets"])}
    optimizers = {
        name: unflatten_optimizer(split_prefix(tensors, f"optim/{name}/"), opt_meta)
        for name, opt_meta in json.loads(meta["optimizers"]).items()
    }
    ema = split_prefix(tensors, "ema/") or None
    rng_flat = split_prefix(tensors, "rng/")
    ranks = sorted({int(k.split("/", 1)[0]) for k in rng_flat})
    rng = [split_prefix(rng_flat, f"{rank}/") for rank in ranks]
    return TrainingState(
        step=int(meta["step"]), nets=nets, optimizers=optimizers, rng=rng, ema=ema,
        ema_updates=int(meta["ema_updates"]), extra=json.loads(meta["extra"]),
    )
