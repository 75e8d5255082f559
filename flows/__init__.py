"""Prefect flows: each stage flow is one DVC stage's entry point (`python -m flows.<stage>`)."""
import os

# Offline by default: no telemetry from the temporary Prefect server or from DVC.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

# Top-level packages that only `synthgen[pipeline]` installs.
PIPELINE_PACKAGES = {"typer", "prefect", "prefect_ray", "ray", "dvc", "fastapi"}


def main() -> None:
    """The `synthgen` command; on a core-only install, one line that says how to get the pipeline."""
    import sys

    try:
        from flows.cli import main as cli_main

        cli_main()
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in PIPELINE_PACKAGES:
            raise
        sys.exit(f"synthgen: the command line needs the pipeline ({error.name} is not installed): "
                 "pip install 'synthgen[pipeline]'")
