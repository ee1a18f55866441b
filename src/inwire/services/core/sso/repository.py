"""Queries on SSO providers, identity links and login states."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from inwire.kit.db import RepositoryBase
from inwire.services.core.sso.models import IdentityLink, OIDCProvider, SSOLoginState


class OIDCProviderRepository(RepositoryBase[OIDCProvider]):
    """OIDC providers of the caller's organization (``unscoped`` for the public login flow)."""

    model = OIDCProvider
    noun = "SSO provider"


class IdentityLinkRepository(RepositoryBase[IdentityLink]):
    """Links between users and their accounts at identity providers (platform-wide)."""

    model = IdentityLink
    noun = "Identity link"

    async def by_subject(self, issuer: str, subject: str) -> IdentityLink | None:
        """The link of an account at an issuer."""
        return await self.find(IdentityLink.issuer == issuer, IdentityLink.subject == subject)


class SSOLoginStateRepository(RepositoryBase[SSOLoginState]):
    """Authorization requests in flight (platform-wide, keyed on the state's hash)."""

    model = SSOLoginState
    noun = "SSO login"

    async def take(self, state_hash: str) -> SSOLoginState | None:
        """Remove and return a state; None if unknown or another request took it first.

        The row is read, then deleted with a check on the deleted count, so two callbacks
        racing with the same state cannot both succeed.
        """
        row = await self.session.get(SSOLoginState, state_hash)
        if row is None:
            return None
        result = await self.session.execute(
            delete(SSOLoginState)
            .where(SSOLoginState.state == state_hash)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        self.session.expunge(row)
        return row

    async def prune(self, now: datetime) -> None:
        """Forget states that have expired."""
        await self.session.execute(
            delete(SSOLoginState)
            .where(SSOLoginState.expires_at <= now)
            .execution_options(synchronize_session=False)
        )
