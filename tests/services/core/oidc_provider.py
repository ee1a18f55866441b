"""A small but real OpenID Connect provider for tests, run in process through ASGI.

It serves discovery, an authorization endpoint that signs in a configured test user at once
and redirects back with a code, a token endpoint that authenticates the client (basic or
post), checks the redirect URI and the PKCE verifier (RFC 7636 §4.6) and issues an
RS256-signed ID token, and the JWKS. Codes are single-use and bound to their client,
redirect URI, code challenge and nonce, as a real provider binds them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

#: One RSA key for the whole test session: generating it is the slowest part of the provider.
_KEY: RSAKey | None = None


def _signing_key() -> RSAKey:
    global _KEY
    if _KEY is None:
        _KEY = RSAKey.generate_key(2048, parameters={"kid": "test-rsa-1", "use": "sig"})
    return _KEY


@dataclass
class IssuedCode:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    claims: dict[str, Any]


@dataclass
class OIDCTestProvider:
    """An identity provider with one registered client and one signed-in user."""

    issuer: str = "https://idp.test"
    client_id: str = "inwire-client"
    client_secret: str = "idp-client-secret-0123456789"
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "idp-user-1",
            "email": "ada@corp.example.com",
            "email_verified": True,
            "name": "Ada Lovelace",
        }
    )
    #: Claims to change in the next ID tokens (e.g. a wrong ``aud`` or ``nonce``).
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = _signing_key()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )

    # -- endpoints ---------------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type")
        if q.get("client_id") != self.client_id:
            problems.append("client_id")
        if "openid" not in q.get("scope", "").split():
            problems.append("scope")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            problems.append("code_challenge")
        if not q.get("redirect_uri") or not q.get("state") or not q.get("nonce"):
            problems.append("redirect_uri/state/nonce")
        if problems:
            return JSONResponse({"error": "invalid_request", "fields": problems}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = IssuedCode(
            client_id=self.client_id,
            redirect_uri=q["redirect_uri"],
            code_challenge=q["code_challenge"],
            nonce=q["nonce"],
            claims=dict(self.user),
        )
        back = urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        client_id, secret = self._client_credentials(request, form)
        if client_id != self.client_id or secret != self.client_secret:
            return self._error("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type")
        issued = self.codes.pop(form.get("code", ""), None)  # single use
        if issued is None or issued.client_id != client_id:
            return self._error("invalid_grant")
        if form.get("redirect_uri") != issued.redirect_uri:
            return self._error("invalid_grant")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not verifier or challenge.rstrip(b"=").decode() != issued.code_challenge:
            return self._error("invalid_grant", description="PKCE verification failed")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": issued.nonce,
            **issued.claims,
            **self.id_token_overrides,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
            # RFC 6749 §2.3.1: both parts are form-encoded before base64.
            return unquote_plus(client_id), unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    @staticmethod
    def _error(error: str, status: int = 400, description: str = "") -> Response:
        body = {"error": error, **({"error_description": description} if description else {})}
        return JSONResponse(body, status_code=status)
