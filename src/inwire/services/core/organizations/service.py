"""Organizations (create, read, rename, delete) and invitations to join one."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import utcnow
from inwire.kit.errors import Conflict, Forbidden, Gone, Invalid, NotFound, Unauthorized
from inwire.kit.ids import new_id
from inwire.services.core.audit.service import ClientInfo, record, record_after, record_by
from inwire.services.core.auth.schemas import TokenPair
from inwire.services.core.auth.service import (
    INVALID_LOGIN,
    check_password_policy,
    issue_tokens,
    throttle_login,
)
from inwire.services.core.context import CoreContext
from inwire.services.core.organizations.models import Invitation, Membership, Organization
from inwire.services.core.organizations.repository import (
    InvitationRepository,
    MembershipRepository,
    OrganizationRepository,
    invitation_status_of,
)
from inwire.services.core.organizations.schemas import (
    SLUG_MAX,
    InvitationAcceptIn,
    InvitationCreated,
    InvitationIn,
    InvitationOut,
    InvitationStatus,
    OrganizationIn,
    OrganizationOut,
    OrganizationPatch,
)
from inwire.services.core.security import new_secret_token, token_hash
from inwire.services.core.users.models import User
from inwire.services.core.users.repository import UserRepository
from inwire.services.core.users.service import check_can_grant, join

log = logging.getLogger("inwire.core.organizations")


# -- organizations ----------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A slug from a name: ASCII-folded, lower-case, words joined by hyphens ("org" if empty)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "org"


async def _free_slug(repo: OrganizationRepository, base: str) -> str:
    """``base``, else ``base-2`` … ``base-5``, else ``base-<random>``."""
    for n in range(1, 6):
        suffix = "" if n == 1 else f"-{n}"
        candidate = base[: SLUG_MAX - len(suffix)].strip("-") + suffix
        if not await repo.slug_taken(candidate):
            return candidate
    suffix = f"-{secrets.token_hex(3)}"
    return base[: SLUG_MAX - len(suffix)].strip("-") + suffix


def _slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"The slug {slug!r} is taken",
        code="SLUG_TAKEN",
        details=[{"field": "slug", "message": "already used by another organization"}],
    )


def organization_out(org: Organization, role: str) -> OrganizationOut:
    """The wire view of an organization for a caller holding ``role`` in it."""
    return OrganizationOut(
        id=org.id,
        name=org.name,
        slug=org.slug,
        role=role,
        created_at=org.created_at,
        updated_at=org.updated_at,
    )


async def _audit_org(
    session: AsyncSession,
    principal: Principal,
    client: ClientInfo,
    action: str,
    org_id: str,
    **details: Any,
) -> None:
    await record(
        session,
        action,
        org_id=org_id,
        actor_id=principal.subject,
        actor_kind=principal.kind,
        target_type="organization",
        target_id=org_id,
        client=client,
        **details,
    )


async def list_organizations(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[list[OrganizationOut], int]:
    """The caller's organizations: every one a user belongs to; a service account's own."""
    repo = OrganizationRepository.unscoped(session)
    if principal.kind == "user":
        rows, total = await repo.page_for_user(principal.subject, query)
    else:
        matches = query.filters.get("role", principal.role) == principal.role
        total = int(matches)
        rows = (
            [(await repo.get(principal.org), principal.role)] if matches and query.page == 1 else []
        )
    return [organization_out(org, role) for org, role in rows], total


async def _role_in(session: AsyncSession, principal: Principal, org_id: str) -> str | None:
    if principal.kind == "user":
        membership = await MembershipRepository(session, org_id).of_user(principal.subject)
        return membership.role if membership else None
    return principal.role if org_id == principal.org else None


async def get_organization(
    session: AsyncSession, principal: Principal, org_id: str
) -> OrganizationOut:
    """An organization the caller belongs to; 404 for any other."""
    role = await _role_in(session, principal, org_id)
    if role is None:
        raise NotFound(f"Organization {org_id!r} not found")
    return organization_out(await OrganizationRepository.unscoped(session).get(org_id), role)


async def create_organization(
    session: AsyncSession, principal: Principal, body: OrganizationIn, client: ClientInfo
) -> OrganizationOut:
    """A new organization owned by the calling user."""
    if principal.kind != "user":
        raise Forbidden("Only users can create organizations")
    repo = OrganizationRepository.unscoped(session)
    if body.slug is not None:
        if await repo.slug_taken(body.slug):
            raise _slug_taken(body.slug)
        slug = body.slug
    else:
        slug = await _free_slug(repo, slugify(body.name))
    org = await repo.add(Organization(id=new_id("org"), name=body.name, slug=slug))
    await MembershipRepository(session, org.id).add(
        Membership(id=new_id("mem"), user_id=principal.subject, role="owner")
    )
    await _audit_org(session, principal, client, "organizations.created", org.id, slug=slug)
    return organization_out(org, "owner")


async def _current(session: AsyncSession, principal: Principal, org_id: str) -> Organization:
    # Changes apply to the organization the token acts in only; another id, even one the
    # caller belongs to, is not found here (switch organization first).
    if org_id != principal.org:
        raise NotFound(f"Organization {org_id!r} not found")
    return await OrganizationRepository.unscoped(session).get(org_id)


async def update_organization(
    session: AsyncSession,
    principal: Principal,
    org_id: str,
    patch: OrganizationPatch,
    client: ClientInfo,
) -> OrganizationOut:
    """Rename the caller's current organization or change its slug."""
    repo = OrganizationRepository.unscoped(session)
    org = await _current(session, principal, org_id)
    changes = {k: v for k, v in patch.changes().items() if getattr(org, k) != v}
    if "slug" in changes and await repo.slug_taken(changes["slug"]):
        raise _slug_taken(changes["slug"])
    if changes:
        for field, value in changes.items():
            setattr(org, field, value)
        await repo.flush()
        await _audit_org(session, principal, client, "organizations.updated", org.id, **changes)
    return organization_out(org, principal.role)


