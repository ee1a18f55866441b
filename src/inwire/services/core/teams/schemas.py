"""Wire shapes of teams and team membership."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from inwire.kit.api import WireModel

#: A team role (inwire.kit.auth.permissions.TEAM_ROLES).
TeamRole = Literal["maintainer", "member"]


def _printable(value: str) -> str:
    # Control characters (NUL above all, which PostgreSQL refuses in text) have no place
    # in a display name.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


TeamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_printable),
]
Description = Annotated[str, Field(max_length=1000), AfterValidator(_printable)]


class _Patch(BaseModel):
    """A partial update: fields left out stay as they are; null is not a value."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None and k in cls.model_fields]
            if nulls:
                raise ValueError(f"{', '.join(sorted(nulls))} may not be null")
        return data


class TeamIn(BaseModel):
    """A new team."""

    model_config = ConfigDict(extra="forbid")
    name: TeamName
    description: Description = ""


class TeamUpdate(_Patch):
    """Changes to a team."""

    name: TeamName | None = None
    description: Description | None = None


class TeamOut(WireModel):
    """A team of the organization."""

    id: str
    organization_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class TeamMemberIn(BaseModel):
    """A member of the organization to add to the team."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=40)
    role: TeamRole = "member"


class TeamMemberUpdate(BaseModel):
    """A new team role."""

    model_config = ConfigDict(extra="forbid")
    role: TeamRole


class TeamMemberOut(BaseModel):
    """A user's place in a team."""

    team_id: str
    user_id: str
    role: str
    email: str
    name: str
    created_at: datetime
    updated_at: datetime
