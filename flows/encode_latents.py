"""Stage `encode_latents`: encode the train split once into the latent store (`synthgen.stages.encode_latents`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.stages import encode_latents as stage
from synthgen.stages.layout import AutoencoderLayout, LatentsLayout, PreparedLayout
from tasks.stage import stage_task


@flow(name="encode_latents", log_prints=True)
def encode_latents(params: Params, prepared: str = PreparedLayout.DEFAULT, autoencoder: str = AutoencoderLayout.DEFAULT,
                   out: str = LatentsLayout.DEFAULT) -> dict:
    """Write the posterior mean/std and labels of every train image to the latent store in `out`."""
    inputs = stage.Inputs(PreparedLayout(Path(prepared)), AutoencoderLayout(Path(autoencoder)))
    summary = stage_task(stage.run, params.autoencoder, inputs, Path(out))
    write_resolved(params, out)
    print(f"encoded {summary['count']} images into {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("encode_latents")
