"""Stage `evaluate`: metrics against real data, the quality gate, and the HTML report.

A dataset that fails the gate is marked `status: rejected` in its manifest and the flow run fails
with the reasons; one that passes is marked `published`.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen import paths
from synthgen.config import load_params, write_resolved
from synthgen.errors import SynthgenError
from tasks.evaluation import evaluate_task


class GateRejected(SynthgenError):
    """The synthetic dataset failed the quality gate."""


@flow(name="evaluate", log_prints=True)
def evaluate(params_path: str = "params.yaml", overrides: list[str] | None = None,
             prepared: str = paths.PREPARED, synthetic: str = paths.SYNTHETIC,
             classifier: str = paths.CLASSIFIER, out: str = paths.EVAL, sweep: str = paths.SWEEP) -> dict:
    """Evaluate `synthetic` and gate it; raise GateRejected (a failed run) when it does not pass.

    The report and plots include the quality-versus-steps curve when `sweep` holds a sweep.csv
    (stage `sweep_samplers`).
    """
    params = load_params(params_path, overrides or [], check_paths=False)
    sweep_csv = Path(sweep) / "sweep.csv"
    verdict = evaluate_task(params.evaluate, prepared, synthetic, classifier, out,
                            str(sweep_csv) if sweep_csv.is_file() else None)
    write_resolved(params, out)
    print(f"gate: {verdict['status']}; report: {out}/report.html")
    if verdict["status"] != "published":
        raise GateRejected(f"quality gate rejected {synthetic}: {'; '.join(verdict['reasons'])}")
    return verdict


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("evaluate")
