"""Thin Prefect tasks: each calls one core function with paths and returns a small summary."""
