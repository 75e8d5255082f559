"""Stage `train_autoencoder`: the KL autoencoder and its latent scale factor (`synthgen.stages.train_autoencoder`)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.outputs import torchrun_follower
from synthgen.stages import train_autoencoder as stage
from synthgen.stages.layout import AutoencoderLayout, PreparedLayout
from tasks.stage import stage_task


@flow(name="train_autoencoder", log_prints=True)
def train_autoencoder(params: Params, prepared: str = PreparedLayout.DEFAULT,
                      out: str = AutoencoderLayout.DEFAULT) -> dict:
    """Train on the prepared train split, evaluate on val, write weights, scale factor and metrics."""
    summary = stage_task(stage.run, params.autoencoder, stage.Inputs(PreparedLayout(Path(prepared))), Path(out))
    if torchrun_follower():  # rank 0 writes and reports
        return summary
    write_resolved(params, out)
    print(f"autoencoder: val PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f}, "
          f"scale factor {summary['scale_factor']:.4f} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train_autoencoder")
