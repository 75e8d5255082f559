"""Render params as commented YAML: every key explicit (DVC tracks params by key), each with the
one-line comment its field carries in the config source."""
from __future__ import annotations

import contextlib
import inspect
import re
from functools import lru_cache
from typing import Any

import yaml

from synthgen.config.base import Section

_FIELD_COMMENT = re.compile(r"^\s+(\w+):[^#]*#\s*(.+)$")


def source_comments(klass: type) -> dict[str, str]:
    """The one-line comment after each field that `klass` itself declares, by field name."""
    own = vars(klass).get("__annotations__", {})
    comments: dict[str, str] = {}
    for line in inspect.getsource(klass).splitlines():
        match = _FIELD_COMMENT.match(line)
        if match and match.group(1) in own:
            comments[match.group(1)] = match.group(2).strip()
    return comments


@lru_cache(maxsize=None)
def field_comments(cls: type[Section]) -> dict[str, str]:
    """Each field's comment: its description if it has one (fields of a model built by `create_model`,
    which has no source), else the comment after it in the source of the class that declares it."""
    comments = {name: field.description for name, field in cls.model_fields.items() if field.description}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, Section) and klass is not Section:
            with contextlib.suppress(OSError):
                comments.update(source_comments(klass))
    return comments


def scalar(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def render(section: Section, indent: int = 0) -> list[str]:
    lines, pad = [], "  " * indent
    comments = field_comments(type(section))
    for name in type(section).model_fields:
        value = getattr(section, name)
        comment = f"  # {comments[name]}" if name in comments else ""
        if isinstance(value, Section):
            lines.append(f"{pad}{name}:{comment}")
            lines += render(value, indent + 1)
        else:
            lines.append(f"{pad}{name}: {scalar(value)}{comment}")
    return lines


def params_yaml(params: Section, header: str = "") -> str:
    """The whole params file; top-level sections are separated by a blank line."""
    body = re.sub(r"\n(?=[a-z_]+:)", "\n\n", "\n".join(render(params)))
    return header + body + "\n"
