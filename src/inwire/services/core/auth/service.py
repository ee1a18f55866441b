"""Authentication rules: login, tokens, refresh rotation, logout, passwords, API keys."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.kit.auth.permissions import role_at_least
from inwire.kit.auth.tokens import TokenVerifier, sign_token
from inwire.kit.db import utcnow
from inwire.kit.db.engine import after_transaction, writing
from inwire.kit.errors import Forbidden, Invalid, TooManyRequests, Unauthorized
from inwire.kit.ids import new_id
from inwire.kit.ratelimit import RateLimit
from inwire.services.core.apikeys.models import ApiKey, ServiceAccount
from inwire.services.core.apikeys.repository import ApiKeyRepository
from inwire.services.core.audit.service import ClientInfo, record, record_after
from inwire.services.core.auth.models import PasswordReset, RefreshToken, RevokedToken
from inwire.services.core.auth.repository import (
    PasswordResetRepository,
    RefreshTokenRepository,
    RevokedTokenRepository,
    SessionFactsRepository,
)
from inwire.services.core.auth.schemas import TokenPair, UserBrief
from inwire.services.core.context import CoreContext
from inwire.services.core.organizations.models import Membership
from inwire.services.core.organizations.repository import MembershipRepository
from inwire.services.core.security import (
    API_KEY_PREFIX,
    api_key_well_formed,
    new_refresh_token,
    new_secret_token,
    token_hash,
)
from inwire.services.core.users.models import User
from inwire.services.core.users.repository import UserRepository

INVALID_LOGIN = "Invalid email or password"

log = logging.getLogger("inwire.core.auth")


def check_password_policy(core: CoreContext, password: str, *, email: str = "") -> None:
    """Length 12..1024 and not the e-mail itself (OWASP ASVS 2.1.1, 2.1.2)."""
    if len(password) < core.settings.min_password_length:
        raise Invalid(
            f"Password must have at least {core.settings.min_password_length} characters",
            details=[{"field": "password", "message": "too short"}],
        )
    if email and password.strip().lower() == email.strip().lower():
        raise Invalid(
            "Password must not be the e-mail address",
            details=[{"field": "password", "message": "equals e-mail"}],
        )


async def throttle_login(core: CoreContext, email: str, client: ClientInfo) -> None:
    """429 when an address or an account sees too many attempts (OWASP ASVS 2.2.1)."""
    s = core.settings
    checks = (
        (
            f"login:ip:{client.ip}",
            RateLimit(
                (s.login_attempts_per_ip, s.login_ip_window_seconds), burst=s.login_attempts_per_ip
            ),
        ),
        (
            f"login:acct:{email.strip().lower()}",
            RateLimit(
                (s.login_attempts_per_account, s.login_account_window_seconds),
                burst=s.login_attempts_per_account,
            ),
        ),
    )
    for key, limit in checks:
        decision = await core.limiter.hit(key, limit)
        if not decision.allowed:
            raise TooManyRequests(
                "Too many login attempts; try again later",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )


async def issue_tokens(
    core: CoreContext,
    session: AsyncSession,
    user: User,
    membership: Membership,
    *,
    family_id: str | None = None,
    with_refresh: bool = True,
    method: str = "pwd",
) -> TokenPair:
    """An access token for ``user`` in the membership's organization, and a refresh token.

    ``method`` says how the session began (``pwd`` or ``sso``); it travels in the ``amr``
    claim and through every refresh of the family.
    """
    access = await sign_access_token(
        core,
        subject=user.id,
        org=membership.organization_id,
        roles=[membership.role],
        kind="user",
        name=user.email,
        amr=[method],
    )
    refresh: str | None = None
    if with_refresh:
        refresh = new_refresh_token()
        session.add(
            RefreshToken(
                id=new_id("rtk"),
                token_hash=token_hash(refresh),
                family_id=family_id or new_id("fam"),
                user_id=user.id,
                organization_id=membership.organization_id,
                expires_at=utcnow() + timedelta(seconds=core.settings.refresh_token_ttl_seconds),
                method=method,
            )
        )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=core.settings.access_token_ttl_seconds,
        organization_id=membership.organization_id,
        role=membership.role,
        user=UserBrief.model_validate(user),
    )


async def sign_access_token(
    core: CoreContext,
    *,
    subject: str,
    org: str,
    roles: list[str],
    kind: str,
    name: str = "",
    ttl: int | None = None,
    amr: list[str] | None = None,
) -> str:
    """Sign an EdDSA access token with the current key."""
    kid, key = await core.keyring.signing_key()
    now = int(datetime.now(UTC).timestamp())
    lifetime = min(
        ttl or core.settings.access_token_ttl_seconds, core.settings.access_token_ttl_seconds
    )
    return sign_token(
        key,
        kid,
        {
            "iss": core.settings.issuer,
            "aud": core.settings.audience,
            "sub": subject,
            "org": org,
            "roles": roles,
            "kind": kind,
            "name": name,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "amr": amr or [],
        },
    )


async def choose_membership(session: AsyncSession, user: User, org_id: str | None) -> Membership:
    """The membership to sign in with: the one asked for, the default, or the oldest."""
    memberships = await MembershipRepository.unscoped(session).all_of_user(user.id)
    if not memberships:
        raise Forbidden("This account belongs to no organization")
    wanted = org_id or user.default_organization_id
    for m in memberships:
        if m.organization_id == wanted:
            return m
    if org_id:
        raise Forbidden("You are not a member of that organization")
    return memberships[0]


async def login(
    core: CoreContext,
    session: AsyncSession,
    email: str,
    password: str,
    org_id: str | None,
    client: ClientInfo,
) -> TokenPair:
    """Check credentials and issue tokens. Unknown account and wrong password look alike."""
    await throttle_login(core, email, client)
    user = await UserRepository.unscoped(session).by_email(email)
    usable = user is not None and user.is_active and user.password_hash
    ok = await core.passwords.verify(user.password_hash if usable and user else None, password)
    if not ok or user is None:
        orgs = []
        if user is not None:
            orgs = [
                m.organization_id
                for m in await MembershipRepository.unscoped(session).all_of_user(user.id)
            ]
        for org in orgs or [""]:
            record_after(
                session,
                core.db,
                "auth.login",
                org_id=org,
                actor_id=user.id if user else "",
                outcome="failure",
                client=client,
                email=email.lower(),
            )
        raise Unauthorized(INVALID_LOGIN, code="INVALID_CREDENTIALS")
    assert user.password_hash is not None
    if core.passwords.needs_rehash(user.password_hash):
        user.password_hash = await core.passwords.hash(password)
    membership = await choose_membership(session, user, org_id)
    user.last_login_at = utcnow()
    pair = await issue_tokens(core, session, user, membership)
    await record(
        session, "auth.login", org_id=membership.organization_id, actor_id=user.id, client=client
    )
    return pair


async def refresh(
    core: CoreContext, session: AsyncSession, token: str, client: ClientInfo
) -> TokenPair:
    """Rotate a refresh token; a spent one presented again revokes its family (RFC 9700 4.14.2)."""
    repo = RefreshTokenRepository.unscoped(session)
    row = await repo.by_hash(token_hash(token))
    now = utcnow()
    if row is None:
        raise Unauthorized("Invalid refresh token", code="INVALID_TOKEN")
    if row.used_at is not None or row.revoked_at is not None:
        if row.used_at is not None:
            family, org, user_id = row.family_id, row.organization_id, row.user_id

            async def revoke_family() -> None:
                async with core.db.session() as own:
                    await RefreshTokenRepository.unscoped(own).revoke_family(family)
                    await record(
                        own,
                        "auth.refresh_reuse",
                        org_id=org,
                        actor_id=user_id,
                        outcome="failure",
                        client=client,
                        family=family,
                    )

            # The request fails (401) and rolls back; the revocation must stand regardless.
            after_transaction(session, revoke_family)
        raise Unauthorized("Refresh token already used or revoked", code="INVALID_TOKEN")
    if row.expires_at <= now:
        raise Unauthorized("Refresh token expired", code="TOKEN_EXPIRED")
    if not await repo.mark_used(row.id, now):
        raise Unauthorized("Refresh token already used or revoked", code="INVALID_TOKEN")
    user = await UserRepository.unscoped(session).find(User.id == row.user_id)
    membership = await MembershipRepository(session, row.organization_id).of_user(row.user_id)
    if user is None or not user.is_active or membership is None:
        raise Unauthorized("Account no longer has access", code="INVALID_TOKEN")
    return await issue_tokens(
        core, session, user, membership, family_id=row.family_id, method=row.method
    )


async def switch_organization(
    core: CoreContext, session: AsyncSession, principal: Principal, org_id: str, client: ClientInfo
) -> TokenPair:
    """New tokens for the same user in another of their organizations."""
    if principal.kind != "user":
        raise Forbidden("Only users can switch organizations")
    if "key" in principal.amr:
        raise Forbidden("An API key acts in its own organization only", code="KEY_BOUND")
    if "sso" in principal.amr:
        # An organization's identity provider vouches for the user in that organization
        # only: otherwise whoever runs it could walk into every other organization of theirs.
        raise Forbidden(
            "Signed in through this organization's single sign-on; sign in again to use "
            "another organization",
            code="SSO_SESSION_BOUND",
        )
    user = await UserRepository.unscoped(session).get(principal.subject)
    membership = await MembershipRepository(session, org_id).of_user(user.id)
    if membership is None:
        raise Forbidden("You are not a member of that organization")
    user.default_organization_id = org_id
    pair = await issue_tokens(core, session, user, membership)
    await record(
        session, "auth.switch_organization", org_id=org_id, actor_id=user.id, client=client
    )
    return pair


async def logout(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    refresh_token: str | None,
    client: ClientInfo,
) -> None:
    """Revoke the access token and, if given, the refresh token's family."""
    revocations = RevokedTokenRepository.unscoped(session)
    if (
        principal.token_id
        and principal.expires_at
        and not await revocations.is_revoked(principal.token_id)
    ):
        session.add(RevokedToken(jti=principal.token_id, expires_at=principal.expires_at))
    if refresh_token:
        row = await RefreshTokenRepository.unscoped(session).by_hash(token_hash(refresh_token))
        if row is not None and row.user_id == principal.subject:
            await RefreshTokenRepository.unscoped(session).revoke_family(row.family_id)
    await record(
        session, "auth.logout", org_id=principal.org, actor_id=principal.subject, client=client
    )


