from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.autoencoder.stage import encode_latents, train_autoencoder
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.shards import read_arrays
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def read_split_task(prepared: str, split: str) -> tuple:
    """Decode one prepared split into (pixels, labels, keys)."""
    return read_arrays(Path(prepared) / split)


@task(cache_policy=NO_CACHE)
def train_autoencoder_task(cfg: AutoencoderConfig, train: tuple, val: tuple, out: str) -> dict:
    """Train the KL autoencoder (resuming from its checkpoints) and write models/autoencoder."""
    return train_autoencoder(cfg, train[0], train[1], val[0], out)


@task(cache_policy=NO_CACHE)
def encode_latents_task(cfg: AutoencoderConfig, model: str, train: tuple, out: str) -> dict:
    """Encode the train split once into the latent store diffusion training reads."""
    return encode_latents(model, train[0], train[1], out, batch_size=cfg.eval_batch_size, device=cfg.train.device)
