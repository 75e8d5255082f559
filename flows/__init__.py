"""Prefect flows: each stage flow is one DVC stage's entry point (`python -m flows.<stage>`)."""