async def change_password(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    current: str,
    new: str,
    client: ClientInfo,
) -> None:
    """Change one's password; every refresh token of the user is revoked."""
    if principal.kind != "user":
        raise Forbidden("Service accounts have no password")
    user = await UserRepository.unscoped(session).get(principal.subject)
    if not await core.passwords.verify(user.password_hash, current):
        record_after(
            session,
            core.db,
            "auth.password_change",
            org_id=principal.org,
            actor_id=user.id,
            outcome="failure",
            client=client,
        )
        raise Invalid(
            "Current password is wrong",
            details=[{"field": "current_password", "message": "does not match"}],
        )
    check_password_policy(core, new, email=user.email)
    await set_password(core, session, user, new)
    await record(
        session, "auth.password_change", org_id=principal.org, actor_id=user.id, client=client
    )


async def set_password(core: CoreContext, session: AsyncSession, user: User, password: str) -> None:
    """Store a new password hash and end every session of the user."""
    user.password_hash = await core.passwords.hash(password)
    user.password_changed_at = utcnow()
    await RefreshTokenRepository.unscoped(session).revoke_user(user.id)


async def request_password_reset(
    core: CoreContext, session: AsyncSession, email: str, client: ClientInfo
) -> None:
    """Mail a reset link if the account exists; the answer is the same either way."""
    await throttle_login(core, email, client)
    user = await UserRepository.unscoped(session).by_email(email)
    if user is None or not user.is_active:
        return
    token = new_secret_token()
    now = utcnow()
    await PasswordResetRepository.unscoped(session).invalidate_user(user.id, now)
    session.add(
        PasswordReset(
            id=new_id("pwr"),
            user_id=user.id,
            token_hash=token_hash(token),
            expires_at=now + timedelta(seconds=core.settings.password_reset_ttl_seconds),
        )
    )
    await core.mailer.send(
        user.email,
        "Reset your Inwire password",
        f"Someone asked to reset the password of {user.email}.\n\n"
        f"Reset token: {token}\n\nPOST {core.settings.public_url}/api/v1/auth/password/reset "
        'with {"token": ..., "new_password": ...}. It expires in '
        f"{core.settings.password_reset_ttl_seconds // 60} minutes. "
        "If it was not you, ignore this message.\n",
    )
    await record(session, "auth.password_reset_requested", actor_id=user.id, client=client)


