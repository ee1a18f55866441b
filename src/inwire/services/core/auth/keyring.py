"""Core's signing keys: the current Ed25519 key, rotation with overlap, and the JWKS."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from inwire.kit.auth.tokens import public_jwk
from inwire.kit.db import Database, utcnow
from inwire.kit.errors import Unavailable
from inwire.kit.ids import new_id
from inwire.services.core.auth.models import SigningKey
from inwire.services.core.auth.repository import SigningKeyRepository
from inwire.services.core.security import Sealer
from inwire.services.core.settings import CoreSettings

log = logging.getLogger("inwire.core.keys")

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
        """(kid, private key) to sign with now. Reads only: keys are made by
        :meth:`ensure_current`, at start and from the rotation loop, never inside a request
        (on SQLite a second writer inside a writing request would wait for itself)."""
        now = time.time()
        if self._current and self._current[2] > now and now - self._loaded_at < CACHE_SECONDS:
            return self._current[0], self._current[1]
        async with self._lock:
            await self._load()
        if self._current is None:
            raise Unavailable("Core has no signing key yet; it is starting or rotation failed")
        return self._current[0], self._current[1]

    async def jwks(self) -> dict[str, Any]:
        """The public keys verifiers should trust."""
        if time.time() - self._loaded_at >= CACHE_SECONDS or not self._jwks["keys"]:
            async with self._lock:
                await self._load()
        return self._jwks

    async def ensure_current(self) -> None:
        """Make the next key when none signs, or the current one retires within the margin."""
        async with self._lock:
            now = utcnow()
            async with self.db.session() as session:
                keys = await SigningKeyRepository(session).published(now)
                if not any(k.signs_until > now + self._margin() for k in keys):
                    await self._create(session)
            await self._load()

    async def run_rotation(self) -> None:
        """Check every so often that a key is ready to sign; runs for the app's lifetime."""
        while True:
            await asyncio.sleep(self._margin().total_seconds() / 2)
            try:
                await self.ensure_current()
            except Exception:
                log.exception("signing key rotation failed; will retry")

    async def rotate(self) -> str:
        """Start signing with a fresh key now; older keys stay published until they expire."""
        async with self._lock, self.db.session() as session:
            kid = await self._create(session)
        async with self._lock:
            await self._load()
        return kid

    def _margin(self) -> timedelta:
        # Rotate a little before the current key retires; checked twice per margin.
        return timedelta(seconds=min(120.0, self.settings.signing_key_rotation_seconds / 4))

    async def _load(self) -> None:
        now = utcnow()
        async with self.db.session(write=False) as session:
            keys = list(await SigningKeyRepository(session).published(now))
        self._jwks = {"keys": [k.public_jwk for k in keys]}
        signing = [k for k in keys if k.signs_until > now]
        if not signing:
            # The rotation loop is late: keep signing with a retired key only while every
            # token it signs expires before the key leaves the JWKS.
            ttl = timedelta(seconds=self.settings.access_token_ttl_seconds + 60)
            signing = [k for k in keys if k.expires_at > now + ttl]
            if signing:
                log.warning("signing with retired key %s until rotation catches up", signing[0].kid)
        if signing:
            newest = signing[0]
            private = serialization.load_pem_private_key(
                self.sealer.open(newest.private_key_sealed).encode(), password=None
            )
            assert isinstance(private, Ed25519PrivateKey)
            until = max(newest.signs_until.timestamp(), time.time() + CACHE_SECONDS)
            self._current = (newest.kid, private, until)
        else:
            self._current = None
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
