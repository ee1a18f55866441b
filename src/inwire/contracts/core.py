"""Core's contract: what other services, the gateway and the SDK may rely on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from inwire.kit.peers import ServiceClient


class TokenGrant(BaseModel):
    """Tokens issued by login, refresh, organization switch, SSO or API-key exchange."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int
    organization_id: str
    role: str


class Caller(BaseModel):
    """``GET /auth/me``: who the bearer is and where they act."""

    id: str
    kind: str
    email: str | None = None
    name: str
    organization_id: str
    role: str
    token_expires_at: datetime | None = None


class CoreClient(ServiceClient):
    """Typed calls to Core (``http://host:18000`` or its ASGI app)."""

    async def login(
        self, email: str, password: str, organization_id: str | None = None
    ) -> TokenGrant:
        """Sign in with a password."""
        body: dict[str, Any] = {"email": email, "password": password}
        if organization_id:
            body["organization_id"] = organization_id
        return TokenGrant.model_validate(await self.post("/api/v1/auth/login", json=body))

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Rotate a refresh token."""
        data = await self.post("/api/v1/auth/token/refresh", json={"refresh_token": refresh_token})
        return TokenGrant.model_validate(data)

    async def exchange_api_key(self, api_key: str) -> TokenGrant:
        """A short-lived access token for an API key (what the gateway caches)."""
        data = await self.post("/api/v1/auth/token", json={"api_key": api_key})
        return TokenGrant.model_validate(data)

    async def me(self) -> Caller:
        """The caller behind this client's credentials."""
        return Caller.model_validate(await self.get("/api/v1/auth/me"))
