"""Evaluation in a classifier's feature space (its stages: `synthgen.stages.train_classifier`, `.evaluate`)."""
from synthgen.evaluation.trained import TrainedClassifier, load_classifier

__all__ = ["TrainedClassifier", "load_classifier"]
