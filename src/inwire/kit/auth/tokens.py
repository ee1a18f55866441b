"""EdDSA JWTs: signing (Core) and verification through a JWKS with caching and rotation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from jwt import PyJWK

from inwire.kit.auth.principal import Principal
from inwire.kit.errors import Unauthorized, Unavailable

ALGORITHM = "EdDSA"
#: Clock skew tolerated on exp/nbf/iat (RFC 7519 §4.1.4 leaves it to the verifier).
LEEWAY_SECONDS = 30


class KeySource(Protocol):
    """Where verification keys come from."""

    async def get_key(self, kid: str) -> PyJWK | None:
        """The public key with this ``kid``, or None if unknown."""
        ...


class StaticKeySource:
    """A fixed JWKS, e.g. for tests or a service that holds the keys itself."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = {k["kid"]: PyJWK(dict(k)) for k in jwks.get("keys", [])}

    async def get_key(self, kid: str) -> PyJWK | None:
        """Look the key up."""
        return self._keys.get(kid)


JWKSFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class JWKSKeySource:
    """Keys fetched from Core's ``/.well-known/jwks.json``, cached for ``ttl`` seconds.

    An unknown ``kid`` triggers a refresh (that is how rotation reaches verifiers), at most
    once per ``min_refresh_interval`` so a flood of forged kids cannot hammer Core.
    """

    def __init__(
        self,
        url: str,
        *,
        fetch: JWKSFetcher | None = None,
        ttl: float = 300.0,
        min_refresh_interval: float = 5.0,
    ) -> None:
        self.url = url
        self._fetch = fetch or self._http_fetch
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _http_fetch(self) -> Mapping[str, Any]:
        if self.url.startswith("file://"):
            from pathlib import Path

            text = await asyncio.to_thread(Path(self.url.removeprefix("file://")).read_text)
            loaded: Mapping[str, Any] = json.loads(text)
            return loaded
        import httpx

        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            body: Mapping[str, Any] = response.json()
            return body

    async def refresh(self) -> None:
        """Fetch the JWKS now; raise Unavailable if Core cannot be reached."""
        try:
            jwks = await self._fetch()
        except Exception as exc:
            raise Unavailable(f"cannot fetch signing keys from {self.url}") from exc
        keys: dict[str, PyJWK] = {}
        for entry in jwks.get("keys", []):
            try:
                keys[entry["kid"]] = PyJWK(dict(entry))
            except (KeyError, jwt.PyJWKError):
                continue
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def get_key(self, kid: str) -> PyJWK | None:
        """The key for ``kid``, refreshing when stale or when the kid is new."""
        age = time.monotonic() - self._fetched_at
        if kid in self._keys and age < self.ttl:
            return self._keys[kid]
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age >= self.ttl or (kid not in self._keys and age >= self.min_refresh_interval):
                try:
                    await self.refresh()
                except Unavailable:
                    if not self._keys:
                        raise
        return self._keys.get(kid)


#: Tokens a verifier remembers as verified by default (the oldest is forgotten first).
VERIFIED_TOKENS = 10_000


class TokenVerifier:
    """Checks an access token's signature, algorithm, issuer, audience and lifetime.

    A token that passed is remembered (up to ``cache_size``; 0 remembers none; checking
    one costs ~100 µs: PyJWT validates the base64 alphabet character by character, then
    the EdDSA signature) with the key that signed
    it, and answered from memory while it has not expired and the key source still hands
    out that same key object: a key withdrawn from Core's JWKS, or the key set refreshed
    (every ``ttl``), sends the token through the full check again. A client calling every
    few milliseconds with the same token no longer pays a signature check each time.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        cache_size: int = VERIFIED_TOKENS,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.cache_size = cache_size
        self._verified: dict[str, tuple[Principal, str, PyJWK, float]] = {}

    async def verify(self, token: str) -> Principal:
        """The principal a valid token names; Unauthorized for anything else."""
        known = self._verified.get(token)
        if known is not None:
            principal, kid, signer, until = known
            if time.time() < until and await self.keys.get_key(kid) is signer:
                return principal
            del self._verified[token]
        principal, kid, signer = await self._check(token)
        if self.cache_size and principal.expires_at is not None:
            if len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]
            until = principal.expires_at.timestamp() + LEEWAY_SECONDS
            self._verified[token] = (principal, kid, signer, until)
        return principal

    async def _check(self, token: str) -> tuple[Principal, str, PyJWK]:
        """The full check: the principal, the key id and the key that signed it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        # Only EdDSA is accepted: "none" and HMAC-with-public-key confusions are refused
        # before any key is looked up (RFC 8725 §3.1, §3.2).
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("Token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("Token has no key id")
        key = await self.keys.get_key(kid)
        if key is None:
            raise Unauthorized("Token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token expired", code="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from exc
        org = claims.get("org")
        roles = claims.get("roles")
        if not isinstance(org, str) or not isinstance(roles, list):
            raise Unauthorized("Token lacks organization or roles")
        kind = claims.get("kind", "user")
        principal = Principal(
            subject=str(claims["sub"]),
            org=org,
            roles=tuple(str(r) for r in roles),
            kind="service" if kind == "service" else "user",
            token_id=str(claims["jti"]),
            token=token,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            name=str(claims.get("name", "")),
            amr=tuple(str(m) for m in claims.get("amr", []) if isinstance(m, str)),
        )
        return principal, kid, key


def sign_token(private_key: Any, kid: str, claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` with an Ed25519 private key (a ``cryptography`` key object)."""
    return jwt.encode(dict(claims), private_key, algorithm=ALGORITHM, headers={"kid": kid})


def public_jwk(public_key: Any, kid: str) -> dict[str, Any]:
    """The JWK (RFC 8037 OKP) of an Ed25519 public key."""
    from jwt.algorithms import OKPAlgorithm

    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    return jwk
