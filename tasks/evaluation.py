from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.config.evaluate import EvaluateConfig
from synthgen.config.sample import SampleConfig
from synthgen.evaluation.classifier_stage import train_classifier
from synthgen.evaluation.evaluate_stage import evaluate
from synthgen.evaluation.sweep import read_curves
from synthgen.evaluation.sweep_stage import run_sweep


@task(cache_policy=NO_CACHE)
def train_classifier_task(cfg: EvaluateConfig, train: tuple, val: tuple, class_names: list[str], out: str) -> dict:
    """Train the feature classifier (and the CAS reference) on real data and measure it on real val."""
    return train_classifier(cfg, train[0], train[1], val[0], val[1], class_names, out)


@task(cache_policy=NO_CACHE)
def sweep_samplers_task(cfg: EvaluateConfig, sample: SampleConfig, diffusion: str, autoencoder: str, classifier: str,
                        prepared: str, out: str) -> dict:
    """Every sampler at every step count of `cfg.sweep`, scored by the feature classifier."""
    return run_sweep(cfg, sample.sampler, diffusion, autoencoder, classifier, prepared, out, device=sample.device,
                     threads=cfg.sweep.cpu_threads, bf16=sample.bf16)


@task(cache_policy=NO_CACHE)
def evaluate_task(cfg: EvaluateConfig, prepared: str, synthetic: str, classifier: str, out: str,
                  sweep: str | None = None) -> dict:
    """Score the synthetic dataset against real data, gate it, and write metrics, plots and the report
    (with the sampler sweep's quality-versus-steps curve when `sweep` names its sweep.csv)."""
    curves = read_curves(sweep) if sweep else None
    return evaluate(cfg, prepared, synthetic, classifier, out, quality_vs_steps=curves)
