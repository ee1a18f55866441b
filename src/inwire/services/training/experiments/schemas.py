"""Wire shapes of experiments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from inwire.kit.api import PatchModel, WireModel, printable

ExperimentName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=250),
    AfterValidator(printable),
]
#: A tag, param or metric key: letters, digits and ``_ - . / space :`` (as MLflow allows).
Key = Annotated[
    str,
    StringConstraints(min_length=1, max_length=250, pattern=r"^[\w\-. /:]+$"),
]
TagValue = Annotated[str, Field(max_length=8000)]
Tags = Annotated[dict[Key, TagValue], Field(max_length=100)]
Description = Annotated[str, Field(max_length=20_000)]
Lifecycle = Literal["active", "archived"]


class ExperimentCreate(BaseModel):
    """A new experiment."""

    model_config = ConfigDict(extra="forbid")
    name: ExperimentName
    description: Description = ""
    tags: Tags = Field(default_factory=dict)


class ExperimentUpdate(PatchModel):
    """Changes to an experiment: a new name, description, or tags (replacing them all)."""

    name: ExperimentName | None = None
    description: Description | None = None
    tags: Tags | None = None


class ExperimentOut(WireModel):
    """An experiment."""

    id: str
    name: str
    description: str
    tags: dict[str, str]
    lifecycle: Lifecycle
    archived_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
