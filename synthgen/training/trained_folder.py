"""What every trained-model folder loader shares: its files must be there, and its weights must be
the verified ones and fit the network its config describes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, TypeVar

import torch
from torch import nn

from synthgen.training.checkpoint import CheckpointError, load_verified

CONFIG = "config.json"
M = TypeVar("M", bound=nn.Module)


def require_files(model_dir: Path, names: Iterable[str], remedy: str) -> None:
    """Raise CheckpointError naming the first of `names` missing from `model_dir`, and `remedy`."""
    for name in names:
        if not (model_dir / name).is_file():
            raise CheckpointError(f"{model_dir}: {name} is missing; {remedy}")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_weights(model: M, path: Path, device: str | torch.device) -> tuple[M, str]:
    """`model` holding the weights at `path` (sha256 checked against their manifest), on `device`, in
    eval mode without gradients; and that sha256. Weights that do not fit the network are a CheckpointError."""
    tensors, _, digest = load_verified(path)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit {CONFIG} ({str(e).splitlines()[0]})") from None
    return model.to(device).eval().requires_grad_(False), digest
