"""Per-sample quality of a synthetic dataset: `quality.parquet` beside `metadata.parquet`, joinable on key.

The shards are never rewritten; this table is replaced as a whole (atomically) on every evaluation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from synthgen.metrics.memorisation import Memorisation
from synthgen.shards.index import write_parquet
from synthgen.stages.layout import EvalLayout


def quality_table(keys: list[str], requested: np.ndarray, logits: torch.Tensor, gate_memo: Memorisation,
                  feature_memo: Memorisation, pixel_memo: Memorisation, train_keys: list[str],
                  measured: np.ndarray) -> pa.Table:
    """One row per sample. `nn_distance`, `near_duplicate` and `nn_train_key` are in the gate's space.

    classifier_confidence: softmax probability of predicted_label; requested_probability: that of
    the requested label; measured: whether the sample is in the fixed-size set the metrics use.
    """
    probs = logits.float().softmax(dim=1)
    confidence, predicted = probs.max(dim=1)
    in_measured = np.zeros(len(keys), dtype=bool)
    in_measured[measured] = True
    return pa.table({
        "key": pa.array(keys, pa.string()),
        "predicted_label": pa.array(predicted.numpy(), pa.int64()),
        "classifier_confidence": pa.array(confidence.numpy(), pa.float32()),
        "requested_probability": pa.array(probs[torch.arange(len(keys)), torch.as_tensor(requested)].numpy(), pa.float32()),
        "nn_distance": pa.array(gate_memo.distances.float().numpy(), pa.float32()),
        "near_duplicate": pa.array(gate_memo.near_duplicate.numpy(), pa.bool_()),
        "nn_train_key": pa.array([train_keys[i] for i in gate_memo.indices.tolist()], pa.string()),
        "feature_nn_distance": pa.array(feature_memo.distances.float().numpy(), pa.float32()),
        "pixel_nn_distance": pa.array(pixel_memo.distances.float().numpy(), pa.float32()),
        "measured": pa.array(in_measured, pa.bool_()),
    })


def write_quality(folders: list[Path], table: pa.Table) -> None:
    """quality.parquet into each folder (the synthetic dataset, and the evaluation's own outputs)."""
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        write_parquet(EvalLayout(folder).quality, table)
