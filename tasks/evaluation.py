from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.config.evaluate import EvaluateConfig
from synthgen.evaluation.classifier_stage import train_classifier
from synthgen.evaluation.evaluate_stage import evaluate


@task(cache_policy=NO_CACHE)
def train_classifier_task(cfg: EvaluateConfig, train: tuple, val: tuple, class_names: list[str], out: str) -> dict:
    """Train the feature classifier (and the CAS reference) on real data and measure it on real val."""
    return train_classifier(cfg, train[0], train[1], val[0], val[1], class_names, out)


@task(cache_policy=NO_CACHE)
def evaluate_task(cfg: EvaluateConfig, prepared: str, synthetic: str, classifier: str, out: str) -> dict:
    """Score the synthetic dataset against real data, gate it, and write metrics, plots and the report."""
    return evaluate(cfg, prepared, synthetic, classifier, out)