async def reset_password(
    core: CoreContext, session: AsyncSession, token: str, new: str, client: ClientInfo
) -> None:
    """Set a new password with a single-use reset token."""
    repo = PasswordResetRepository.unscoped(session)
    row = await repo.by_hash(token_hash(token))
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Invalid(
            "Reset token is invalid or expired",
            details=[{"field": "token", "message": "invalid or expired"}],
        )
    user = await UserRepository.unscoped(session).get(row.user_id)
    check_password_policy(core, new, email=user.email)
    row.used_at = now
    await set_password(core, session, user, new)
    await record(session, "auth.password_reset", actor_id=user.id, client=client)


async def principal_from_api_key(core: CoreContext, session: AsyncSession, key: str) -> Principal:
    """The principal an API key stands for; 401 if unknown, revoked, expired or malformed."""
    if not api_key_well_formed(key):
        raise Unauthorized("Malformed API key", code="INVALID_API_KEY")
    row = await ApiKeyRepository.unscoped(session).by_hash(token_hash(key))
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        raise Unauthorized("Invalid, revoked or expired API key", code="INVALID_API_KEY")
    subject, kind, name, role = await _key_owner(session, row)
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        if writing():
            row.last_used_at = now  # commits with the request
        else:
            await _touch_key(core, row.id, now)
    return Principal(
        subject=subject,
        org=row.organization_id,
        roles=(role,),
        kind="service" if kind == "service" else "user",
        token_id=row.id,
        name=name,
        amr=("key",),
    )


