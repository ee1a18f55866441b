"""Queries on users, and on the members of an organization seen with their accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase, utcnow
from inwire.services.core.apikeys.models import ApiKey
from inwire.services.core.organizations.models import Membership
from inwire.services.core.organizations.repository import MembershipRepository
from inwire.services.core.teams.models import TeamMember
from inwire.services.core.users.models import User

#: Sort fields of the member list and the column each one orders by.
MEMBER_SORT: dict[str, Any] = {
    "created_at": User.created_at,
    "joined_at": Membership.created_at,
    "email": User.email,
    "name": User.name,
}


class UserRepository(RepositoryBase[User]):
    """Users are platform-wide; organization scoping goes through memberships."""

    model = User
    noun = "User"

    async def by_email(self, email: str) -> User | None:
        """The user with this address (case-insensitive), if any."""
        return await self.find(func.lower(User.email) == email.strip().lower())


class MemberRepository(MembershipRepository):
    """Members of one organization: each membership joined with its user account."""

    noun = "User"

    def _member_filters(self, filters: dict[str, Any]) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.org_id is not None:
            where.append(Membership.organization_id == self.org_id)
        if "role" in filters:
            where.append(Membership.role == filters["role"])
        if "is_active" in filters:
            where.append(User.is_active.is_(bool(filters["is_active"])))
        if "email" in filters:
            where.append(func.lower(User.email) == str(filters["email"]).strip().lower())
        return where

    async def page_members(self, query: ListQuery) -> tuple[list[tuple[Membership, User]], int]:
        """One page of members with their accounts, filtered and sorted."""
        where = self._member_filters(dict(query.filters))
        joined = User.id == Membership.user_id
        total = await self.session.scalar(
            select(func.count()).select_from(Membership).join(User, joined).where(*where)
        )
        column = MEMBER_SORT.get(query.sort, User.created_at)
        desc = query.order == "desc"
        rows = await self.session.execute(
            select(Membership, User)
            .join(User, joined)
            .where(*where)
            .order_by(
                column.desc() if desc else column.asc(),
                Membership.id.desc() if desc else Membership.id.asc(),
            )
            .offset(query.offset)
            .limit(query.per_page)
        )
        return [(m, u) for m, u in rows], int(total or 0)

    async def member(self, user_id: str) -> tuple[Membership, User] | None:
        """The user's membership here and their account, or None if not a member."""
        rows = await self.session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(*self._member_filters({}), Membership.user_id == user_id)
            .limit(1)
        )
        row = rows.first()
        return (row[0], row[1]) if row else None

    async def count_active_owners(self) -> int:
        """Owners here whose account is active: those who can still run the organization."""
        total = await self.session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User, User.id == Membership.user_id)
            .where(
                *self._member_filters({}),
                Membership.role == "owner",
                User.is_active.is_(True),
            )
        )
        return int(total or 0)

    async def remove_team_memberships(self, user_id: str) -> None:
        """Take the user out of every team of this organization."""
        stmt = delete(TeamMember).where(TeamMember.user_id == user_id)
        if self.org_id is not None:
            stmt = stmt.where(TeamMember.organization_id == self.org_id)
        await self.session.execute(stmt)

    async def revoke_api_keys(self, user_id: str) -> int:
        """Revoke the user's live API keys for this organization; returns how many."""
        stmt = update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        if self.org_id is not None:
            stmt = stmt.where(ApiKey.organization_id == self.org_id)
        result = await self.session.execute(stmt.values(revoked_at=utcnow()))
        return int(getattr(result, "rowcount", 0) or 0)
