"""Labels are checked, not guessed: a label is a non-negative integer or a class name, one kind per
dataset, below `data.max_classes`; anything else is a DataSourceError naming where it is and its value.

A float (`3.0`), a negative or signed number, a bool, a JSON object or list, a mix of integers and
names, or an integer at or above `data.max_classes` is refused before any class name is built.
"""
from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np

from synthgen.config.base import MAX_NAME
from synthgen.data.sources import DataSourceError
from synthgen.errors import shown

Label = int | str

_DIGITS = re.compile(r"^[0-9]+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # any other way to write a number
RULE = "labels must be integers 0..K-1 or class names"


def decoded(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def is_json_field(field: str) -> bool:
    return field == "json" or field.endswith(".json")


def class_name(text: str, where: str) -> str:
    """`text` stripped, when it can name a class (1 to MAX_NAME characters)."""
    name = text.strip()
    if not name or len(name) > MAX_NAME:
        raise DataSourceError(f"{where}: label {shown(text)} is empty or longer than {MAX_NAME} characters; {RULE}")
    return name


def parse_text_label(raw: bytes, where: str) -> Label:
    """A text member (`cls`, `txt`, ...): decimal digits are an integer, other text a class name."""
    try:
        text = class_name(raw.decode("utf-8"), where)
    except UnicodeDecodeError:
        raise DataSourceError(f"{where}: label {shown(decoded(raw))} is not UTF-8 text; {RULE}") from None
    if _DIGITS.match(text):
        return int(text)
    if _NUMBER.match(text):
        raise DataSourceError(f"{where}: label {shown(text)} is a number but not a non-negative integer; {RULE}")
    return text


def parse_json_label(raw: bytes, where: str) -> Label:
    """A JSON member: an integer, or a string (a class name, even if it holds digits); a float, bool, null,
    object or list is refused."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise DataSourceError(f"{where}: label {shown(decoded(raw))} is not valid JSON; {RULE}") from None
    if isinstance(value, str):
        return class_name(value, where)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    kind = {bool: "a bool", float: "a float", dict: "a JSON object", list: "a JSON list", type(None): "null"}.get(
        type(value), "a negative integer")
    hint = " (point data.label_field at the member that holds only the label)" if isinstance(value, (dict, list)) else ""
    raise DataSourceError(f"{where}: label {shown(decoded(raw))} is {kind}; {RULE}{hint}")


class LabelReader:
    """Parses the label members of one dataset and holds them to one kind and to `max_classes`."""

    def __init__(self, field: str, max_classes: int):
        self.field, self.max_classes = field, max_classes
        self.first: dict[type, tuple[str, Label]] = {}  # kind -> (where, value) of its first label

    def read(self, raw: bytes, where: str) -> Label:
        value = parse_json_label(raw, where) if is_json_field(self.field) else parse_text_label(raw, where)
        kind, other = (int, str) if isinstance(value, int) else (str, int)
        if other in self.first:
            other_where, other_value = self.first[other]
            raise DataSourceError(f"{where}: label {value!r} is {describe(kind)}, but {other_where} has "
                                  f"{describe(other)} {other_value!r}; {RULE}, not a mix")
        self.first.setdefault(kind, (where, value))
        if isinstance(value, int) and value >= self.max_classes:
            raise DataSourceError(f"{where}: label {value} is at or above data.max_classes = {self.max_classes}; "
                                  f"{RULE} with K <= data.max_classes")
        return value


def describe(kind: type) -> str:
    return "an integer" if kind is int else "a class name"


def check_class_count(count: int, max_classes: int, where: str) -> None:
    if count > max_classes:
        raise DataSourceError(f"{where}: {count} classes, more than data.max_classes = {max_classes}")


def integer_labels(labels: Sequence | np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """`labels` as int64 when every one is an integer in 0..num_classes-1; else a DataSourceError naming
    the first bad one by its index."""
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        index = int(bad[0]) if len(bad) else None
    else:  # a list may hold anything a pickle can: a float, a bool, a string
        index = next((i for i, label in enumerate(labels) if isinstance(label, bool)
                      or not isinstance(label, (int, np.integer)) or not 0 <= label < num_classes), None)
    if index is None:
        return np.asarray(labels, dtype=np.int64)
    value = labels[index].item() if isinstance(labels[index], np.generic) else labels[index]
    raise DataSourceError(f"{where}[{index}]: label {value!r} is not an integer in 0..{num_classes - 1}")
