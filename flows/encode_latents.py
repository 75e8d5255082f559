"""Stage `encode_latents`: encode the train split once, so diffusion training never runs the encoder."""
from __future__ import annotations

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from tasks.autoencoder import encode_latents_task, read_split_task


@flow(name="encode_latents", log_prints=True)
def encode_latents(params_path: str = "params.yaml", overrides: list[str] | None = None,
                   prepared: str = paths.PREPARED, autoencoder: str = paths.AUTOENCODER,
                   out: str = paths.LATENTS) -> dict:
    """Write the posterior mean/std and labels of every train image to the latent store in `out`."""
    params = load_params(params_path, overrides or [], check_paths=False)
    train = read_split_task(prepared, "train")
    summary = encode_latents_task(params.autoencoder, autoencoder, train, out)
    write_resolved(params, out, name="params.json")
    print(f"encoded {len(train[1])} images into {out}")
    return summary


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("encode")
