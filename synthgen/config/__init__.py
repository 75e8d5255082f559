"""Typed, validated configuration: `params.yaml` is the only source of it."""
from synthgen.config.loader import ConfigError, load_params, params_hash, resolved, write_resolved

__all__ = ["ConfigError", "load_params", "params_hash", "resolved", "write_resolved"]
