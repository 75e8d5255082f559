"""Stage `train_autoencoder`: the KL autoencoder and its latent scale factor, in `models/autoencoder/`."""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.autoencoder import read_split_task, train_autoencoder_task


@flow(name="train_autoencoder", log_prints=True)
def train_autoencoder(params_path: str = "params.yaml", overrides: list[str] | None = None,
                      prepared: str = paths.PREPARED, out: str = paths.AUTOENCODER) -> dict:
    """Train on the prepared train split, evaluate on val, write weights, scale factor and metrics."""
    params = load_params(params_path, overrides or [], check_paths=False)
    train = read_split_task(prepared, "train")
    val = read_split_task(prepared, "val")
    summary = train_autoencoder_task(params.autoencoder, train, val, out)
    write_resolved(params, out)
    print(f"autoencoder: val PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f}, "
          f"scale factor {summary['scale_factor']:.4f} -> {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train-ae")
