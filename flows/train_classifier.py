"""Stage `train_classifier`: the feature classifier every evaluation metric is measured with."""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.autoencoder import read_split_task
from tasks.diffusion import class_names_task
from tasks.evaluation import train_classifier_task


@flow(name="train_classifier", log_prints=True)
def train_classifier(params_path: str = "params.yaml", overrides: list[str] | None = None,
                     prepared: str = paths.PREPARED, out: str = paths.CLASSIFIER) -> dict:
    """Train on real train images, measure on real val, write the weights and their accuracy."""
    params = load_params(params_path, overrides or [], check_paths=False)
    summary = train_classifier_task(params.evaluate, read_split_task(prepared, "train"),
                                    read_split_task(prepared, "val"), class_names_task(prepared), out)
    write_resolved(params, out)
    print(f"classifier: real val accuracy {summary.get('val_accuracy')} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train-classifier")
