"""Stage `sweep_samplers`: quality and wall time of every sampler at several step counts.

Its sweep.csv is the quality-versus-steps curve that `evaluate` plots and puts in the report.
"""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.evaluation import sweep_samplers_task


@flow(name="sweep_samplers", log_prints=True)
def sweep_samplers(params_path: str = "params.yaml", overrides: list[str] | None = None,
                   diffusion: str = paths.DIFFUSION, autoencoder: str = paths.AUTOENCODER,
                   classifier: str = paths.CLASSIFIER, prepared: str = paths.PREPARED, out: str = paths.SWEEP) -> dict:
    """Sample with each sampler of `evaluate.sweep` at each step count and score the images."""
    params = load_params(params_path, overrides or [], check_paths=False)
    summary = sweep_samplers_task(params.evaluate, params.sample, diffusion, autoencoder, classifier, prepared, out)
    write_resolved(params, out)
    best = max(summary["rows"], key=lambda r: r["conditional_accuracy"])
    print(f"sweep: {len(summary['rows'])} runs of {summary['samples']} samples; best conditional accuracy "
          f"{best['conditional_accuracy']:.3f} ({best['sampler']}, {best['steps']} steps) -> {out}/sweep.csv")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("sweep")
