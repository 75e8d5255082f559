"""Stage `prepare`: the source dataset becomes train/val shards (`synthgen.stages.prepare`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.stages import prepare as stage
from synthgen.stages.layout import PreparedLayout
from tasks.stage import stage_task


@flow(name="prepare", log_prints=True)
def prepare(params: Params, out: str = PreparedLayout.DEFAULT) -> dict:
    """Prepare the dataset named by `data.source` into `out`."""
    summary = stage_task(stage.run, params.data, stage.Inputs(), Path(out))
    write_resolved(params, out)
    print(f"prepared {summary['written']} from {summary['seen']} inputs; rejected {summary['rejected']}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("prepare")
