"""The trained latent diffusion model folder (its training stage is `synthgen.stages.train_diffusion`)."""
from synthgen.ldm.trained import TrainedDiffusion, load_diffusion

__all__ = ["TrainedDiffusion", "load_diffusion"]
