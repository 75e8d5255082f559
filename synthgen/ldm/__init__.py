"""The latent diffusion stage: train the class-conditional UNet on stored latents, and load the result."""
from synthgen.ldm.stage import DiffusionObjective, train_diffusion
from synthgen.ldm.trained import TrainedDiffusion, load_diffusion

__all__ = ["DiffusionObjective", "TrainedDiffusion", "load_diffusion", "train_diffusion"]
