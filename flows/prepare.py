"""Stage `prepare`: the source dataset becomes train/val shards in `data/prepared/`."""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.prepare import prepare_dataset_task


@flow(name="prepare", log_prints=True)
def prepare(params_path: str = "params.yaml", overrides: list[str] | None = None,
            out: str = paths.PREPARED) -> dict:
    """Prepare the dataset named by `data.source` into `out`."""
    params = load_params(params_path, overrides or [])
    summary = prepare_dataset_task(params.data, out)
    write_resolved(params, out)
    print(f"prepared {summary['written']} from {summary['seen']} inputs; rejected {summary['rejected']}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("prepare")
