"""Load `params.yaml` (plus `--set section.key=value` overrides) into validated `Params`.

Any mistake becomes one `ConfigError` line naming the key, the bad value and what is allowed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from synthgen.atomic import atomic_write_json, canonical_json
from synthgen.errors import SynthgenError


class ConfigError(SynthgenError):
    """A user-fixable configuration mistake; its message is one line."""


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply `section.key=value` in place; the value is parsed as YAML (numbers, bools, lists)."""
    dotted, sep, raw = assignment.partition("=")
    if not sep or not dotted.strip():
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    *parents, leaf = dotted.strip().split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part} is a value, not a section")
        node = child
    try:
        node[leaf] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {assignment!r}: value is not valid YAML ({e.problem})") from None


def describe_error(err: ValidationError, source: str) -> str:
    """The first validation problem as one line: `source: key = value: what is allowed`."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<top level>"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r} (check spelling; see params.yaml for the allowed keys)"
    if first["type"] == "missing":
        return f"{source}: {key} is required"
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: {key} = {first.get('input')!r}: {message}"


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_params(path: str | Path = "params.yaml", overrides: Iterable[str] = (), check_paths: bool = True):
    """Read, override and validate the params file. Raises ConfigError (one line) on any mistake.

    `check_paths=False` skips checking that input files exist (a GPU box that never sees raw data).
    """
    from synthgen.config.params import Params

    path = Path(path)
    data = read_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return Params.model_validate(data, context={"check_paths": check_paths})
    except ValidationError as e:
        raise ConfigError(describe_error(e, str(path))) from None


def resolved(params) -> dict[str, Any]:
    """The fully resolved params as plain JSON data (defaults filled in)."""
    return params.model_dump(mode="json")


def params_hash(section) -> str:
    """A short, stable hash of a section (or the whole params), for provenance columns."""
    return hashlib.sha256(canonical_json(section.model_dump(mode="json")).encode()).hexdigest()[:16]


def write_resolved(params, folder: str | Path, name: str = "params.json") -> Path:
    """Write the resolved params the stage ran with next to its outputs."""
    path = Path(folder) / name
    atomic_write_json(path, resolved(params))
    return path


__all__ = ["ConfigError", "apply_override", "load_params", "params_hash", "resolved", "write_resolved"]
