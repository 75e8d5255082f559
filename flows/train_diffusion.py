"""Stage `train_diffusion`: the class-conditional latent UNet, in `models/diffusion/`."""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.diffusion import class_names_task, train_diffusion_task


@flow(name="train_diffusion", log_prints=True)
def train_diffusion(params_path: str = "params.yaml", overrides: list[str] | None = None,
                    prepared: str = paths.PREPARED, latents: str = paths.LATENTS,
                    autoencoder: str = paths.AUTOENCODER, out: str = paths.DIFFUSION) -> dict:
    """Train on the latent store (never on images) and write EMA weights, config and a per-class grid."""
    params = load_params(params_path, overrides or [], check_paths=False)
    class_names = class_names_task(prepared)
    summary = train_diffusion_task(params.diffusion, latents, autoencoder, class_names, out)
    write_resolved(params, out)
    print(f"diffusion: {summary['steps']} steps, final loss {summary['final_loss']:.4f} -> {out}/grid.png")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("train-ldm")
