"""The authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from inwire.kit.auth.permissions import permits

PrincipalKind = Literal["user", "service"]


@dataclass(frozen=True)
class Principal:
    """A user or service account acting inside one organization with some roles."""

    subject: str
    org: str
    roles: tuple[str, ...]
    kind: PrincipalKind = "user"
    token_id: str = ""
    token: str = field(default="", repr=False)
    expires_at: datetime | None = None
    name: str = ""
    #: How the session began (RFC 8176 ``amr``): ``pwd``, ``sso`` (single sign-on), ``key``.
    amr: tuple[str, ...] = ()

    def can(self, permission: str) -> bool:
        """Whether any of the principal's roles grants ``permission``."""
        return any(permits(role, permission) for role in self.roles)

    @property
    def role(self) -> str:
        """The strongest organization role held."""
        from inwire.kit.auth.permissions import ORG_ROLES

        ranked = [r for r in ORG_ROLES if r in self.roles]
        return ranked[0] if ranked else ""
