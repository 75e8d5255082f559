import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.config.diffusion import DiffusionConfig
from synthgen.ldm.stage import train_diffusion
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def class_names_task(prepared: str) -> list[str]:
    """The class names of the prepared dataset, in label order."""
    return json.loads((Path(prepared) / "classes.json").read_text())


@task(cache_policy=NO_CACHE)
def train_diffusion_task(cfg: DiffusionConfig, latents: str, autoencoder: str, class_names: list[str],
                         out: str) -> dict:
    """Train the latent UNet (resuming from its checkpoints) and write models/diffusion with its grid."""
    return train_diffusion(cfg, latents, autoencoder, class_names, out)
