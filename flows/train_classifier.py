"""Stage `train_classifier`: the feature classifier every metric is measured in (`synthgen.stages.train_classifier`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.outputs import torchrun_follower
from synthgen.stages import train_classifier as stage
from synthgen.stages.layout import ClassifierLayout, PreparedLayout
from tasks.stage import stage_task


@flow(name="train_classifier", log_prints=True)
def train_classifier(params: Params, prepared: str = PreparedLayout.DEFAULT,
                     out: str = ClassifierLayout.DEFAULT) -> dict:
    """Train on real train images, measure on real val, write the weights and their accuracy."""
    summary = stage_task(stage.run, params.evaluate, stage.Inputs(PreparedLayout(Path(prepared))), Path(out))
    if torchrun_follower():  # rank 0 writes and reports
        return summary
    write_resolved(params, out)
    print(f"classifier: real val accuracy {summary.get('val_accuracy')} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train_classifier")
