"""Single sign-on rules: OIDC providers per organization and the authorization code flow.

The flow is OpenID Connect Core 1.0 §3.1 (authorization code) with PKCE S256 (RFC 7636):
``start_login`` discovers the provider, stores state, nonce and code verifier, and returns
the authorization URL; ``finish_login`` spends the state once, exchanges the code with the
client secret and the verifier, validates the ID token (signature from the provider's JWKS,
``iss``, ``aud``, ``exp``, ``nonce``), then finds, links or provisions the user and issues
Inwire tokens. The state is also bound to the browser that started the flow (RFC 6749
§10.12), so a callback link cannot sign someone else in.
"""

from __future__ import annotations

import functools
import secrets
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import Email, ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import utcnow
from inwire.kit.db.engine import after_transaction
from inwire.kit.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InwireError,
    TooManyRequests,
    Unavailable,
)
from inwire.kit.ids import new_id
from inwire.kit.ratelimit import RateLimit
from inwire.services.core.audit.service import ClientInfo, record, record_after, record_by
from inwire.services.core.auth.schemas import TokenPair
from inwire.services.core.auth.service import issue_tokens
from inwire.services.core.context import CoreContext
from inwire.services.core.organizations.models import Membership
from inwire.services.core.organizations.repository import MembershipRepository
from inwire.services.core.security import new_secret_token, token_hash
from inwire.services.core.sso.models import IdentityLink, OIDCProvider, SSOLoginState
from inwire.services.core.sso.repository import (
    IdentityLinkRepository,
    OIDCProviderRepository,
    SSOLoginStateRepository,
)
from inwire.services.core.sso.schemas import ProviderIn, ProviderOut, ProviderUpdate, is_loopback
from inwire.services.core.users.models import User
from inwire.services.core.users.repository import UserRepository

#: How long a started sign-in may take.
STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/api/v1/auth/sso/callback"
#: Clock skew tolerated on ``exp`` and ``iat`` of ID tokens.
LEEWAY_SECONDS = 60
#: Asymmetric signature algorithms accepted for ID tokens; never ``none`` or HMAC.
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)

#: Builds an ``AsyncOAuth2Client`` (authlib) from keyword arguments.
ClientFactory = Callable[..., Any]

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


# -- HTTP to identity providers ----------------------------------------------------------------


def _oauth_client_class() -> Any:
    with warnings.catch_warnings():
        # authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx, which it
        # still supports. Its module installs an "always" filter, so it is imported first
        # and ours goes in front of it.
        import authlib.deprecate

        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client_factory(transport: httpx.AsyncBaseTransport | None = None) -> ClientFactory:
    """A factory of OAuth 2.0 clients for talking to identity providers.

    Core passes ``app.state.sso_http_transport`` when set, so tests can put an in-process
    identity provider behind an ``httpx.ASGITransport``.
    """
    client_class = _oauth_client_class()

    def make(**kwargs: Any) -> Any:
        return client_class(
            transport=transport,
            verify=_tls(),
            timeout=httpx.Timeout(10.0, connect=5.0),
            # No redirects: endpoints come from discovery and must answer themselves.
            follow_redirects=False,
            **kwargs,
        )

    return make


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery tells about a provider (OpenID Connect Discovery 1.0 §3)."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_methods: tuple[str, ...]


def _unavailable(message: str) -> Unavailable:
    return Unavailable(message, code="SSO_PROVIDER_UNAVAILABLE")


