"""Who is calling: a bearer JWT checked against Core's JWKS, or an API key exchanged with Core.

The gateway authenticates every request with it; a service that takes API keys directly
(Model Training's MLflow API, whose clients send ``MLFLOW_TRACKING_TOKEN=iwk_…``) uses
the same. Core is reached through anything with ``exchange_api_key`` (`KeyExchanger`;
`inwire.contracts.core.CoreClient` in practice), so the kit depends on no contract.

An API key (``Authorization: Bearer iwk_…`` or ``X-API-Key: iwk_…``) is exchanged once for a
short-lived access token (``POST /api/v1/auth/token``), which is cached under a SHA-256 hash
of the key (the key itself is never kept) and forwarded upstream as the bearer in place of
the key, so services only ever see JWTs. Concurrent first requests with one key share one
exchange.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from inwire.kit.auth.principal import Principal
from inwire.kit.auth.tokens import TokenVerifier
from inwire.kit.errors import InwireError, Unauthorized, Unavailable

API_KEY_PREFIX = "iwk_"
#: An exchanged token is dropped this long before it expires, so none is forwarded stale.
EXPIRY_MARGIN_SECONDS = 30.0


class Grant(Protocol):
    """An access token for an API key, and how long it lives."""

    @property
    def access_token(self) -> str: ...

    @property
    def expires_in(self) -> int: ...


class KeyExchanger(Protocol):
    """Core's token endpoint for API keys (``POST /api/v1/auth/token``)."""

    async def exchange_api_key(self, api_key: str) -> Grant: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request presented: an API key or a bearer token (never both)."""

    api_key: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller and the bearer token to forward upstream."""

    principal: Principal
    token: str
    #: Whether the credential was an API key (so the key's headers must not go upstream).
    from_api_key: bool


def credentials_from(authorization: str | None, api_key: str | None) -> Credentials | None:
    """The credentials in these headers; None when there are none.

    Raises ``Unauthorized`` for an ``Authorization`` header of another scheme than Bearer.
    """
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized("Authorization must be 'Bearer <token or API key>'")
        if value.startswith(API_KEY_PREFIX):
            return Credentials(api_key=value)
        return Credentials(token=value)
    if api_key:
        return Credentials(api_key=api_key.strip())
    return None


@dataclass(slots=True)
class _Cached:
    identity: Identity
    until: float


class Authenticator:
    """Verifies JWTs (the verifier remembers valid ones until they expire) and exchanges
    API keys (caching each exchange for a while)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        core: KeyExchanger | None,
        *,
        cache_seconds: float = 60.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier
        self.core = core
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Identity]] = {}

    async def authenticate(self, credentials: Credentials) -> Identity:
        """The caller behind ``credentials``; ``Unauthorized`` when they are not valid."""
        if credentials.token is not None:
            return await self._verify(credentials.token)
        assert credentials.api_key is not None
        return await self._exchange(credentials.api_key)

    async def _verify(self, token: str) -> Identity:
        principal = await self.verifier.verify(token)
        return Identity(principal, token, from_api_key=False)

    def is_cached(self, api_key: str) -> bool:
        """Whether a fresh exchange of this key is cached (no call to Core needed)."""
        entry = self._cache.get(_digest(api_key))
        return entry is not None and entry.until > self._clock()

    def forget(self, api_key: str) -> None:
        """Drop the cached exchange of this key (e.g. after Core refused its token)."""
        self._cache.pop(_digest(api_key), None)

    async def _exchange(self, api_key: str) -> Identity:
        digest = _digest(api_key)
        entry = self._cache.get(digest)
        if entry is not None:
            if entry.until > self._clock():
                self._cache.move_to_end(digest)
                return entry.identity
            del self._cache[digest]
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            identity, lifetime = await self._call_core(api_key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Retrieved here so a future nobody else awaited does not warn when collected.
            future.exception()
            raise
        else:
            future.set_result(identity)
        finally:
            del self._pending[digest]
        keep = min(self.cache_seconds, lifetime - EXPIRY_MARGIN_SECONDS)
        if keep > 0:
            self._cache[digest] = _Cached(identity, self._clock() + keep)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return identity

    async def _call_core(self, api_key: str) -> tuple[Identity, float]:
        if self.core is None:
            raise Unavailable("API keys need Core, and no Core is configured here")
        try:
            grant = await self.core.exchange_api_key(api_key)
        except Unauthorized:
            raise
        except InwireError as exc:
            if exc.status in (400, 401, 403, 404):
                # Core refused the key (malformed, unknown, revoked or expired).
                raise Unauthorized(exc.message or "Invalid API key") from exc
            raise
        principal = await self.verifier.verify(grant.access_token)
        identity = Identity(principal, grant.access_token, from_api_key=True)
        return identity, float(grant.expires_in)


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()
