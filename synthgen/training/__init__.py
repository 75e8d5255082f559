"""The shared training library: loop, checkpoints, EMA, DDP, metrics log, LR schedule."""
from synthgen.training.checkpoint import CheckpointError, load_verified, save_verified
from synthgen.training.loop import MAIN, Objective, TrainResult, frozen, train

__all__ = ["CheckpointError", "MAIN", "Objective", "TrainResult", "frozen", "load_verified", "save_verified", "train"]
