"""Every Core table, imported so that Core's metadata is complete (migrations, tests)."""

from inwire.services.core.apikeys.models import ApiKey, ServiceAccount
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.auth.models import PasswordReset, RefreshToken, RevokedToken, SigningKey
from inwire.services.core.db import CoreBase
from inwire.services.core.integrations.models import Integration
from inwire.services.core.organizations.models import Invitation, Membership, Organization
from inwire.services.core.sso.models import IdentityLink, OIDCProvider, SSOLoginState
from inwire.services.core.teams.models import Team, TeamMember
from inwire.services.core.users.models import User

metadata = CoreBase.metadata

__all__ = [
    "ApiKey",
    "AuditEvent",
    "IdentityLink",
    "Integration",
    "Invitation",
    "Membership",
    "OIDCProvider",
    "Organization",
    "PasswordReset",
    "RefreshToken",
    "RevokedToken",
    "SSOLoginState",
    "ServiceAccount",
    "SigningKey",
    "Team",
    "TeamMember",
    "User",
    "metadata",
]
