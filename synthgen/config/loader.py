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
from synthgen.errors import SynthgenError, shown


class ConfigError(SynthgenError):
    """A user-fixable configuration mistake; its message is one line."""


MAX_PARAMS_BYTES = 1 << 20  # a params file is a few kilobytes; a larger one is a mistake, refused before parsing


MAX_DEPTH = 32  # params nest a few levels; deeper is a mistake (and deep recursion in the YAML composer)
FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML was built with it


def unsafe_structure(text: str) -> str | None:
    """What makes `text` unsafe to load, read from its parse events before any node is built: an anchor or
    alias (`&name`, `*name`: one alias can expand to gigabytes), or nesting deeper than MAX_DEPTH."""
    depth = 0
    for event in yaml.parse(text, Loader=FastLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return f"line {line}: YAML anchors and aliases (&name, *name) are not allowed; write the values out"
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return f"line {line}: nested more than {MAX_DEPTH} levels deep"
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in `text`, checked by `unsafe_structure` first; any problem is one ConfigError
    line naming `source`."""
    try:
        if problem := unsafe_structure(text):
            raise ConfigError(f"{source}: {problem}")
        return yaml.load(text, Loader=FastLoader)
    except yaml.YAMLError as e:
        raise ConfigError(" ".join(f"{source}: not valid YAML ({e})".split())) from None


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
    node[leaf] = parse_yaml(raw, f"--set {assignment!r}") if raw.strip() else None


def describe_error(err: ValidationError, source: str) -> str:
    """The first validation problem as one line: `source: key = value: what is allowed`."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if not key:  # a rule across sections names its keys itself
        return f"{source}: {message}"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r} (check spelling; see params.yaml for the allowed keys)"
    if first["type"] == "missing":
        return f"{source}: {key} is required"
    return f"{source}: {key} = {shown(first.get('input'))}: {message}"


def read_text(path: Path) -> str:
    """The params file as text: it exists, is at most MAX_PARAMS_BYTES and is UTF-8, or a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PARAMS_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read params file {path}: {e.strerror or e}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: params files are at most {MAX_PARAMS_BYTES // 1024} KiB; this one is larger")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): params must be a YAML text file") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """The sections of the params file; an empty file is refused (it would silently mean the defaults)."""
    data = parse_yaml(read_text(path), str(path))
    if data is None:
        raise ConfigError(f"{path}: empty: write the sections to set (an empty file is not read as the defaults)")
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
