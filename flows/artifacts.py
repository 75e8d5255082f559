"""The Prefect markdown artifact a pipeline or release run ends with."""
from __future__ import annotations

import base64
import json
from pathlib import Path

from prefect.artifacts import create_markdown_artifact

from synthgen.metrics.specs import ARTIFACT_METRICS



def run_summary_markdown(eval_dir: Path, release: str | None, outcomes: dict[str, str]) -> str:
    metrics = json.loads((eval_dir / "metrics.json").read_text()) if (eval_dir / "metrics.json").is_file() else {}
    gate = json.loads((eval_dir / "gate.json").read_text()) if (eval_dir / "gate.json").is_file() else {}
    lines = [f"# synthgen run: gate **{gate.get('status', 'not evaluated')}**", ""]
    lines += [f"- {reason}" for reason in gate.get("reasons", [])]
    lines += ["", "| stage | outcome |", "| --- | --- |"] + [f"| {s} | {o} |" for s, o in outcomes.items()]
    lines += ["", "| metric | value |", "| --- | --- |"]
    lines += [f"| {m.key} | {metrics[m.key]:{m.fmt}} |" for m in ARTIFACT_METRICS if isinstance(metrics.get(m.key), (int, float))]
    grid = eval_dir / "grid_per_class.png"
    if grid.is_file():
        lines += ["", f"![samples per class](data:image/png;base64,{base64.b64encode(grid.read_bytes()).decode()})"]
    lines += ["", f"Release: `{release}`" if release else "No release was published.",
              f"Report: `{eval_dir / 'report.html'}`"]
    return "\n".join(lines)


def publish_summary(eval_dir: Path, release: str | None, outcomes: dict[str, str]) -> None:
    create_markdown_artifact(key="synthgen-run", markdown=run_summary_markdown(eval_dir, release, outcomes),
                             description="Metrics, gate verdict, samples and where the release is")
