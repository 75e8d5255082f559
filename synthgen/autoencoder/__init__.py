"""The KL autoencoder: losses, evaluation, the latent scale factor and the latent store (stages: `synthgen.stages`)."""
from synthgen.autoencoder.latent_store import LatentSet, LatentStoreError, load_latents, scaled_latents
from synthgen.autoencoder.trained import TrainedAutoencoder, load_autoencoder

__all__ = ["LatentSet", "LatentStoreError", "TrainedAutoencoder", "load_autoencoder", "load_latents", "scaled_latents"]
