"""Core's cryptographic primitives: password hashing, opaque tokens, API keys, sealing.

Choices: argon2id (argon2-cffi) for passwords, SHA-256 for high-entropy tokens (they are
random, so a slow hash adds nothing), Fernet (cryptography) for secrets at rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import zlib
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken

from inwire.kit.settings import secret_in_home
from inwire.services.core.settings import CoreSettings

API_KEY_PREFIX = "iwk_"
REFRESH_PREFIX = "iwr_"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Passwords:
    """argon2id hashing with the configured cost, and a constant-time dummy check."""

    def __init__(self, settings: CoreSettings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """Hash a password in a worker thread (argon2 releases the GIL; the loop stays free)."""
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Check a password off the event loop; with no stored hash, spend the same time."""
        return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether the hash was made with other parameters."""
        return self.hasher.check_needs_rehash(stored)


def token_hash(token: str) -> str:
    """SHA-256 of a random token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b62(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out)) or "0"


def _checksum(body: str) -> str:
    return _b62(zlib.crc32(body.encode()).to_bytes(4, "big")).rjust(6, "0")


def new_api_key() -> str:
    """``iwk_`` + 32 random bytes (base62) + a CRC32 checksum, like GitHub's token format.

    The checksum lets scanners and the gateway reject typos without a database lookup.
    """
    body = _b62(secrets.token_bytes(32)).rjust(43, "0")
    return f"{API_KEY_PREFIX}{body}{_checksum(body)}"


def api_key_well_formed(key: str) -> bool:
    """Whether ``key`` has the prefix, length and a matching checksum."""
    if not key.startswith(API_KEY_PREFIX) or len(key) != len(API_KEY_PREFIX) + 49:
        return False
    body, check = key[len(API_KEY_PREFIX) : -6], key[-6:]
    return hmac.compare_digest(_checksum(body), check)


def new_refresh_token() -> str:
    """An opaque refresh token (32 random bytes)."""
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_secret_token() -> str:
    """A random token for invitations, password resets and SSO state."""
    return secrets.token_urlsafe(32)


class Sealer:
    """Encrypts secrets at rest with Fernet (AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key: str) -> None:
        self.fernet = Fernet(key.encode())

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Sealer:
        """The configured key, or one kept in ``$INWIRE_HOME/secret.key`` (mode 0600)."""
        if settings.secret_key:
            return cls(settings.secret_key)
        path = Path(settings.home) / "secret.key"
        return cls(secret_in_home(path, lambda: Fernet.generate_key().decode()))

    def seal(self, plaintext: str) -> str:
        """Encrypt."""
        return self.fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Decrypt; raises ValueError if the key does not fit."""
        try:
            return self.fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the current key") from exc
