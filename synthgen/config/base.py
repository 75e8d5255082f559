"""The base every params section derives from: strict, frozen, typed; a partial sub-section overrides
its field's default; `unkeyed` marks fields outside what identifies a run."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

UNKEYED = "unkeyed"  # json_schema_extra flag set by `unkeyed`
MAX_TEXT = 4096  # characters of any string param (a path, an address): longer is a mistake, not a value
MAX_NAME = 256  # characters of a name (a class)

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]  # a root seed: numpy and torch take it as an int64


def unkeyed(default: Any, **constraints: Any) -> Any:
    """A field left out of `Section.key_dump()`, the dump that identifies a run's state (the sample
    stage's run key, a training run's checkpoint fingerprint): a field that never changes those
    bytes (threads, workers, the task runner), or a section keyed or made elsewhere."""
    return Field(default, json_schema_extra={UNKEYED: True}, **constraints)


class Section(BaseModel):
    """A block of `params.yaml`: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, str_max_length=MAX_TEXT)

    @model_validator(mode="before")
    @classmethod
    def _partial_sections_override_their_default(cls, data: Any) -> Any:
        """A partial mapping for a sub-section overrides only the keys it names of that field's default
        (a stage's own training defaults, say), not the sub-section class's generic defaults."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, value in data.items():
            default = cls.model_fields[name].default if name in cls.model_fields else None
            if isinstance(value, dict) and isinstance(default, Section):
                merged[name] = {**default.model_dump(), **value}
        return merged

    @classmethod
    def unkeyed_fields(cls) -> dict[str, Any]:
        """`model_dump(exclude=...)` of the fields marked `unkeyed`, at any depth."""
        excluded: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            if (info.json_schema_extra or {}).get(UNKEYED):
                excluded[name] = True
            elif isinstance(info.annotation, type) and issubclass(info.annotation, Section):
                if nested := info.annotation.unkeyed_fields():
                    excluded[name] = nested
        return excluded

    def key_dump(self) -> dict[str, Any]:
        """The JSON dump without the `unkeyed` fields: what identifies the run this section configures."""
        return self.model_dump(mode="json", exclude=self.unkeyed_fields())