async def _touch_key(core: CoreContext, key_id: str, now: datetime) -> None:
    """Record a key's last use, at most once a minute, in a short write of its own.

    Used when the request's own transaction is read-only; the record is best effort, so a
    busy database never fails the request it accompanies.
    """
    try:
        async with core.db.session() as own:
            key = await own.get(ApiKey, key_id)
            if key is not None:
                key.last_used_at = now
    except OperationalError:
        log.warning("could not record last use of API key %s", key_id)


async def _key_owner(session: AsyncSession, row: ApiKey) -> tuple[str, str, str, str]:
    """(subject, kind, name, effective role) of a key's owner."""
    if row.service_account_id:
        account = await session.get(ServiceAccount, row.service_account_id)
        if account is None or not account.is_active:
            raise Unauthorized("Service account disabled", code="INVALID_API_KEY")
        role = row.role if role_at_least(account.role, row.role) else account.role
        return account.id, "service", account.name, role
    user = await session.get(User, row.user_id) if row.user_id else None
    if user is None or not user.is_active:
        raise Unauthorized("Key owner disabled", code="INVALID_API_KEY")
    membership = await MembershipRepository(session, row.organization_id).of_user(user.id)
    if membership is None:
        raise Unauthorized("Key owner left the organization", code="INVALID_API_KEY")
    # A key never outranks its owner: a demotion applies to the owner's keys at once.
    role = row.role if role_at_least(membership.role, row.role) else membership.role
    return user.id, "user", user.email, role


