"""Members of an organization: adding people, roles, deactivation and removal.

Rules: only an owner grants owner or changes an owner's membership; an organization keeps
at least one active owner; names are platform-wide, so only the person changes their own;
an organization never locks a person out of their other organizations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal, ensure
from inwire.kit.errors import Conflict, Forbidden, NotFound
from inwire.kit.ids import new_id
from inwire.services.core.audit.service import ClientInfo, record_by
from inwire.services.core.auth.repository import RefreshTokenRepository
from inwire.services.core.auth.service import check_password_policy
from inwire.services.core.context import CoreContext
from inwire.services.core.organizations.models import Membership
from inwire.services.core.organizations.repository import MembershipRepository
from inwire.services.core.users.models import User
from inwire.services.core.users.repository import MemberRepository, UserRepository
from inwire.services.core.users.schemas import MemberIn, MemberOut, MemberPatch


def check_can_grant(principal: Principal, role: str) -> None:
    """Only an owner may make someone an owner."""
    if role == "owner" and principal.role != "owner":
        raise Forbidden(
            "Only an owner can grant the owner role",
            details=[{"field": "role", "message": "owner can only be granted by an owner"}],
        )


async def join(session: AsyncSession, org_id: str, user: User, role: str) -> Membership:
    """Make ``user`` a member of the organization with ``role``; 409 if already one."""
    repo = MembershipRepository(session, org_id)
    if await repo.of_user(user.id) is not None:
        raise Conflict(f"{user.email} is already a member", code="ALREADY_MEMBER")
    return await repo.add(Membership(id=new_id("mem"), user_id=user.id, role=role))


def member_out(membership: Membership, user: User, *, is_active: bool | None = None) -> MemberOut:
    """The wire view of a member."""
    return MemberOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        is_active=user.is_active if is_active is None else is_active,
        joined_at=membership.created_at,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


async def _audit(
    session: AsyncSession,
    principal: Principal,
    client: ClientInfo,
    action: str,
    user_id: str,
    **details: Any,
) -> None:
    await record_by(
        session,
        principal,
        action,
        target_type="user",
        target_id=user_id,
        client=client,
        **details,
    )


async def _member(repo: MemberRepository, user_id: str) -> tuple[Membership, User]:
    found = await repo.member(user_id)
    if found is None:
        raise NotFound(f"User {user_id!r} not found")
    return found


async def list_members(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[list[MemberOut], int]:
    """One page of the organization's members."""
    rows, total = await MemberRepository(session, principal.org).page_members(query)
    return [member_out(m, u) for m, u in rows], total


async def get_member(session: AsyncSession, principal: Principal, user_id: str) -> MemberOut:
    """One member of the caller's organization; 404 for anyone else."""
    return member_out(*await _member(MemberRepository(session, principal.org), user_id))


async def add_member(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    body: MemberIn,
    client: ClientInfo,
) -> MemberOut:
    """Add an existing account by e-mail, or create the account, with a role here."""
    check_can_grant(principal, body.role)
    users = UserRepository.unscoped(session)
    user = await users.by_email(body.email)
    created = user is None
    if user is None:
        password_hash = None
        if body.password is not None:
            check_password_policy(core, body.password, email=body.email)
            password_hash = await core.passwords.hash(body.password)
        user = await users.add(
            User(
                id=new_id("usr"),
                email=body.email,
                name=body.name or "",
                password_hash=password_hash,
                default_organization_id=principal.org,
            )
        )
    else:
        if body.password is not None:
            raise Conflict(
                "An account with this e-mail already exists; leave out the password to add it",
                code="ACCOUNT_EXISTS",
                details=[{"field": "password", "message": "not allowed for an existing account"}],
            )
        if not user.is_active:
            raise Conflict("This account is deactivated", code="ACCOUNT_DEACTIVATED")
    membership = await join(session, principal.org, user, body.role)
    await _audit(
        session,
        principal,
        client,
        "members.added",
        user.id,
        role=body.role,
        created_account=created,
    )
    return member_out(membership, user)


