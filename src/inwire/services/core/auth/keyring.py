"""Core's signing keys: the current Ed25519 key, rotation with overlap, and the JWKS."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from inwire.kit.auth.tokens import public_jwk
from inwire.kit.db import Database, utcnow
from inwire.kit.ids import new_id
from inwire.services.core.auth.models import SigningKey
from inwire.services.core.auth.repository import SigningKeyRepository
from inwire.services.core.security import Sealer
from inwire.services.core.settings import CoreSettings

#: How long a process trusts its cached view of the keys before looking again.
CACHE_SECONDS = 30.0


class Keyring:
    """Loads keys from the database, creates a new one when the current stops signing.

    A key signs for ``signing_key_rotation_seconds`` and stays published for
    ``signing_key_overlap_seconds`` more, longer than any token it signed can live, so
    verifiers never see a valid token whose key has left the JWKS.
    """

    def __init__(self, db: Database, sealer: Sealer, settings: CoreSettings) -> None:
        self.db = db
        self.sealer = sealer
        self.settings = settings
        self._current: tuple[str, Ed25519PrivateKey, float] | None = None
        self._jwks: dict[str, Any] = {"keys": []}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """(kid, private key) to sign with now, rotating when due."""
        now = time.time()
        if self._current and self._current[2] > now and now - self._loaded_at < CACHE_SECONDS:
            return self._current[0], self._current[1]
        async with self._lock:
            await self._load(create_if_missing=True)
            assert self._current is not None
            return self._current[0], self._current[1]

    async def jwks(self) -> dict[str, Any]:
        """The public keys verifiers should trust."""
        if time.time() - self._loaded_at >= CACHE_SECONDS or not self._jwks["keys"]:
            async with self._lock:
                await self._load(create_if_missing=True)
        return self._jwks

    async def rotate(self) -> str:
        """Start signing with a fresh key now; older keys stay published until they expire."""
        async with self._lock, self.db.session() as session:
            kid = await self._create(session)
        async with self._lock:
            await self._load(create_if_missing=False)
        return kid

    async def _load(self, *, create_if_missing: bool) -> None:
        now = utcnow()
        async with self.db.session() as session:
            repo = SigningKeyRepository(session)
            keys = list(await repo.published(now))
            signing = [k for k in keys if k.signs_until > now]
            if not signing and create_if_missing:
                await self._create(session)
                keys = list(await repo.published(now))
                signing = [k for k in keys if k.signs_until > now]
        self._jwks = {"keys": [k.public_jwk for k in keys]}
        if signing:
            newest = signing[0]
            private = serialization.load_pem_private_key(
                self.sealer.open(newest.private_key_sealed).encode(), password=None
            )
            assert isinstance(private, Ed25519PrivateKey)
            self._current = (newest.kid, private, newest.signs_until.timestamp())
        self._loaded_at = time.time()

    async def _create(self, session: Any) -> str:
        now = utcnow()
        private = Ed25519PrivateKey.generate()
        kid = new_id("key")
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        signs_until = now + timedelta(seconds=self.settings.signing_key_rotation_seconds)
        session.add(
            SigningKey(
                kid=kid,
                private_key_sealed=self.sealer.seal(pem),
                public_jwk=public_jwk(private.public_key(), kid),
                created_at=now,
                signs_until=signs_until,
                expires_at=signs_until
                + timedelta(
                    seconds=max(
                        self.settings.signing_key_overlap_seconds,
                        self.settings.access_token_ttl_seconds + 60,
                    )
                ),
            )
        )
        await session.flush()
        return kid
