"""The KL autoencoder stage: training, evaluation, the latent scale factor and the latent store."""
from synthgen.autoencoder.latent_store import LatentSet, LatentStoreError, load_latents, scaled_latents
from synthgen.autoencoder.stage import encode_latents, train_autoencoder
from synthgen.autoencoder.trained import TrainedAutoencoder, load_autoencoder

__all__ = [
    "LatentSet", "LatentStoreError", "TrainedAutoencoder", "encode_latents", "load_autoencoder", "load_latents",
    "scaled_latents", "train_autoencoder",
]