async def update_member(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    user_id: str,
    patch: MemberPatch,
    client: ClientInfo,
) -> MemberOut:
    """Rename oneself, change a role, or deactivate/reactivate a member (see MemberPatch)."""
    repo = MemberRepository(session, principal.org)
    membership, user = await _member(repo, user_id)
    changes = patch.changes()
    is_self = principal.kind == "user" and principal.subject == user.id
    new_name = changes.get("name", user.name)
    new_role = changes.get("role", membership.role)
    active = changes.get("is_active", user.is_active)
    if new_name != user.name and not is_self:
        raise Forbidden(
            "Only the user can change their own name",
            details=[{"field": "name", "message": "names are changed by their owner"}],
        )
    if new_role != membership.role or active != user.is_active:
        ensure(principal, "members:update")
        if "owner" in (membership.role, new_role) and principal.role != "owner":
            raise Forbidden("Only an owner can grant owner or change an owner's membership")
        if active != user.is_active and is_self:
            raise Conflict("You cannot deactivate yourself", code="SELF_DEACTIVATION")
        if membership.role == "owner" and user.is_active and (new_role != "owner" or not active):
            await _keep_an_owner(repo)

    user.name = new_name
    if new_role != membership.role:
        old, membership.role = membership.role, new_role
        await _audit(
            session, principal, client, "members.role_changed", user.id, old=old, new=new_role
        )
    if active != user.is_active:
        elsewhere = await MembershipRepository.unscoped(session).count_of_user(user.id) > 1
        if elsewhere and not active:
            # Another tenant's admin must never lock a person out of their other
            # organizations: here deactivation means losing access to this one.
            await _remove(session, repo, principal, membership, user, client, "deactivated")
            return member_out(membership, user, is_active=False)
        if elsewhere:
            raise Conflict(
                "This account belongs to other organizations too; only a platform operator "
                "can reactivate it",
                code="ACCOUNT_SHARED",
            )
        user.is_active = active
        if not active:
            await RefreshTokenRepository.unscoped(session).revoke_user(user.id)
        action = "users.reactivated" if active else "users.deactivated"
        await _audit(session, principal, client, action, user.id)
    await repo.flush()
    return member_out(membership, user)


async def remove_member(
    session: AsyncSession, principal: Principal, user_id: str, client: ClientInfo
) -> None:
    """Remove a member (members:delete), or leave the organization oneself."""
    repo = MemberRepository(session, principal.org)
    membership, user = await _member(repo, user_id)
    if not (principal.kind == "user" and principal.subject == user.id):
        ensure(principal, "members:delete")
        if membership.role == "owner" and principal.role != "owner":
            raise Forbidden("Only an owner can remove an owner")
    if membership.role == "owner" and user.is_active:
        await _keep_an_owner(repo)
    await _remove(session, repo, principal, membership, user, client, "removed")


async def _keep_an_owner(repo: MemberRepository) -> None:
    if await repo.count_active_owners() <= 1:
        raise Conflict(
            "The organization must keep at least one active owner; make someone else owner first",
            code="LAST_OWNER",
        )


async def _remove(
    session: AsyncSession,
    repo: MemberRepository,
    principal: Principal,
    membership: Membership,
    user: User,
    client: ClientInfo,
    reason: str,
) -> None:
    """Delete the membership and everything that granted access through it."""
    await repo.remove(membership)
    # Nothing granted through the membership may outlive it, or re-adding the person
    # later would silently restore old team places and keys.
    await repo.remove_team_memberships(user.id)
    keys = await repo.revoke_api_keys(user.id)
    await RefreshTokenRepository.unscoped(session).revoke_user(user.id, principal.org)
    if user.default_organization_id == principal.org:
        user.default_organization_id = None
    await _audit(
        session,
        principal,
        client,
        "members.removed",
        user.id,
        role=membership.role,
        reason=reason,
        api_keys_revoked=keys,
    )
