"""Stage `evaluate`: metrics against real data, the quality gate, and the HTML report (`synthgen.stages.evaluate`).

A dataset that fails the gate makes the flow run fail with the reasons (exit code 2 from the CLI).
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthgen.config import write_resolved
from synthgen.config.params import Params
from synthgen.errors import SynthgenError
from synthgen.stages import evaluate as stage
from synthgen.stages.layout import ClassifierLayout, EvalLayout, PreparedLayout, SweepLayout, SyntheticLayout
from tasks.stage import stage_task


class GateRejected(SynthgenError):
    """The synthetic dataset failed the quality gate."""


def rejection(dataset: str | Path, reasons) -> GateRejected:
    return GateRejected(f"quality gate rejected {dataset}: {'; '.join(reasons)}")


@flow(name="evaluate", log_prints=True)
def evaluate(params: Params, prepared: str = PreparedLayout.DEFAULT, synthetic: str = SyntheticLayout.DEFAULT,
             classifier: str = ClassifierLayout.DEFAULT, sweep: str = SweepLayout.DEFAULT,
             out: str = EvalLayout.DEFAULT) -> dict:
    """Evaluate `synthetic` and gate it; raise GateRejected (a failed run) when it does not pass."""
    inputs = stage.Inputs(PreparedLayout(Path(prepared)), SyntheticLayout(Path(synthetic)),
                          ClassifierLayout(Path(classifier)), SweepLayout(Path(sweep)))
    verdict = stage_task(stage.run, params.evaluate, inputs, Path(out))
    write_resolved(params, out)
    print(f"gate: {verdict['status']}; report: {EvalLayout(Path(out)).report}")
    if verdict["status"] != "published":
        raise rejection(synthetic, verdict["reasons"])
    return verdict


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("evaluate")
