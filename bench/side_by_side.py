"""The small classifiers of train_classifier and evaluate trained one by one and side by side, in one run.

Each part runs twice on the same data, with `evaluate.classifier_workers` 1 (one by one, in this process)
and 0 (one spawned process per core at their one thread), and prints both wall times, their ratio, and
whether the figures agree (they must: each run keeps its thread count). The first part is stage
train_classifier (the evaluator and the CAS reference); the second, the evaluate stage's CAS and
utility runs on the first `evaluate.num_samples` synthetic images.

    .venv/bin/python bench/side_by_side.py --prepared data/prepared --synthetic data/synthetic
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from synthgen.config import load_params
from synthgen.evaluation.inputs import load_prepared, load_synthetic
from synthgen.stages.evaluate import classifier_runs
from synthgen.stages.train_classifier import train_classifier
from synthgen.training.side_by_side import worker_count


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--synthetic", default="data/synthetic")
    args = ap.parse_args()
    base = load_params(args.params, check_paths=False).evaluate
    configs = {"one by one": base.model_copy(update={"classifier_workers": 1}),
               "side by side": base.model_copy(update={"classifier_workers": 0})}
    real = load_prepared(args.prepared)
    synthetic = load_synthetic(args.synthetic, real.class_names)
    synthetic = synthetic.take(np.arange(min(base.num_samples, len(synthetic))))
    print(f"{len(os.sched_getaffinity(0))} cores; side by side uses "
          f"{worker_count([base.cas.train, base.utility.train], 0)} processes")
    print("| part | one by one s | side by side s | ratio | same figures |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: timed(train_classifier, cfg, real.train.pixels, real.train.labels, real.val.pixels,
                           real.val.labels, real.class_names, Path(tmp) / f"classifier {name}")
               for name, cfg in configs.items()}
        (a, ta), (b, tb) = out.values()
        figures = ("model_sha256", "val_accuracy", "cas_reference_accuracy", "cas_reference_accuracy_std")
        same = all(a[k] == b[k] for k in figures)
        print(f"| train_classifier (evaluator, {base.cas.runs} CAS references) | {ta:.1f} | {tb:.1f} | {tb / ta:.2f} "
              f"| {same} |")
        out = {name: timed(classifier_runs, cfg, real, synthetic, Path(tmp) / f"cas {name}")
               for name, cfg in configs.items()}
        (a, ta), (b, tb) = out.values()
        utility_runs = 2 * len(base.utility.fractions) * base.utility.enabled
        print(f"| evaluate ({base.cas.runs} CAS and {utility_runs} utility runs) | {ta:.1f} | {tb:.1f} | {tb / ta:.2f} "
              f"| {a == b} |")


if __name__ == "__main__":
    main()
