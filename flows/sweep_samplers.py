"""Stage `sweep_samplers`: quality and wall time of every sampler at several step counts
(`synthgen.stages.sweep_samplers`); `evaluate` plots its sweep.csv."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.stages import sweep_samplers as stage
from synthgen.stages.layout import AutoencoderLayout, ClassifierLayout, DiffusionLayout, PreparedLayout, SweepLayout
from tasks.stage import stage_task


@flow(name="sweep_samplers", log_prints=True)
def sweep_samplers(params: Params, diffusion: str = DiffusionLayout.DEFAULT,
                   autoencoder: str = AutoencoderLayout.DEFAULT, classifier: str = ClassifierLayout.DEFAULT,
                   prepared: str = PreparedLayout.DEFAULT, out: str = SweepLayout.DEFAULT) -> dict:
    """Sample with each sampler of `evaluate.sweep` at each step count and score the images."""
    inputs = stage.Inputs(DiffusionLayout(Path(diffusion)), AutoencoderLayout(Path(autoencoder)),
                          ClassifierLayout(Path(classifier)), PreparedLayout(Path(prepared)))
    summary = stage_task(stage.run, params, inputs, Path(out))
    write_resolved(params, out)
    best = max(summary["rows"], key=lambda r: r["conditional_accuracy"])
    print(f"sweep: {len(summary['rows'])} runs of {summary['samples']} samples; best conditional accuracy "
          f"{best['conditional_accuracy']:.3f} ({best['sampler']}, {best['steps']} steps) -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("sweep_samplers")
