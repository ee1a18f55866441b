"""Wire shapes of API keys and service accounts. Key hashes never leave Core."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

from inwire.kit.api import PatchModel, WireModel, printable
from inwire.kit.db import utcnow

#: An organization role (inwire.kit.auth.permissions.ORG_ROLES).
OrgRole = Literal["owner", "admin", "member", "viewer"]
#: The longest lifetime a key may be given at creation.
MAX_KEY_DAYS = 3650


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(printable),
]
Description = Annotated[str, Field(max_length=1000), AfterValidator(printable)]


class ApiKeyIn(BaseModel):
    """A new API key: a name, a role no higher than its owner's, and an optional expiry."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    role: OrgRole | None = Field(
        default=None, description="Defaults to the owner's role; may not exceed it"
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_KEY_DAYS)
    expires_at: datetime | None = Field(
        default=None, description="UTC when no offset is given; must lie in the future"
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> ApiKeyIn:
        if self.expires_in_days is not None and self.expires_at is not None:
            raise ValueError("give expires_in_days or expires_at, not both")
        return self


class ApiKeyOut(WireModel):
    """An API key as listed: never the key itself, only its first characters."""

    id: str
    organization_id: str
    name: str
    prefix: str = Field(description="First characters of the key, to tell keys apart")
    role: str
    user_id: str | None
    service_account_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Literal["active", "revoked", "expired"]:
        """Whether the key works now."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class ApiKeyCreated(ApiKeyOut):
    """A key just created; ``key`` appears in this response only and is never shown again."""

    key: str = Field(description="The secret key; store it now, it cannot be shown again")


class ServiceAccountIn(BaseModel):
    """A new service account."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description = ""
    role: OrgRole = Field(description="May not exceed your own role")


class ServiceAccountUpdate(PatchModel):
    """Changes to a service account; deactivating it stops its keys and tokens at once."""

    description: Description | None = None
    role: OrgRole | None = None
    is_active: bool | None = None


class ServiceAccountOut(WireModel):
    """A non-human principal of the organization."""

    id: str
    organization_id: str
    name: str
    description: str
    role: str
    is_active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
