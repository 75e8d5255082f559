"""Metrics as pure functions over feature arrays, the quality gate, and the HTML report."""
from synthgen.metrics.conditional import ConditionalAccuracy, cas_ratio, conditional_accuracy
from synthgen.metrics.frechet import GaussianStats, frechet_distance, frechet_distance_from_stats, gaussian_stats
from synthgen.metrics.gate import GateCheck, GateVerdict, evaluate_gate, fd_ratio
from synthgen.metrics.kid import KID, kernel_inception_distance
from synthgen.metrics.memorisation import Memorisation, flatten_pixels, memorisation, nearest_neighbour
from synthgen.metrics.precision_recall import PrecisionRecall, k_nearest, precision_recall

__all__ = [
    "ConditionalAccuracy", "GateCheck", "GateVerdict", "GaussianStats", "KID", "Memorisation", "PrecisionRecall",
    "cas_ratio", "conditional_accuracy", "evaluate_gate", "fd_ratio", "flatten_pixels", "frechet_distance",
    "frechet_distance_from_stats", "gaussian_stats", "k_nearest", "kernel_inception_distance",
    "memorisation", "nearest_neighbour", "precision_recall",
]
