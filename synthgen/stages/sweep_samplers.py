"""Stage `sweep_samplers`: every sampler at every step count of `evaluate.sweep`, on the trained models.

Writes into the output folder (named by `SweepLayout`):
  sweep.csv    one row per (sampler, steps): nfe, seconds, overhead, conditional_accuracy, fd, ...
  sweep.json   the sample size and the real-vs-real FD at that size (the floor of the `fd` column)
Sampler options other than the name and step count (guidance, spacing, eta...) are the sample stage's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgen.atomic import atomic_write_json
from synthgen.config.diffusion import SamplerConfig
from synthgen.config.evaluate import EvaluateConfig
from synthgen.config.params import Params
from synthgen.evaluation.sweep import ClassifierScore, sweep_labels, sweep_samplers, write_sweep
from synthgen.evaluation.trained import load_classifier
from synthgen.generate.models import load_models
from synthgen.outputs import writes
from synthgen.stages.layout import AutoencoderLayout, ClassifierLayout, DiffusionLayout, PreparedLayout, SweepLayout
from synthgen.training.distributed import cpu_threads

log = logging.getLogger(__name__)


def run_sweep(cfg: EvaluateConfig, sampler: SamplerConfig, diffusion_dir: str | Path, autoencoder_dir: str | Path,
              classifier_dir: str | Path, prepared_dir: str | Path, out_dir: str | Path, *, device: str = "auto",
              threads: int = 0, bf16: bool = True) -> dict[str, Any]:
    """Run the sweep and write sweep.csv and sweep.json; returns the summary with the rows."""
    layout = SweepLayout(Path(out_dir))
    with cpu_threads(threads):
        models = load_models(str(diffusion_dir), str(autoencoder_dir), device)
        count = len(sweep_labels(models.diffusion.num_classes, cfg.sweep.per_class))
        score = ClassifierScore(load_classifier(classifier_dir, models.device), prepared_dir, count, cfg.seed,
                                cfg.batch_size)
        rows = []
        for row, _ in sweep_samplers(models.diffusion, models.autoencoder, sampler, cfg.sweep.samplers,
                                     cfg.sweep.steps, cfg.sweep.per_class, cfg.seed, score, bf16):
            log.info("%s, %d steps: accuracy %.3f, FD %.3f, %.1f s (overhead %.1f%%)", row["sampler"], row["steps"],
                     row["conditional_accuracy"], row["fd"], row["seconds"], 100 * row["overhead"])
            rows.append(row)
    write_sweep(layout.csv, rows)
    summary = {"samples": count, "baseline_fd": score.baseline_fd, "feature_dim": score.feature_dim,
               "sampler": sampler.model_dump(mode="json")}
    atomic_write_json(layout.summary, summary)
    return {**summary, "rows": rows}


@dataclass(frozen=True)
class Inputs:
    diffusion: DiffusionLayout
    autoencoder: AutoencoderLayout
    classifier: ClassifierLayout
    prepared: PreparedLayout  # its val split is the FD reference


@writes("sweep_samplers")
def run(params: Params, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: `evaluate.sweep` with the sample stage's sampler options, device and bf16."""
    cfg, sample = params.evaluate, params.sample
    return run_sweep(cfg, sample.sampler, inputs.diffusion.root, inputs.autoencoder.root, inputs.classifier.root,
                     inputs.prepared.root, out, device=sample.device, threads=cfg.sweep.cpu_threads, bf16=sample.bf16)
