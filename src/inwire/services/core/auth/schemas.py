"""Wire shapes of authentication."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from inwire.kit.api import Email


class LoginIn(BaseModel):
    """Credentials, and optionally the organization to sign in to."""

    email: Email
    password: str = Field(min_length=1, max_length=1024)
    organization_id: str | None = Field(default=None, max_length=40)


class RefreshIn(BaseModel):
    """A refresh token to exchange."""

    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(BaseModel):
    """The refresh token to revoke along with the access token."""

    refresh_token: str | None = Field(default=None, max_length=200)


class SwitchOrganizationIn(BaseModel):
    """The organization to continue in."""

    organization_id: str = Field(min_length=1, max_length=40)


class TokenExchangeIn(BaseModel):
    """An API key to exchange for a short-lived access token."""

    api_key: str = Field(min_length=1, max_length=200)


class PasswordChangeIn(BaseModel):
    """Change one's own password."""

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class PasswordResetRequestIn(BaseModel):
    """Ask for a reset link."""

    email: Email


class PasswordResetIn(BaseModel):
    """Set a new password with a reset token."""

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


class UserBrief(BaseModel):
    """The signed-in user."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    email: str
    name: str


class TokenPair(BaseModel):
    """Tokens issued by login, refresh, switch and SSO."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int
    organization_id: str
    role: str
    user: UserBrief | None = None


class OrganizationRole(BaseModel):
    """One organization of the caller and the role held there."""

    id: str
    name: str
    slug: str
    role: str


class Me(BaseModel):
    """The caller: identity, current organization and role, other organizations."""

    id: str
    kind: str
    email: str | None = None
    name: str
    organization_id: str
    role: str
    permissions_sample: list[str] = []
    organizations: list[OrganizationRole] = []
    token_expires_at: datetime | None = None
