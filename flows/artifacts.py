"""The Prefect markdown artifact a pipeline or release run ends with."""
from __future__ import annotations

import base64
import json
from pathlib import Path

from prefect.artifacts import create_markdown_artifact

from synthgen.metrics.specs import ARTIFACT_METRICS, CLASS_ACCURACY
from synthgen.stages.layout import EvalLayout



def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def worst_class_lines(metrics: dict) -> list[str]:
    """The class the generator follows least, from metrics.json's per-class accuracies (none when absent)."""
    per_class = {name: v for name, v in (metrics.get(CLASS_ACCURACY.key) or {}).items() if v is not None}
    if not per_class:
        return []
    name = min(per_class, key=per_class.get)
    return ["", f"Worst class: **{name}**, conditional accuracy {per_class[name]:.3f}"]


def run_summary_markdown(eval_dir: Path, release: str | None, outcomes: dict[str, str]) -> str:
    layout = EvalLayout(Path(eval_dir))
    metrics, gate = read_json(layout.metrics), read_json(layout.gate)
    lines = [f"# synthgen run: gate **{gate.get('status', 'not evaluated')}**", ""]
    lines += [f"- {reason}" for reason in gate.get("reasons", [])]
    lines += worst_class_lines(metrics)
    lines += ["", "| stage | outcome |", "| --- | --- |"] + [f"| {s} | {o} |" for s, o in outcomes.items()]
    lines += ["", "| metric | value |", "| --- | --- |"]
    lines += [f"| {m.key} | {metrics[m.key]:{m.fmt}} |" for m in ARTIFACT_METRICS if isinstance(metrics.get(m.key), (int, float))]
    if layout.grid.is_file():
        lines += ["", f"![samples per class](data:image/png;base64,{base64.b64encode(layout.grid.read_bytes()).decode()})"]
    lines += ["", f"Release: `{release}`" if release else "No release was published.", f"Report: `{layout.report}`"]
    return "\n".join(lines)


def publish_summary(eval_dir: Path, release: str | None, outcomes: dict[str, str]) -> None:
    create_markdown_artifact(key="synthgen-run", markdown=run_summary_markdown(eval_dir, release, outcomes),
                             description="Metrics, gate verdict, samples and where the release is")
