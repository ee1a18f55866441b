"""The wire models the SDK returns (from :mod:`inwire.contracts`), importable in one place."""

from __future__ import annotations

from inwire.contracts.core import (
    ApiKey,
    ApiKeyCreated,
    Caller,
    Invitation,
    InvitationCreated,
    Member,
    Organization,
    OrganizationRole,
    Page,
    ServiceAccount,
    Team,
    TeamMember,
    TokenGrant,
    UserBrief,
)

__all__ = [
    "ApiKey",
    "ApiKeyCreated",
    "Caller",
    "Invitation",
    "InvitationCreated",
    "Member",
    "Organization",
    "OrganizationRole",
    "Page",
    "ServiceAccount",
    "Team",
    "TeamMember",
    "TokenGrant",
    "UserBrief",
]
