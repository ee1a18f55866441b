"""Wire shapes of the members of an organization (users with their role in it)."""

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

from inwire.kit.api import Email, PatchModel, printable

#: An organization role (inwire.kit.auth.permissions.ORG_ROLES).
Role = Literal["owner", "admin", "member", "viewer"]


PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class MemberOut(BaseModel):
    """A member of the organization: the user account and the role held here."""

    id: str = Field(description="The user's id")
    email: str
    name: str
    role: str = Field(description="Role in this organization: owner, admin, member or viewer")
    is_active: bool = Field(
        description=(
            "False when the account is deactivated: it can neither sign in nor use its API "
            "keys. Only accounts that belong to this organization alone are deactivated "
            "(see PATCH)."
        )
    )
    joined_at: datetime = Field(description="When the user became a member")
    created_at: datetime = Field(description="When the account was created")
    last_login_at: datetime | None = None


class MemberIn(BaseModel):
    """Add a member: an existing account by e-mail, or a new account."""

    model_config = ConfigDict(extra="forbid")
    email: Email
    role: Role = Field(default="member", description="Only an owner may grant owner")
    name: PersonName | None = Field(
        default=None, description="Name of a new account; an existing account keeps its own"
    )
    password: Password | None = Field(
        default=None,
        description=(
            "Password of a new account (at least 12 characters, not the e-mail). Leave it "
            "out to let the person set one by password reset or sign in with SSO. Refused "
            "(409) when the address already has an account: an organization never sets the "
            "credentials of an existing person."
        ),
    )


class MemberPatch(PatchModel):
    """Change a member. Fields left out stay as they are."""

    name: PersonName | None = Field(
        default=None, description="Only the user may rename themselves: names are platform-wide"
    )
    role: Role | None = Field(
        default=None,
        description=(
            "Needs members:update. Only an owner grants or revokes owner; the last active "
            "owner cannot be demoted (409 LAST_OWNER)."
        ),
    )
    is_active: bool | None = Field(
        default=None,
        description=(
            "Needs members:update. false on an account that belongs to this organization "
            "alone deactivates it platform-wide (no sign-in, sessions ended, kept as a "
            "member so true brings it back). An account that also belongs to other "
            "organizations is never locked out of them: false removes it from this "
            "organization instead (as DELETE does; add it again with POST /users), and "
            "true is refused (409). You cannot deactivate yourself."
        ),
    )
