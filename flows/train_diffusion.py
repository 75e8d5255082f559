"""Stage `train_diffusion`: the class-conditional latent UNet (`synthgen.stages.train_diffusion`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.outputs import torchrun_follower
from synthgen.stages import train_diffusion as stage
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, LatentsLayout, PreparedLayout
from tasks.stage import stage_task


@flow(name="train_diffusion", log_prints=True)
def train_diffusion(params: Params, prepared: str = PreparedLayout.DEFAULT, latents: str = LatentsLayout.DEFAULT,
                    autoencoder: str = AutoencoderLayout.DEFAULT, out: str = DiffusionLayout.DEFAULT) -> dict:
    """Train on the latent store (never on images) and write EMA weights, config and a per-class grid."""
    inputs = stage.Inputs(PreparedLayout(Path(prepared)), LatentsLayout(Path(latents)),
                          AutoencoderLayout(Path(autoencoder)))
    summary = stage_task(stage.run, params.diffusion, inputs, Path(out))
    if torchrun_follower():  # rank 0 writes and reports
        return summary
    write_resolved(params, out)
    print(f"diffusion: {summary['steps']} steps, final loss {summary['final_loss']:.4f} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train_diffusion")
