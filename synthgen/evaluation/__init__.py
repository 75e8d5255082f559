"""The train_classifier and evaluate stages as pure functions (Prefect flows and DVC call these)."""
from synthgen.evaluation.classifier_stage import train_classifier
from synthgen.evaluation.evaluate_stage import evaluate
from synthgen.evaluation.sweep import fd_vs_steps
from synthgen.evaluation.trained import TrainedClassifier, load_classifier

__all__ = ["TrainedClassifier", "evaluate", "fd_vs_steps", "load_classifier", "train_classifier"]
