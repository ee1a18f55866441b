"""Credentials of a service account, for service-to-service calls and background work.

A service account authenticates with an API key; Core exchanges it for a short-lived access
token (``POST /api/v1/auth/token``). This class keeps that token and renews it shortly
before it expires, so it can be handed to a :class:`~inwire.kit.peers.ServiceClient` as its
``credentials``.
"""

from __future__ import annotations

import asyncio
import time

from inwire.kit.peers import ASGIApp, ServiceClient


class ServiceAccountCredentials:
    """An async callable returning a valid bearer token for a service account's API key."""

    def __init__(
        self,
        api_key: str,
        *,
        core_url: str = "http://127.0.0.1:18000",
        app: ASGIApp | None = None,
        renew_before: float = 60.0,
    ) -> None:
        self._api_key = api_key
        self._client = ServiceClient(core_url, app=app)
        self._renew_before = renew_before
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        """The current access token, exchanged anew when it is about to expire."""
        if self._token and time.monotonic() < self._expires - self._renew_before:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires - self._renew_before:
                return self._token
            data = await self._client.post("/api/v1/auth/token", json={"api_key": self._api_key})
            self._token = str(data["access_token"])
            self._expires = time.monotonic() + float(data["expires_in"])
            return self._token

    async def close(self) -> None:
        """Close the connection to Core."""
        await self._client.close()
