"""Stage `train_filter`: the classifier that screens samples in stage `sample` (`synthgen.stages.train_filter`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.outputs import torchrun_follower
from synthgen.stages import train_filter as stage
from synthgen.stages.layout import FilterLayout, PreparedLayout
from tasks.stage import stage_task


@flow(name="train_filter", log_prints=True)
def train_filter(params: Params, prepared: str = PreparedLayout.DEFAULT, out: str = FilterLayout.DEFAULT) -> dict:
    """Train the sampling filter on real train images, measure it on real val, write its weights."""
    summary = stage_task(stage.run, params, stage.Inputs(PreparedLayout(Path(prepared))), Path(out))
    if torchrun_follower():  # rank 0 writes and reports
        return summary
    write_resolved(params, out)
    print(f"filter: real val accuracy {summary.get('val_accuracy')} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train_filter")
