"""Signing keys, refresh tokens, revoked access tokens and password resets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import utcnow
from inwire.services.core.db import CoreBase


class SigningKey(CoreBase):
    """An Ed25519 key pair; the private half sealed at rest."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(40), primary_key=True)
    private_key_sealed: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Stops signing new tokens at this time.
    signs_until: Mapped[datetime]
    #: Leaves the JWKS at this time (after every token it signed has expired).
    expires_at: Mapped[datetime]


class RefreshToken(CoreBase):
    """One refresh token of a rotation family; only its hash is stored."""

    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    #: How the family's session began (``pwd`` or ``sso``); kept through every rotation.
    method: Mapped[str] = mapped_column(String(10), default="pwd")


class RevokedToken(CoreBase):
    """An access token revoked before its expiry (logout); kept until it expires."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PasswordReset(CoreBase):
    """A single-use password reset token (hash only)."""

    __tablename__ = "password_resets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
