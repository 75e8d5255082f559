"""The train_classifier and evaluate stages as pure functions (Prefect flows and DVC call these)."""
from synthgen.evaluation.classifier_stage import train_classifier
from synthgen.evaluation.evaluate_stage import evaluate
from synthgen.evaluation.sweep_stage import run_sweep
from synthgen.evaluation.trained import TrainedClassifier, load_classifier

__all__ = ["TrainedClassifier", "evaluate", "load_classifier", "run_sweep", "train_classifier"]
