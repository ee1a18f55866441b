"""Wire shapes of teams and team membership."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from inwire.kit.api import PatchModel, WireModel, printable

#: A team role (inwire.kit.auth.permissions.TEAM_ROLES).
TeamRole = Literal["maintainer", "member"]


TeamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(printable),
]
Description = Annotated[str, Field(max_length=1000), AfterValidator(printable)]


class TeamIn(BaseModel):
    """A new team."""

    model_config = ConfigDict(extra="forbid")
    name: TeamName
    description: Description = ""


class TeamUpdate(PatchModel):
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
