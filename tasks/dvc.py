import os
import re
import subprocess
import sys
import time
from pathlib import Path

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from synthgen.errors import SynthgenError


PROGRESS_BAR = re.compile(r"\d+%\|")
PROGRESS_EVERY_S = 15  # log a running stage's progress bar this often


class StageFailed(SynthgenError):
    """A pipeline stage exited with an error; the message names the stage and its last error line."""


def last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line]
    return (errors or lines or ["no output"])[-1]


def stage_environment() -> dict[str, str]:
    """The stage commands find this venv's tools and report to this flow's Prefect API (no server of their own)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if "PREFECT_API_URL" not in env:
        with get_client(sync_client=True) as client:
            env["PREFECT_API_URL"] = str(client.api_url)
    return env


@task(cache_policy=NO_CACHE, task_run_name="dvc-repro-{stage}")
def dvc_stage_task(stage: str, repo: str = ".") -> str:
    """`dvc repro` one stage: DVC runs it only when its code, params or inputs changed. Returns ran|skipped."""
    logger = get_run_logger()
    lines: list[str] = []
    last_progress = 0.0
    with subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=repo, env=stage_environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # streamed (a progress bar's redraws arrive as lines too)
            line = line.strip()
            if not line:
                continue
            if PROGRESS_BAR.search(line):
                if time.monotonic() - last_progress < PROGRESS_EVERY_S:
                    continue
                last_progress = time.monotonic()
            lines.append(line)
            logger.info(line)
    output = "\n".join(lines)
    if proc.returncode != 0:
        raise StageFailed(f"stage {stage} failed: {last_error_line(output)}")
    return "skipped" if "didn't change, skipping" in output else "ran"


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 5, 15])
def dvc_push_task(repo: str = ".") -> bool:
    """Push DVC-tracked outputs when a default remote is configured; False when there is none."""
    remote = subprocess.run(["dvc", "remote", "default"], cwd=repo, capture_output=True, text=True)
    if remote.returncode != 0 or not remote.stdout.strip():
        return False
    subprocess.run(["dvc", "push"], cwd=repo, check=True, capture_output=True, text=True)
    return True
