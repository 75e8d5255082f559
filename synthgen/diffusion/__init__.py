"""Pure diffusion core: schedules, parameterisations, losses, guidance and samplers (no I/O, no Prefect)."""
from synthgen.diffusion.adapter import eps_fn_from_model
from synthgen.diffusion.guidance import drop_labels, guided_prediction
from synthgen.diffusion.losses import DiffusionLoss, loss_weight
from synthgen.diffusion.parameterization import convert, to_epsilon, to_v, to_x0, training_target
from synthgen.diffusion.sample import sample, sample_with_config
from synthgen.diffusion.samplers import SAMPLERS
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn, select_timesteps

__all__ = [
    "SAMPLERS",
    "DiffusionLoss",
    "EpsFn",
    "NoiseSchedule",
    "convert",
    "drop_labels",
    "eps_fn_from_model",
    "guided_prediction",
    "loss_weight",
    "sample",
    "sample_with_config",
    "select_timesteps",
    "to_epsilon",
    "to_v",
    "to_x0",
    "training_target",
]
