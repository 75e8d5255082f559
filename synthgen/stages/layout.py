"""Where each stage writes: one small frozen layout per stage names the files of its output folder.

A layout wraps a folder (`EvalLayout(Path("eval")).gate` is `eval/gate.json`); `DEFAULT` is the
folder the CLI and `dvc.yaml` use when none is given. A stage writes through its own layout and
reads another stage's output through that stage's layout, so a file name lives in one place. The
shard store's own files (`manifest.json`, `metadata.parquet`, ...) are named by `synthgen.shards.names`, and
shard names and sample keys are built and parsed by `synthgen.shards.keys`. This module imports
only the standard library, so the CLI can take its defaults from here without loading a stage.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

PARAMS = "params.json"  # the resolved params a stage ran with, beside its outputs
METRICS = "metrics.json"
METRICS_CSV = "metrics.csv"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class PreparedLayout:
    """`prepare`: train/val shard datasets, class names, per-class counts, rejections, summary (last)."""

    root: Path
    DEFAULT: ClassVar[str] = "data/prepared"
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val")
    CLASSES: ClassVar[str] = "classes.json"
    CLASS_COUNTS: ClassVar[str] = "class_counts.json"
    REJECTED: ClassVar[str] = "rejected.parquet"
    SUMMARY: ClassVar[str] = "summary.json"
    OUTPUTS: ClassVar[tuple[str, ...]] = (*SPLITS, CLASSES, CLASS_COUNTS, REJECTED, SUMMARY)  # SUMMARY last

    def split(self, name: str) -> Path:
        return self.root / name

    @property
    def classes(self) -> Path:
        return self.root / self.CLASSES

    def class_names(self) -> list[str]:
        """The class names in label order."""
        return json.loads(self.classes.read_text())


@dataclass(frozen=True)
class TrainedModelLayout:
    """A trained model folder (`train_autoencoder`, `train_diffusion`, `train_classifier`): the weights
    and config of its `trained.py`, plus metrics, per-step metrics and checkpoints."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def metrics_csv(self) -> Path:
        return self.root / METRICS_CSV

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS


@dataclass(frozen=True)
class AutoencoderLayout(TrainedModelLayout):
    DEFAULT: ClassVar[str] = "models/autoencoder"

    @property
    def recon(self) -> Path:
        return self.root / "recon.png"


@dataclass(frozen=True)
class LatentsLayout:
    """`encode_latents`: the latent store (its files are `synthgen.autoencoder.latent_store`'s)."""

    root: Path
    DEFAULT: ClassVar[str] = "data/latents"


@dataclass(frozen=True)
class DiffusionLayout(TrainedModelLayout):
    DEFAULT: ClassVar[str] = "models/diffusion"

    @property
    def grid(self) -> Path:
        return self.root / "grid.png"


@dataclass(frozen=True)
class ClassifierLayout(TrainedModelLayout):
    DEFAULT: ClassVar[str] = "models/classifier"

    @property
    def cas_reference(self) -> Path:
        return self.root / "cas_reference"


def run_dirs(root: Path, count: int) -> list[Path]:
    """`root`/run-<k> for k < count: the folders of repeated runs that differ only in their seed (CAS)."""
    return [root / f"run-{k}" for k in range(count)]


@dataclass(frozen=True)
class FilterLayout(TrainedModelLayout):
    """`train_filter`: the classifier that screens samples in `sample` (a classifier folder, never the evaluator)."""

    DEFAULT: ClassVar[str] = "models/filter"


@dataclass(frozen=True)
class SyntheticLayout:
    """`sample`: a shard-store dataset whose shard names and sample keys start with `PREFIX`
    (`synthgen.shards.keys` builds and parses them), and its dataset card."""

    root: Path
    DEFAULT: ClassVar[str] = "data/synthetic"
    PREFIX: ClassVar[str] = "synthetic"
    CARD: ClassVar[str] = "README.md"

    @property
    def card(self) -> Path:
        return self.root / self.CARD


@dataclass(frozen=True)
class SweepLayout:
    """`sweep_samplers`: one row per (sampler, steps), and the sample size and FD floor."""

    root: Path
    DEFAULT: ClassVar[str] = "eval/sweep"

    @property
    def csv(self) -> Path:
        return self.root / "sweep.csv"

    @property
    def summary(self) -> Path:
        return self.root / "sweep.json"


@dataclass(frozen=True)
class EvalLayout:
    """`evaluate` (and every release folder): metrics, gate verdict, per-sample quality, plots and report."""

    root: Path
    DEFAULT: ClassVar[str] = "eval"
    GATE: ClassVar[str] = "gate.json"
    QUALITY: ClassVar[str] = "quality.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def gate(self) -> Path:
        return self.root / self.GATE

    @property
    def quality(self) -> Path:
        return self.root / self.QUALITY

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def grid(self) -> Path:
        return self.root / "grid_per_class.png"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def plot(self, name: str) -> Path:
        """`per_class_accuracy`, `nn_distances` or `quality_vs_steps` (DVC plot files)."""
        return self.plots / f"{name}.csv"

    @property
    def cas(self) -> Path:
        return self.root / "cas"


@dataclass(frozen=True)
class ReleasesLayout:
    """The releases root: one folder per release (an `EvalLayout` too) and `index.parquet`."""

    root: Path
    DEFAULT: ClassVar[str] = "releases"

    def release(self, release_id: str) -> Path:
        return self.root / release_id


FOLDERS = {  # CLI folder option -> its layout (the option's default is the layout's DEFAULT)
    "prepared": PreparedLayout, "autoencoder": AutoencoderLayout, "latents": LatentsLayout,
    "diffusion": DiffusionLayout, "filter": FilterLayout, "synthetic": SyntheticLayout, "classifier": ClassifierLayout,
    "sweep": SweepLayout, "eval": EvalLayout, "releases": ReleasesLayout,
}
