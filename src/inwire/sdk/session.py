"""The credentials a client sends, and how they are kept fresh.

A session holds one of: an API key (sent as the bearer credential as it is; the gateway
exchanges it for a short-lived token, Core accepts it directly), an access token with an
optional refresh token, or an e-mail and password that sign in on first use. Access tokens
live at most 15 minutes: the session refreshes one shortly before it expires when it knows
the expiry, and once after a ``401 TOKEN_EXPIRED`` otherwise. Refresh tokens work once
(Core revokes the whole family when a spent one comes back), so one lock makes concurrent
requests share a single refresh, and ``on_tokens`` hears of every new pair so that it can be
stored before the old one is needed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from inwire.sdk.errors import Unauthorized

if TYPE_CHECKING:
    from inwire.contracts.core import CoreClient, TokenGrant

__all__ = ["Session", "Tokens", "anonymous"]

#: Refresh this long before the access token expires, so a request never carries one that
#: lapses on the way (clocks of client and server may also differ by a few seconds).
EXPIRY_MARGIN = timedelta(seconds=30)

_anonymous: ContextVar[bool] = ContextVar("inwire_sdk_anonymous", default=False)


@contextmanager
def anonymous() -> Iterator[None]:
    """Calls made inside this block carry no credentials (sign-in and refresh)."""
    token = _anonymous.set(True)
    try:
        yield
    finally:
        _anonymous.reset(token)


def is_anonymous() -> bool:
    """Whether the current call is made without credentials."""
    return _anonymous.get()


@dataclass(frozen=True)
class Tokens:
    """An access token, the refresh token that renews it, and what they are for."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    organization_id: str | None = None
    role: str | None = None

    @classmethod
    def from_grant(cls, grant: TokenGrant, *, now: datetime | None = None) -> Tokens:
        """The tokens of a login, refresh or switch answer."""
        issued = now or datetime.now(UTC)
        return cls(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_at=issued + timedelta(seconds=grant.expires_in),
            organization_id=grant.organization_id,
            role=grant.role,
        )

    def expiring(self, now: datetime | None = None) -> bool:
        """Whether the access token expires within the safety margin."""
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - EXPIRY_MARGIN


TokenListener = Callable[[Tokens | None], None]
"""Called with new tokens after login, refresh or switch, and with ``None`` after logout."""


class Session:
    """The credentials of one client; ``core`` is the Core client that renews them."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        tokens: Tokens | None = None,
        email: str | None = None,
        password: str | None = None,
        organization_id: str | None = None,
        on_tokens: TokenListener | None = None,
    ) -> None:
        if api_key is not None and (tokens is not None or password is not None):
            raise ValueError("give an api_key, a token or an email and password, not several")
        if (email is None) != (password is None):
            raise ValueError("email and password go together")
        self.api_key = api_key
        self.tokens = tokens
        self.core: CoreClient | None = None
        self._email = email
        self._password = password
        self._organization_id = organization_id
        self._on_tokens = on_tokens
        self._lock = asyncio.Lock()

    @property
    def signed_in(self) -> bool:
        """Whether the session has credentials to send (or can sign in by itself)."""
        return self.api_key is not None or self.tokens is not None or self._password is not None

    def _core(self) -> CoreClient:
        if self.core is None:
            raise RuntimeError("the session has no Core client to renew tokens with")
        return self.core

    def accept(self, grant: TokenGrant) -> Tokens:
        """Use the tokens of ``grant`` from now on and tell the listener."""
        tokens = Tokens.from_grant(grant)
        if tokens.refresh_token is None and self.tokens is not None:
            # A switch answers without a refresh token for API-key sessions; keep the old one.
            tokens = Tokens(
                tokens.access_token,
                self.tokens.refresh_token,
                tokens.expires_at,
                tokens.organization_id,
                tokens.role,
            )
        self.api_key = None
        self.tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)
        return tokens

    def clear(self) -> None:
        """Forget every credential (after logout)."""
        self.api_key = None
        self.tokens = None
        self._email = self._password = None
        if self._on_tokens is not None:
            self._on_tokens(None)

    async def login(
        self, email: str, password: str, organization_id: str | None = None
    ) -> TokenGrant:
        """Sign in with a password; the session uses the new tokens."""
        with anonymous():
            grant = await self._core().login(email, password, organization_id)
        self.accept(grant)
        self._email, self._password = email, password
        self._organization_id = organization_id or grant.organization_id
        return grant

    async def bearer(self) -> str | None:
        """The credential to send now, signing in or refreshing first when needed."""
        if self.api_key is not None:
            return self.api_key
        tokens = self.tokens
        if tokens is None:
            if self._email is None or self._password is None:
                return None
            async with self._lock:
                if self.tokens is None:
                    await self.login(self._email, self._password, self._organization_id)
        elif tokens.expiring() and (tokens.refresh_token or self._password):
            await self.renew(stale=tokens.access_token)
        return self.tokens.access_token if self.tokens else None

    async def renew(self, *, stale: str) -> None:
        """Replace the access token ``stale``: refresh it, or sign in again with the password.

        When another request already replaced it, nothing is done. Raises ``Unauthorized``
        when neither works (the session has ended: sign in again).
        """
        async with self._lock:
            tokens = self.tokens
            if tokens is None or tokens.access_token != stale:
                return
            failure: Unauthorized | None = None
            if tokens.refresh_token:
                try:
                    with anonymous():
                        grant = await self._core().refresh(tokens.refresh_token)
                except Unauthorized as exc:
                    failure = exc
                else:
                    self.accept(grant)
                    return
            if self._email is not None and self._password is not None:
                await self.login(self._email, self._password, tokens.organization_id)
                return
            if failure is not None:
                raise failure
            raise Unauthorized(
                "The access token expired and there is no refresh token; sign in again",
                code="TOKEN_EXPIRED",
            )
