"""The base every params section derives from: strict, frozen, typed."""
from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Section(BaseModel):
    """A block of `params.yaml`: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


S = TypeVar("S", bound=Section)


def defaults_from(default: S) -> Any:
    """The type of a field whose partial mapping in params.yaml overrides only the keys it names of
    `default` (a stage's own defaults), instead of falling back to the class's generic defaults."""
    def merge(value: Any) -> Any:
        return {**default.model_dump(), **value} if isinstance(value, dict) else value

    return Annotated[type(default), BeforeValidator(merge)]