async def delete_organization(
    session: AsyncSession, principal: Principal, org_id: str, client: ClientInfo
) -> None:
    """Delete the caller's current organization and, by cascade, everything it owns.

    Accounts stay (they may belong elsewhere); the audit log keeps the organization's
    events for platform operators.
    """
    org = await _current(session, principal, org_id)
    await OrganizationRepository.unscoped(session).remove(org)
    await _audit_org(
        session, principal, client, "organizations.deleted", org_id, name=org.name, slug=org.slug
    )


# -- invitations ------------------------------------------------------------------------------

_GONE = {
    "accepted": ("This invitation was already used", "INVITATION_USED"),
    "revoked": ("This invitation was revoked", "INVITATION_REVOKED"),
    "expired": ("This invitation has expired; ask for a new one", "INVITATION_EXPIRED"),
}


def _gone(status: str) -> Gone:
    message, code = _GONE[status]
    return Gone(message, code=code)


def invitation_out(invitation: Invitation, now: datetime) -> InvitationOut:
    """The wire view of an invitation (never its token)."""
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=cast("InvitationStatus", invitation_status_of(invitation, now)),
        invited_by=invitation.invited_by,
        expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at,
        revoked_at=invitation.revoked_at,
        created_at=invitation.created_at,
    )


async def list_invitations(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[list[InvitationOut], int]:
    """One page of the organization's invitations."""
    now = utcnow()
    rows, total = await InvitationRepository(session, principal.org).page_at(query, now)
    return [invitation_out(row, now) for row in rows], total


async def create_invitation(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    body: InvitationIn,
    client: ClientInfo,
) -> InvitationCreated:
    """Invite an address; the token is mailed, and returned this once to the inviter."""
    check_can_grant(principal, body.role)
    user = await UserRepository.unscoped(session).by_email(body.email)
    if user is not None and await MembershipRepository(session, principal.org).of_user(user.id):
        raise Conflict(f"{body.email} is already a member", code="ALREADY_MEMBER")
    repo = InvitationRepository(session, principal.org)
    now = utcnow()
    # One live invitation per address: a new one (a "resend") replaces the old token.
    await repo.revoke_pending_for(body.email, now)
    token = new_secret_token()
    invitation = await repo.add(
        Invitation(
            id=new_id("inv"),
            email=body.email,
            role=body.role,
            token_hash=token_hash(token),
            invited_by=principal.subject,
            expires_at=now + timedelta(seconds=core.settings.invitation_ttl_seconds),
        )
    )
    org = await OrganizationRepository.unscoped(session).get(principal.org)
    mail_sent = await _mail_invitation(core, org, principal, invitation, token)
    await record_by(
        session,
        principal,
        "invitations.created",
        target_type="invitation",
        target_id=invitation.id,
        client=client,
        email=body.email,
        role=body.role,
        mail_sent=mail_sent,
    )
    return InvitationCreated(
        **invitation_out(invitation, now).model_dump(), token=token, mail_sent=mail_sent
    )


async def _mail_invitation(
    core: CoreContext, org: Organization, principal: Principal, invitation: Invitation, token: str
) -> bool:
    """Send the invitation; a mail failure is reported, not fatal (the inviter has the token)."""
    days = max(1, core.settings.invitation_ttl_seconds // 86400)
    try:
        await core.mailer.send(
            invitation.email,
            f"You are invited to join {org.name} on Inwire",
            f"{principal.name or 'An administrator'} invited {invitation.email} to join the "
            f"organization {org.name} on Inwire as {invitation.role}.\n\n"
            f"Invitation token: {token}\n\n"
            f"POST {core.settings.public_url}/api/v1/invitations/accept with "
            '{"token": ..., "name": ..., "password": ...} to create your account, or with '
            '{"token": ...} while signed in if you already have one. '
            f"It expires in {days} day{'s' if days != 1 else ''}. "
            "If you did not expect it, ignore this message.\n",
        )
    except OSError:  # smtplib.SMTPException is an OSError
        log.warning("invitation mail to %s failed", invitation.email, exc_info=True)
        return False
    return True


async def revoke_invitation(
    session: AsyncSession, principal: Principal, invitation_id: str, client: ClientInfo
) -> None:
    """Revoke an invitation so its token no longer works (revoking twice is harmless)."""
    invitation = await InvitationRepository(session, principal.org).get(invitation_id)
    if invitation.accepted_at is not None:
        raise Conflict(
            "This invitation was already accepted; remove the member instead",
            code="INVITATION_USED",
        )
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        await record_by(
            session,
            principal,
            "invitations.revoked",
            target_type="invitation",
            target_id=invitation.id,
            client=client,
            email=invitation.email,
        )


async def accept_invitation(
    core: CoreContext,
    session: AsyncSession,
    body: InvitationAcceptIn,
    principal: Principal | None,
    client: ClientInfo,
) -> TokenPair:
    """Join with an invitation token, creating the account if needed; signs the member in."""
    invitations = InvitationRepository.unscoped(session)
    invitation = await invitations.by_hash(token_hash(body.token))
    now = utcnow()
    if invitation is None:
        raise Invalid(
            "Invitation token is invalid",
            code="INVALID_INVITATION",
            details=[{"field": "token", "message": "unknown token"}],
        )
    status = invitation_status_of(invitation, now)
    if status != "pending":
        raise _gone(status)
    users = UserRepository.unscoped(session)
    user = await users.by_email(invitation.email)
    created = user is None
    if user is None:
        user = await users.add(await _new_account(core, invitation, body))
    else:
        await _prove_account(core, session, user, invitation, body, principal, client)
    if not await invitations.mark_accepted(invitation.id, now):
        raise _gone("accepted")
    membership = await join(session, invitation.organization_id, user, invitation.role)
    user.last_login_at = now
    pair = await issue_tokens(core, session, user, membership)
    await record(
        session,
        "invitations.accepted",
        org_id=invitation.organization_id,
        actor_id=user.id,
        target_type="invitation",
        target_id=invitation.id,
        client=client,
        role=invitation.role,
        created_account=created,
    )
    return pair


async def _new_account(core: CoreContext, invitation: Invitation, body: InvitationAcceptIn) -> User:
    missing = [f for f in ("name", "password") if getattr(body, f) is None]
    if missing:
        raise Invalid(
            "There is no account for this address yet: give a name and a password to create it",
            details=[{"field": f, "message": "required to create the account"} for f in missing],
        )
    assert body.password is not None
    check_password_policy(core, body.password, email=invitation.email)
    return User(
        id=new_id("usr"),
        email=invitation.email,
        name=body.name or "",
        password_hash=await core.passwords.hash(body.password),
        password_changed_at=utcnow(),
        default_organization_id=invitation.organization_id,
    )


async def _prove_account(
    core: CoreContext,
    session: AsyncSession,
    user: User,
    invitation: Invitation,
    body: InvitationAcceptIn,
    principal: Principal | None,
    client: ClientInfo,
) -> None:
    """An existing account joins only when the caller shows it is theirs."""
    if principal is not None:
        if principal.kind == "user" and principal.subject == user.id:
            return
        raise Forbidden(
            "This invitation is for another e-mail address", code="INVITATION_EMAIL_MISMATCH"
        )
    if body.password is None:
        raise Unauthorized(
            "An account exists for this address: sign in as it, or give its password",
            code="AUTHENTICATION_REQUIRED",
        )
    # The password path serves people who cannot sign in anywhere (they belong to no
    # organization yet), so it is throttled like login (OWASP ASVS 2.2.1).
    await throttle_login(core, invitation.email, client)
    if not (user.is_active and await core.passwords.verify(user.password_hash, body.password)):
        record_after(
            session,
            core.db,
            "invitations.accepted",
            org_id=invitation.organization_id,
            actor_id=user.id,
            target_type="invitation",
            target_id=invitation.id,
            outcome="failure",
            client=client,
        )
        raise Unauthorized(INVALID_LOGIN, code="INVALID_CREDENTIALS")
