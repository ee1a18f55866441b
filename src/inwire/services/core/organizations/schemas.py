"""Wire shapes of organizations and invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from inwire.kit.api import Email, printable
from inwire.kit.api import PatchModel as Patch
from inwire.services.core.users.schemas import Password, PersonName, Role

#: Lower-case letters, digits and single hyphens between them: safe in URLs and hostnames.
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SLUG_MAX = 63

OrganizationName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SLUG_MAX, pattern=SLUG_PATTERN),
    Field(description="Up to 63 characters: a-z, 0-9 and single hyphens between them"),
]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


class OrganizationOut(BaseModel):
    """An organization and the caller's role in it."""

    id: str
    name: str
    slug: str
    role: str = Field(description="Your role in this organization")
    created_at: datetime
    updated_at: datetime


class OrganizationIn(BaseModel):
    """A new organization; you become its owner."""

    model_config = ConfigDict(extra="forbid")
    name: OrganizationName
    slug: Slug | None = Field(
        default=None,
        description="Unique; derived from the name (with a suffix if taken) when left out",
    )


class OrganizationPatch(Patch):
    """Rename an organization or change its slug."""

    name: OrganizationName | None = None
    slug: Slug | None = Field(default=None, description="Unique across the platform")


class InvitationOut(BaseModel):
    """An invitation to join the organization. The token is never shown again."""

    id: str
    email: str
    role: str
    status: InvitationStatus = Field(
        description="pending until accepted, revoked (also when superseded) or expired"
    )
    invited_by: str = Field(description="Id of the user or service account that invited")
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime


class InvitationCreated(InvitationOut):
    """A new invitation, with its token: shown this once, for handing over by hand."""

    token: str = Field(description="Shown only in this response; stored hashed")
    mail_sent: bool = Field(description="False when the mail could not be delivered")


class InvitationIn(BaseModel):
    """Invite an e-mail address with a role. A new invitation replaces a pending one."""

    model_config = ConfigDict(extra="forbid")
    email: Email
    role: Role = Field(default="member", description="Only an owner may invite an owner")


class InvitationAcceptIn(BaseModel):
    """Accept an invitation.

    With no account for the invited address yet, give ``name`` and ``password`` to create
    it. With an account, prove it is yours: send the request signed in as it (bearer
    token), or give its ``password``.
    """

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    name: PersonName | None = None
    password: Password | None = None
