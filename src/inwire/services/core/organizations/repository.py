"""Queries on organizations, memberships and invitations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, select, update

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.core.organizations.models import Invitation, Membership, Organization


class OrganizationRepository(RepositoryBase[Organization]):
    """Organizations; which ones a caller may see is decided through memberships."""

    model = Organization
    noun = "Organization"

    async def for_user(self, user_id: str) -> Sequence[Organization]:
        """Organizations the user belongs to, oldest membership first."""
        rows = await self.session.execute(
            select(Organization)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.created_at)
        )
        return rows.scalars().all()

    async def with_roles_for_user(self, user_id: str) -> Sequence[tuple[Organization, str]]:
        """The user's organizations with the role held in each, oldest membership first."""
        rows = await self.session.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.created_at)
        )
        return [(org, role) for org, role in rows]

    async def page_for_user(
        self, user_id: str, query: ListQuery
    ) -> tuple[list[tuple[Organization, str]], int]:
        """One page of the user's organizations, each with the role held there.

        Sorts on the organization's own columns; ``role`` filters on the membership.
        """
        where: list[ColumnElement[bool]] = [Membership.user_id == user_id]
        if "role" in query.filters:
            where.append(Membership.role == query.filters["role"])
        joined = Membership.organization_id == Organization.id
        total = await self.session.scalar(
            select(func.count()).select_from(Organization).join(Membership, joined).where(*where)
        )
        column = getattr(Organization, query.sort, Organization.created_at)
        desc = query.order == "desc"
        rows = await self.session.execute(
            select(Organization, Membership.role)
            .join(Membership, joined)
            .where(*where)
            .order_by(
                column.desc() if desc else column.asc(),
                Organization.id.desc() if desc else Organization.id.asc(),
            )
            .offset(query.offset)
            .limit(query.per_page)
        )
        return [(org, role) for org, role in rows], int(total or 0)

    async def by_slug(self, slug: str) -> Organization | None:
        """The organization with this slug."""
        return await self.find(Organization.slug == slug)

    async def slug_taken(self, slug: str) -> bool:
        """Whether any organization uses ``slug``."""
        return await self.by_slug(slug) is not None


class MembershipRepository(RepositoryBase[Membership]):
    """Memberships of the caller's organization (``unscoped`` for a user's own list)."""

    model = Membership
    noun = "Member"

    async def of_user(self, user_id: str) -> Membership | None:
        """The user's membership in this organization (or in any, when unscoped)."""
        return await self.find(Membership.user_id == user_id)

    async def all_of_user(self, user_id: str) -> Sequence[Membership]:
        """Every membership of a user in scope, oldest first."""
        rows = await self.session.execute(
            self.select(Membership.user_id == user_id).order_by(Membership.created_at)
        )
        return cast("Sequence[Membership]", rows.scalars().all())

    async def count_of_user(self, user_id: str) -> int:
        """How many memberships the user has in scope (in all organizations when unscoped)."""
        return await self.count(self.select(Membership.user_id == user_id))

    async def count_role(self, role: str) -> int:
        """How many members hold ``role``."""
        return await self.count(self.select(Membership.role == role))


def invitation_status(status: str, now: datetime) -> ColumnElement[bool]:
    """SQL for one invitation status; the same rules as ``invitation_status_of``."""
    open_ = and_(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
    clauses: dict[str, ColumnElement[bool]] = {
        "accepted": Invitation.accepted_at.is_not(None),
        "revoked": and_(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_not(None)),
        "pending": and_(open_, Invitation.expires_at > now),
        "expired": and_(open_, Invitation.expires_at <= now),
    }
    return clauses[status]


def invitation_status_of(invitation: Invitation, now: datetime) -> str:
    """``accepted``, ``revoked``, ``expired`` or ``pending``: what the invitation is now."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= now else "pending"


class InvitationRepository(RepositoryBase[Invitation]):
    """Invitations of the caller's organization (``unscoped`` to look one up by token)."""

    model = Invitation
    noun = "Invitation"

    async def by_hash(self, digest: str) -> Invitation | None:
        """The invitation whose token has this hash."""
        return await self.find(Invitation.token_hash == digest)

    async def page_at(self, query: ListQuery, now: datetime) -> tuple[Sequence[Invitation], int]:
        """One page; ``status`` is derived from the timestamps, other filters are columns."""
        filters: dict[str, Any] = dict(query.filters)
        stmt = self.select()
        status = filters.pop("status", None)
        if status is not None:
            stmt = stmt.where(invitation_status(status, now))
        email = filters.pop("email", None)
        if email is not None:
            stmt = stmt.where(Invitation.email == email.strip().lower())
        return await self.page(
            ListQuery(
                page=query.page,
                per_page=query.per_page,
                sort=query.sort,
                order=query.order,
                filters=filters,
            ),
            stmt,
        )

    async def revoke_pending_for(self, email: str, now: datetime) -> int:
        """Revoke every open invitation of ``email`` in scope; returns how many."""
        stmt = update(Invitation).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        if self.org_id is not None:
            stmt = stmt.where(Invitation.organization_id == self.org_id)
        result = await self.session.execute(stmt.values(revoked_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    async def mark_accepted(self, invitation_id: str, now: datetime) -> bool:
        """Spend an invitation; False when another request spent or revoked it first."""
        result = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(accepted_at=now)
        )
        return bool(getattr(result, "rowcount", 0))