async def exchange_api_key(core: CoreContext, session: AsyncSession, key: str) -> TokenPair:
    """A short-lived access token for an API key (used by the gateway and SDK)."""
    principal = await principal_from_api_key(core, session, key)
    access = await sign_access_token(
        core,
        subject=principal.subject,
        org=principal.org,
        roles=list(principal.roles),
        kind=principal.kind,
        name=principal.name,
        amr=list(principal.amr),
    )
    return TokenPair(
        access_token=access,
        expires_in=core.settings.access_token_ttl_seconds,
        organization_id=principal.org,
        role=principal.role,
    )


async def authenticate(
    core: CoreContext, verifier: TokenVerifier, token: str, session: AsyncSession
) -> Principal:
    """Core's own check of a bearer credential: API key, or JWT plus revocation and membership.

    Other services trust a JWT until it expires (at most 15 minutes); Core, which holds the
    truth, applies logout, removal and role changes at once. Reads go through the request's
    session, so the handler finds the user and membership already loaded.
    """
    if token.startswith(API_KEY_PREFIX):
        return await principal_from_api_key(core, session, token)
    principal = await verifier.verify(token)
    if principal.kind == "service":
        if await RevokedTokenRepository.unscoped(session).is_revoked(principal.token_id):
            raise Unauthorized("Token revoked", code="TOKEN_REVOKED")
        account = await session.get(ServiceAccount, principal.subject)
        if account is None or not account.is_active or account.organization_id != principal.org:
            raise Unauthorized("Service account disabled")
        return principal
    facts = await SessionFactsRepository.unscoped(session).facts(
        principal.subject, principal.org, principal.token_id
    )
    if facts is not None and facts[2]:
        raise Unauthorized("Token revoked", code="TOKEN_REVOKED")
    if facts is None or not facts[0].is_active or facts[1] is None:
        raise Unauthorized("Account no longer has access to this organization")
    member_role = facts[1]
    # The identity map holds rows weakly: keep the user alive so the handler's read is free.
    session.info["inwire_caller"] = facts[0]
    # A session acts with the member's current role, so promotions and demotions apply at
    # once. A token exchanged from an API key keeps the key's role: the membership may lower
    # it, never raise it (a viewer key stays a viewer's).
    role = member_role
    if "key" in principal.amr and role_at_least(member_role, principal.role):
        role = principal.role
    if principal.roles != (role,):
        principal = replace(principal, roles=(role,))
    return principal


async def acting_principal(session: AsyncSession, org_id: str, subject: str) -> Principal:
    """The principal a platform service's background work acts for: a user with their
    current role in ``org_id``, or an active service account of it.

    Work queued by someone (a Synthex import) runs after their access token may have
    expired; checking the membership when the work runs means a person removed or an
    account disabled in between no longer gets anything done in their name.
    """
    account = await session.get(ServiceAccount, subject)
    if account is not None:
        if not account.is_active or account.organization_id != org_id:
            raise Forbidden("The service account is disabled or not in this organization")
        return Principal(
            subject=account.id, org=org_id, roles=(account.role,), kind="service", name=account.name
        )
    user = await session.get(User, subject)
    membership = None
    if user is not None and user.is_active:
        membership = await MembershipRepository(session, org_id).of_user(user.id)
    if user is None or membership is None:
        raise Forbidden("The user is no longer active in this organization")
    return Principal(subject=user.id, org=org_id, roles=(membership.role,), name=user.email)
