"""Queries on organizations, memberships and invitations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

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

    async def by_slug(self, slug: str) -> Organization | None:
        """The organization with this slug."""
        return await self.find(Organization.slug == slug)


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
        return rows.scalars().all()

    async def count_role(self, role: str) -> int:
        """How many members hold ``role``."""
        return await self.count(self.select(Membership.role == role))


class InvitationRepository(RepositoryBase[Invitation]):
    """Invitations of the caller's organization."""

    model = Invitation
    noun = "Invitation"
