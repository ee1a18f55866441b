"""Queries on teams and team members."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.core.teams.models import Team, TeamMember
from inwire.services.core.users.models import User


class TeamRepository(RepositoryBase[Team]):
    """Teams of the caller's organization."""

    model = Team
    noun = "Team"

    async def by_name(self, name: str) -> Team | None:
        """The team with this name, compared case-insensitively."""
        return await self.find(func.lower(Team.name) == name.lower())

    async def page_teams(
        self, query: ListQuery, *, user_id: str | None = None
    ) -> tuple[Sequence[Team], int]:
        """A page of teams; with ``user_id``, only the teams that user belongs to."""
        stmt = self.select()
        if user_id is not None:
            stmt = stmt.where(
                Team.id.in_(
                    select(TeamMember.team_id).where(
                        TeamMember.user_id == user_id,
                        TeamMember.organization_id == Team.organization_id,
                    )
                )
            )
        return await self.page(query, stmt)


class TeamMemberRepository(RepositoryBase[TeamMember]):
    """Team memberships in the caller's organization."""

    model = TeamMember
    noun = "Team member"

    async def of(self, team_id: str, user_id: str) -> TeamMember | None:
        """The user's membership of the team, if any."""
        return await self.find(TeamMember.team_id == team_id, TeamMember.user_id == user_id)

    async def page_of_team(
        self, query: ListQuery, team_id: str
    ) -> tuple[Sequence[TeamMember], int]:
        """A page of one team's members."""
        return await self.page(query, self.select(TeamMember.team_id == team_id))

    async def remove_team(self, team_id: str) -> int:
        """Drop every membership of a team."""
        return await self.delete_where(TeamMember.team_id == team_id)

    async def users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users behind a page of memberships, by id."""
        if not user_ids:
            return {}
        rows = await self.session.execute(select(User).where(User.id.in_(set(user_ids))))
        return {u.id: u for u in rows.scalars()}
