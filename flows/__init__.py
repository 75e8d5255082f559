"""Prefect flows: each stage flow is one DVC stage's entry point (`python -m flows.<stage>`)."""
import os

# Offline by default: no telemetry from the temporary Prefect server or from DVC.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
