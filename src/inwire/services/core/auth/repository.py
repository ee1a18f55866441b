"""Queries on signing keys, refresh tokens, revocations and password resets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, select, update

from inwire.kit.db import RepositoryBase, utcnow
from inwire.services.core.auth.models import (
    PasswordReset,
    RefreshToken,
    RevokedToken,
    SigningKey,
)
from inwire.services.core.organizations.models import Membership
from inwire.services.core.users.models import User


class SigningKeyRepository(RepositoryBase[SigningKey]):
    """Signing keys (platform-wide)."""

    model = SigningKey
    noun = "Signing key"

    async def published(self, now: datetime) -> Sequence[SigningKey]:
        """Keys still in the JWKS, newest first."""
        rows = await self.session.execute(
            select(SigningKey)
            .where(SigningKey.expires_at > now)
            .order_by(SigningKey.created_at.desc())
        )
        return rows.scalars().all()


class RefreshTokenRepository(RepositoryBase[RefreshToken]):
    """Refresh tokens (platform-wide; each names its organization)."""

    model = RefreshToken
    noun = "Refresh token"

    async def by_hash(self, digest: str) -> RefreshToken | None:
        """The token with this hash."""
        return await self.find(RefreshToken.token_hash == digest)

    async def mark_used(self, token_id: str, now: datetime) -> bool:
        """Spend a token; False when another request spent it first (race-safe)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == token_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_family(self, family_id: str) -> None:
        """Revoke every token of a rotation family."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

    async def revoke_user(self, user_id: str, org_id: str | None = None) -> None:
        """Revoke every live token of a user (in one organization, or all)."""
        stmt = update(RefreshToken).where(
            RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
        )
        if org_id is not None:
            stmt = stmt.where(RefreshToken.organization_id == org_id)
        await self.session.execute(stmt.values(revoked_at=utcnow()))


class SessionFactsRepository(RepositoryBase[User]):
    """What Core checks on every call: the user, their role here, and whether the token died."""

    model = User
    noun = "User"

    async def facts(
        self, user_id: str, org_id: str, jti: str
    ) -> tuple[User, str | None, bool] | None:
        """(user, role in ``org_id`` or None, token revoked) in one statement, or None.

        The user lands in the session's identity map, so handlers reading it again cost
        no query.
        """
        revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
        row = (
            await self.session.execute(
                select(User, Membership.role, revoked)
                .outerjoin(
                    Membership,
                    and_(Membership.user_id == User.id, Membership.organization_id == org_id),
                )
                .where(User.id == user_id)
            )
        ).first()
        if row is None:
            return None
        user, role, is_revoked = row
        return user, role, bool(is_revoked)


class RevokedTokenRepository(RepositoryBase[RevokedToken]):
    """Access tokens revoked before expiry."""

    model = RevokedToken
    noun = "Revoked token"

    async def is_revoked(self, jti: str) -> bool:
        """Whether this access token was revoked."""
        return await self.session.get(RevokedToken, jti) is not None

    async def prune(self, now: datetime) -> None:
        """Forget revocations of tokens that have expired anyway."""
        await self.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))


class PasswordResetRepository(RepositoryBase[PasswordReset]):
    """Password reset tokens."""

    model = PasswordReset
    noun = "Password reset"

    async def by_hash(self, digest: str) -> PasswordReset | None:
        """The reset with this token hash."""
        return await self.find(PasswordReset.token_hash == digest)

    async def invalidate_user(self, user_id: str, now: datetime) -> None:
        """Spend every open reset of a user."""
        await self.session.execute(
            update(PasswordReset)
            .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
            .values(used_at=now)
        )