def _acceptable_endpoint(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    host = parts.hostname or ""
    return bool(host) and (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    )


async def _get_json(http: ClientFactory, url: str, what: str) -> dict[str, Any]:
    async with http() as client:
        try:
            response = await client.request("GET", url, withhold_token=True)
        except httpx.HTTPError as exc:
            raise _unavailable(f"Cannot reach the identity provider for its {what}") from exc
    if response.status_code != 200:
        raise _unavailable(f"The identity provider answered {response.status_code} for its {what}")
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _unavailable(f"The identity provider's {what} is not a JSON object")
    return data


async def discover(http: ClientFactory, issuer: str) -> ProviderMetadata:
    """Read and check the provider's configuration document."""
    doc = await _get_json(
        http, f"{issuer.rstrip('/')}/.well-known/openid-configuration", "discovery document"
    )
    # Discovery §4.3: the document must name exactly the issuer it was fetched for.
    if doc.get("issuer") != issuer:
        raise _unavailable("The identity provider's discovery document names another issuer")
    endpoints = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    bad = [name for name in endpoints if not _acceptable_endpoint(doc.get(name))]
    if bad:
        raise _unavailable(f"The identity provider's discovery document lacks a usable {bad[0]}")
    algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return ProviderMetadata(
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        jwks_uri=doc["jwks_uri"],
        algorithms=tuple(a for a in algorithms if a in SIGNING_ALGORITHMS),
        auth_methods=tuple(str(m) for m in methods),
    )


# -- provider management ---------------------------------------------------------------------


def public_base(core: CoreContext) -> str:
    """Core's public base URL, without a trailing slash."""
    return core.settings.public_url.rstrip("/")


def callback_url(core: CoreContext) -> str:
    """The redirect URI to register at every provider."""
    return public_base(core) + CALLBACK_PATH


def present(core: CoreContext, row: OIDCProvider) -> ProviderOut:
    """The public view of a provider: whether it has a secret, never the secret."""
    return ProviderOut(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        issuer=row.issuer,
        client_id=row.client_id,
        has_client_secret=row.client_secret_sealed is not None,
        scopes=row.scopes.split(),
        default_role=row.default_role,
        allowed_domains=list(row.allowed_domains),
        enabled=row.enabled,
        login_url=f"{public_base(core)}/api/v1/auth/sso/{row.id}/login",
        redirect_uri=callback_url(core),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def list_providers(
    core: CoreContext, session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[list[ProviderOut], int]:
    """One page of the organization's providers."""
    rows, total = await OIDCProviderRepository(session, principal.org).page(query)
    return [present(core, r) for r in rows], total


async def get_provider(session: AsyncSession, principal: Principal, id_: str) -> OIDCProvider:
    """One provider of the caller's organization."""
    return await OIDCProviderRepository(session, principal.org).get(id_)


async def create_provider(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    body: ProviderIn,
    client: ClientInfo,
) -> OIDCProvider:
    """Configure a provider; the client secret is sealed."""
    row = OIDCProvider(
        id=new_id("sso"),
        organization_id=principal.org,
        name=body.name,
        issuer=body.issuer,
        client_id=body.client_id,
        client_secret_sealed=core.sealer.seal(body.client_secret) if body.client_secret else None,
        scopes=" ".join(body.scopes),
        default_role=body.default_role,
        allowed_domains=body.allowed_domains,
        enabled=body.enabled,
    )
    await OIDCProviderRepository(session, principal.org).add(row)
    await record_by(
        session,
        principal,
        "sso.created",
        target_type="oidc_provider",
        target_id=row.id,
        client=client,
        name=row.name,
        issuer=row.issuer,
    )
    return row


async def update_provider(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    id_: str,
    body: ProviderUpdate,
    client: ClientInfo,
) -> OIDCProvider:
    """Change a provider; only the fields sent change, ``client_secret: null`` removes it."""
    repo = OIDCProviderRepository(session, principal.org)
    row = await repo.get(id_)
    sent = body.model_fields_set
    changed: list[str] = []
    plain = {
        "name": body.name,
        "issuer": body.issuer,
        "client_id": body.client_id,
        "scopes": " ".join(body.scopes) if body.scopes is not None else None,
        "default_role": body.default_role,
        "allowed_domains": body.allowed_domains,
        "enabled": body.enabled,
    }
    for field, value in plain.items():
        if field in sent and value is not None and getattr(row, field) != value:
            setattr(row, field, value)
            changed.append(field)
    if "client_secret" in sent:
        row.client_secret_sealed = (
            core.sealer.seal(body.client_secret) if body.client_secret else None
        )
        changed.append("client_secret")
    if changed:
        row.updated_at = utcnow()
        await repo.flush()
        await record_by(
            session,
            principal,
            "sso.updated",
            target_type="oidc_provider",
            target_id=row.id,
            client=client,
            fields=changed,
        )
    return row


async def delete_provider(
    session: AsyncSession, principal: Principal, id_: str, client: ClientInfo
) -> None:
    """Remove a provider; sign-ins in flight with it fail, linked identities stay."""
    repo = OIDCProviderRepository(session, principal.org)
    row = await repo.get(id_)
    await repo.remove(row)
    await record_by(
        session,
        principal,
        "sso.deleted",
        target_type="oidc_provider",
        target_id=row.id,
        client=client,
        name=row.name,
    )


# -- sign-in flow ------------------------------------------------------------------------------


def check_return_to(core: CoreContext, uri: str) -> None:
    """Where tokens may be sent after sign-in: never to a foreign site (open redirect).

    Allowed: a path on this server, a URL of Core's public origin, or an ``http`` loopback
    URL for native apps and the CLI (RFC 8252 §7.3).
    """
    parts = urlsplit(uri)
    ok = False
    if "#" in uri or any(c in uri for c in "\\\r\n\t "):
        ok = False
    elif not parts.scheme and not parts.netloc:
        ok = uri.startswith("/") and not uri.startswith("//")
    elif parts.scheme in ("http", "https") and parts.hostname and not parts.username:
        public = urlsplit(core.settings.public_url)
        same_origin = (parts.scheme, parts.netloc.lower()) == (
            public.scheme,
            public.netloc.lower(),
        )
        ok = same_origin or (parts.scheme == "http" and is_loopback(parts.hostname))
    if not ok:
        raise Invalid(
            "redirect_uri must be a path on this server, a URL of its origin, "
            "or an http://localhost URL",
            details=[{"field": "redirect_uri", "message": "not an allowed destination"}],
        )


async def throttle(core: CoreContext, client: ClientInfo) -> None:
    """429 when one address starts too many sign-ins: each one stores a row until it expires."""
    s = core.settings
    limit = RateLimit(
        (s.login_attempts_per_ip, s.login_ip_window_seconds), burst=s.login_attempts_per_ip
    )
    decision = await core.limiter.hit(f"sso:ip:{client.ip}", limit)
    if not decision.allowed:
        raise TooManyRequests(
            "Too many sign-in attempts; try again later",
            retry_after=decision.retry_after,
            headers=decision.headers(),
        )


async def start_login(
    core: CoreContext,
    session: AsyncSession,
    http: ClientFactory,
    provider_id: str,
    *,
    redirect_uri: str | None,
    browser: str,
    client: ClientInfo,
) -> str:
    """Record a sign-in in flight and return the provider's authorization URL."""
    await throttle(core, client)
    if redirect_uri is not None:
        check_return_to(core, redirect_uri)
    provider = await OIDCProviderRepository.unscoped(session).get(provider_id)
    if not provider.enabled:
        raise Forbidden("This SSO provider is disabled", code="SSO_PROVIDER_DISABLED")
    metadata = await discover(http, provider.issuer)
    state, nonce = new_secret_token(), new_secret_token()
    verifier = secrets.token_urlsafe(48)  # 64 characters; RFC 7636 §4.1 asks for 43..128
    now = utcnow()
    states = SSOLoginStateRepository.unscoped(session)
    await states.prune(now)
    await states.add(
        SSOLoginState(
            state=token_hash(state),
            provider_id=provider.id,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri or "",
            extra={"browser": token_hash(browser)},
            expires_at=now + STATE_TTL,
        )
    )
    async with http(
        client_id=provider.client_id,
        scope=provider.scopes,
        redirect_uri=callback_url(core),
        code_challenge_method="S256",
    ) as oauth:
        url, _ = oauth.create_authorization_url(
            metadata.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
        )
    return str(url)


@dataclass(frozen=True)
class PendingLogin:
    """A spent login state."""

    provider_id: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    browser_hash: str
    expires_at: datetime


@dataclass
class SignInPlan:
    """Who the verified identity is in Inwire, decided before anything is written."""

    user: User | None
    link: bool
    how: str
    email: str | None
    name: str
    subject: str


@dataclass(frozen=True)
class LoginResult:
    """Tokens, and where to send them if the sign-in asked for a redirect."""

    tokens: TokenPair
    redirect_uri: str | None


def _state_error(message: str, code: str = "SSO_STATE_INVALID") -> Invalid:
    return Invalid(message, code=code, details=[{"field": "state", "message": message}])


async def _take_state(core: CoreContext, session: AsyncSession, state: str) -> PendingLogin | None:
    """Spend a sign-in state. It stays spent even when the sign-in then fails: if the
    request's transaction rolls back, the state is deleted again once it has ended."""
    digest = token_hash(state)
    row = await SSOLoginStateRepository.unscoped(session).take(digest)
    if row is None:
        return None

    async def spend_for_good() -> None:
        async with core.db.session() as own:
            await SSOLoginStateRepository.unscoped(own).take(digest)

    after_transaction(session, spend_for_good)
    return PendingLogin(
        provider_id=row.provider_id,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        redirect_uri=row.redirect_uri,
        browser_hash=str((row.extra or {}).get("browser", "")),
        expires_at=row.expires_at,
    )


async def _exchange_code(
    core: CoreContext,
    http: ClientFactory,
    provider: OIDCProvider,
    metadata: ProviderMetadata,
    code: str,
    verifier: str,
) -> dict[str, Any]:
    from authlib.common.errors import AuthlibBaseError

    secret = None
    if provider.client_secret_sealed:
        try:
            secret = core.sealer.open(provider.client_secret_sealed)
        except ValueError as exc:
            raise _unavailable(
                "The provider's client secret cannot be decrypted with the current key; "
                "an admin must set it again"
            ) from exc
    if secret is None:
        method = "none"
    elif "client_secret_basic" in metadata.auth_methods:
        method = "client_secret_basic"
    elif "client_secret_post" in metadata.auth_methods:
        method = "client_secret_post"
    else:
        raise _unavailable("The identity provider supports no client authentication we can use")
    async with http(
        client_id=provider.client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        redirect_uri=callback_url(core),
        code_challenge_method="S256",
    ) as oauth:
        try:
            token = await oauth.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=verifier,
            )
        except AuthlibBaseError as exc:
            reason = _safe_code(str(exc.error)) or "rejected"
            raise Invalid(
                f"The identity provider rejected the authorization code ({reason})",
                code="SSO_CODE_INVALID",
                details=[{"field": "code", "message": reason}],
            ) from exc
        except httpx.HTTPStatusError as exc:
            raise _unavailable(
                f"The identity provider's token endpoint answered {exc.response.status_code}"
            ) from exc
        except httpx.HTTPError as exc:
            raise _unavailable("Cannot reach the identity provider's token endpoint") from exc
    return dict(token)


def _safe_code(value: str | None) -> str:
    """An OAuth error code fit to echo (RFC 6749 §5.2 codes are short ASCII words)."""
    value = (value or "").strip()
    ok = 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.-") for c in value)
    return value if ok else ""


async def verify_id_token(
    http: ClientFactory,
    provider: OIDCProvider,
    metadata: ProviderMetadata,
    id_token: str,
    nonce: str,
) -> dict[str, Any]:
    """Check an ID token (OpenID Connect Core §3.1.3.7) and return its claims."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet
    from joserfc.jwt import JWTClaimsRegistry

    jwks = await _get_json(http, metadata.jwks_uri, "signing keys")
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise _unavailable("The identity provider published unusable signing keys") from exc
    registry = JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        token = jwt.decode(id_token, keys, algorithms=list(metadata.algorithms or ("RS256",)))
        registry.validate(token.claims)
    except (JoseError, ValueError) as exc:
        reason = getattr(exc, "description", "") or str(exc) or type(exc).__name__
        raise Invalid(
            f"The ID token was rejected: {reason}",
            code="SSO_ID_TOKEN_INVALID",
            details=[{"field": "id_token", "message": reason}],
        ) from exc
    claims = dict(token.claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise Invalid(
            "The ID token was rejected: azp does not name this client",
            code="SSO_ID_TOKEN_INVALID",
        )
    return claims


def _email_of(claims: dict[str, Any]) -> tuple[str | None, bool]:
    raw = claims.get("email")
    try:
        email = _EMAIL.validate_python(raw) if isinstance(raw, str) else None
    except ValidationError:
        email = None
    # Some providers (e.g. Amazon Cognito) send the boolean as a string.
    verified = claims.get("email_verified") in (True, "true")
    return email, verified


def _display_name(claims: dict[str, Any], email: str | None) -> str:
    for value in (
        claims.get("name"),
        " ".join(str(claims.get(k) or "") for k in ("given_name", "family_name")).strip(),
        claims.get("preferred_username"),
        (email or "").partition("@")[0],
    ):
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return ""


async def plan_sign_in(
    session: AsyncSession, provider: OIDCProvider, claims: dict[str, Any]
) -> SignInPlan:
    """Decide who signs in, or refuse; reads only, so a refusal leaves nothing behind."""
    subject = str(claims["sub"])
    email, verified = _email_of(claims)
    if provider.allowed_domains:
        domain = email.rpartition("@")[2] if email and verified else ""
        if domain not in provider.allowed_domains:
            raise Forbidden(
                f"E-mail domain {domain or '(none verified)'} may not sign in with this provider",
                code="SSO_DOMAIN_NOT_ALLOWED",
            )
    name = _display_name(claims, email)
    link = await IdentityLinkRepository.unscoped(session).by_subject(provider.issuer, subject)
    users = UserRepository.unscoped(session)
    # A link dies with its user (foreign key cascade), so a found link has a user.
    linked = await users.find(User.id == link.user_id) if link is not None else None
    if linked is not None:
        plan = SignInPlan(linked, link=False, how="link", email=email, name=name, subject=subject)
    else:
        if not email:
            raise Forbidden(
                "The identity provider shared no e-mail address", code="SSO_EMAIL_REQUIRED"
            )
        if not verified:
            raise Forbidden(
                "The identity provider has not verified the e-mail address",
                code="SSO_EMAIL_UNVERIFIED",
            )
        user = await users.by_email(email)
        if user is None:
            plan = SignInPlan(
                None, link=True, how="provisioned", email=email, name=name, subject=subject
            )
        else:
            # Linking by e-mail trusts the provider's word about the address. A provider is
            # configured by one organization's admins, so it may vouch only for people who
            # are already members there; anyone else would be an account takeover.
            member = await MembershipRepository(session, provider.organization_id).of_user(user.id)
            if member is None:
                raise Conflict(
                    "An account with this e-mail address already exists; an admin of the "
                    "organization must invite it before it can sign in with this provider",
                    code="SSO_ACCOUNT_EXISTS",
                )
            plan = SignInPlan(user, link=True, how="email", email=email, name=name, subject=subject)
    if plan.user is not None and not plan.user.is_active:
        raise Forbidden("This account is disabled", code="ACCOUNT_DISABLED")
    return plan


async def _carry_out(
    session: AsyncSession, provider: OIDCProvider, plan: SignInPlan
) -> tuple[User, Membership, bool]:
    user = plan.user
    if user is None:
        assert plan.email is not None  # a plan to provision always has a verified address
        user = User(
            id=new_id("usr"),
            email=plan.email,
            name=plan.name,
            password_hash=None,
            default_organization_id=provider.organization_id,
        )
        await UserRepository.unscoped(session).add(user)
    if plan.link:
        await IdentityLinkRepository.unscoped(session).add(
            IdentityLink(
                id=new_id("idl"), user_id=user.id, issuer=provider.issuer, subject=plan.subject
            )
        )
    members = MembershipRepository(session, provider.organization_id)
    membership = await members.of_user(user.id)
    joined = membership is None
    if membership is None:
        membership = Membership(
            id=new_id("mem"),
            organization_id=provider.organization_id,
            user_id=user.id,
            role=provider.default_role,
        )
        await members.add(membership)
    return user, membership, joined


async def finish_login(
    core: CoreContext,
    session: AsyncSession,
    http: ClientFactory,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    browser: str | None,
    client: ClientInfo,
) -> LoginResult:
    """Complete a sign-in from the provider's redirect; every failure is audited."""
    org_id, provider_id = "", ""
    try:
        if not state:
            raise _state_error("The sign-in has no state; start it again")
        pending = await _take_state(core, session, state)
        if pending is None:
            raise _state_error("Unknown or already used sign-in state; start again")
        provider_id = pending.provider_id
        if pending.expires_at <= utcnow():
            raise _state_error("The sign-in took too long; start again", "SSO_STATE_EXPIRED")
        if not browser or not secrets.compare_digest(token_hash(browser), pending.browser_hash):
            raise _state_error("The sign-in was started in another browser; start it again here")
        provider = await OIDCProviderRepository.unscoped(session).find(
            OIDCProvider.id == pending.provider_id
        )
        if provider is None:
            raise _state_error("The SSO provider of this sign-in no longer exists")
        org_id = provider.organization_id
        if not provider.enabled:
            raise Forbidden("This SSO provider is disabled", code="SSO_PROVIDER_DISABLED")
        if error:
            reason = _safe_code(error) or "error"
            raise Invalid(
                f"The identity provider refused the sign-in ({reason})",
                code="SSO_PROVIDER_ERROR",
            )
        if not code:
            raise Invalid(
                "The identity provider sent no authorization code",
                code="SSO_CODE_INVALID",
                details=[{"field": "code", "message": "missing"}],
            )
        metadata = await discover(http, provider.issuer)
        token = await _exchange_code(core, http, provider, metadata, code, pending.code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Invalid(
                "The identity provider returned no ID token (is the openid scope granted?)",
                code="SSO_ID_TOKEN_INVALID",
            )
        claims = await verify_id_token(http, provider, metadata, id_token, pending.nonce)
        plan = await plan_sign_in(session, provider, claims)
    except InwireError as exc:
        record_after(
            session,
            core.db,
            "auth.sso_login",
            org_id=org_id,
            outcome="failure",
            target_type="oidc_provider",
            target_id=provider_id,
            client=client,
            reason=exc.code,
            message=exc.message,
        )
        raise
    user, membership, joined = await _carry_out(session, provider, plan)
    user.last_login_at = utcnow()
    tokens = await issue_tokens(core, session, user, membership, method="sso")
    await record(
        session,
        "auth.sso_login",
        org_id=membership.organization_id,
        actor_id=user.id,
        target_type="oidc_provider",
        target_id=provider.id,
        client=client,
        method=plan.how,
        joined=joined,
    )
    return LoginResult(tokens=tokens, redirect_uri=pending.redirect_uri or None)
