"""Team rules: who may create, change and staff a team.

Any member of the organization who may create teams does so and becomes the new team's
maintainer. A team is changed, deleted and staffed by an organization admin or by one of
its maintainers; anyone may leave a team.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.auth.permissions import role_at_least
from inwire.kit.db import utcnow
from inwire.kit.errors import Conflict, Forbidden, Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.services.core.audit.service import ClientInfo, record_by
from inwire.services.core.organizations.repository import MembershipRepository
from inwire.services.core.teams.models import Team, TeamMember
from inwire.services.core.teams.repository import TeamMemberRepository, TeamRepository
from inwire.services.core.teams.schemas import (
    TeamIn,
    TeamMemberIn,
    TeamMemberOut,
    TeamUpdate,
)
from inwire.services.core.users.models import User

MAINTAINER = "maintainer"


async def list_teams(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[Sequence[Team], int]:
    """A page of the organization's teams (``user_id`` filter: teams of that user)."""
    return await TeamRepository(session, principal.org).page_teams(
        query, user_id=query.filters.get("user_id")
    )


async def get_team(session: AsyncSession, principal: Principal, team_id: str) -> Team:
    """One team of the caller's organization."""
    return await TeamRepository(session, principal.org).get(team_id)


async def create_team(
    session: AsyncSession, principal: Principal, body: TeamIn, client: ClientInfo
) -> Team:
    """Create a team; a user who creates one becomes its first maintainer."""
    teams = TeamRepository(session, principal.org)
    await _ensure_name_free(teams, body.name)
    team = await teams.add(Team(id=new_id("team"), name=body.name, description=body.description))
    if principal.kind == "user":
        await TeamMemberRepository(session, principal.org).add(
            TeamMember(
                id=new_id("tmm"), team_id=team.id, user_id=principal.subject, role=MAINTAINER
            )
        )
    await record_by(
        session,
        principal,
        "teams.created",
        target_type="team",
        target_id=team.id,
        client=client,
        name=team.name,
    )
    return team


async def update_team(
    session: AsyncSession,
    principal: Principal,
    team_id: str,
    body: TeamUpdate,
    client: ClientInfo,
) -> Team:
    """Rename or re-describe a team."""
    teams = TeamRepository(session, principal.org)
    team = await teams.get(team_id)
    await _ensure_manager(session, principal, team)
    changes = {
        field: value
        for field, value in body.model_dump(exclude_unset=True).items()
        if getattr(team, field) != value
    }
    if not changes:
        return team
    if "name" in changes and changes["name"].lower() != team.name.lower():
        await _ensure_name_free(teams, changes["name"])
    for field, value in changes.items():
        setattr(team, field, value)
    team.updated_at = utcnow()
    await teams.flush()
    await record_by(
        session,
        principal,
        "teams.updated",
        target_type="team",
        target_id=team.id,
        client=client,
        changes=sorted(changes),
    )
    return team


async def delete_team(
    session: AsyncSession, principal: Principal, team_id: str, client: ClientInfo
) -> None:
    """Delete a team and its memberships."""
    teams = TeamRepository(session, principal.org)
    team = await teams.get(team_id)
    await _ensure_manager(session, principal, team)
    await TeamMemberRepository(session, principal.org).remove_team(team.id)
    await teams.remove(team)
    await record_by(
        session,
        principal,
        "teams.deleted",
        target_type="team",
        target_id=team.id,
        client=client,
        name=team.name,
    )


async def list_members(
    session: AsyncSession, principal: Principal, team_id: str, query: ListQuery
) -> tuple[list[TeamMemberOut], int]:
    """A page of a team's members, with their e-mail and name."""
    await TeamRepository(session, principal.org).get(team_id)
    members = TeamMemberRepository(session, principal.org)
    rows, total = await members.page_of_team(query, team_id)
    users = await members.users([m.user_id for m in rows])
    return [_member_out(m, users.get(m.user_id)) for m in rows], total


async def add_member(
    session: AsyncSession,
    principal: Principal,
    team_id: str,
    body: TeamMemberIn,
    client: ClientInfo,
) -> TeamMemberOut:
    """Add a member of the organization to a team."""
    team = await TeamRepository(session, principal.org).get(team_id)
    await _ensure_manager(session, principal, team)
    if await MembershipRepository(session, principal.org).of_user(body.user_id) is None:
        # The same answer for an unknown user and a user of another organization.
        raise Invalid(
            "User is not a member of this organization",
            details=[{"field": "user_id", "message": "not a member of this organization"}],
        )
    members = TeamMemberRepository(session, principal.org)
    if await members.of(team.id, body.user_id) is not None:
        raise Conflict(
            "User is already a member of this team",
            details=[{"field": "user_id", "message": "already in the team"}],
        )
    member = await members.add(
        TeamMember(id=new_id("tmm"), team_id=team.id, user_id=body.user_id, role=body.role)
    )
    await record_by(
        session,
        principal,
        "teams.member_added",
        target_type="team",
        target_id=team.id,
        client=client,
        user_id=body.user_id,
        role=body.role,
    )
    return _member_out(member, (await members.users([member.user_id])).get(member.user_id))


async def change_member_role(
    session: AsyncSession,
    principal: Principal,
    team_id: str,
    user_id: str,
    role: str,
    client: ClientInfo,
) -> TeamMemberOut:
    """Make a team member a maintainer or a plain member."""
    team = await TeamRepository(session, principal.org).get(team_id)
    await _ensure_manager(session, principal, team)
    members = TeamMemberRepository(session, principal.org)
    member = await _member(members, team.id, user_id)
    previous = member.role
    if previous != role:
        member.role = role
        member.updated_at = utcnow()
        await members.flush()
        await record_by(
            session,
            principal,
            "teams.member_role_changed",
            target_type="team",
            target_id=team.id,
            client=client,
            user_id=user_id,
            previous_role=previous,
            role=role,
        )
    return _member_out(member, (await members.users([user_id])).get(user_id))


async def remove_member(
    session: AsyncSession,
    principal: Principal,
    team_id: str,
    user_id: str,
    client: ClientInfo,
) -> None:
    """Take a user out of a team; users may always remove themselves."""
    team = await TeamRepository(session, principal.org).get(team_id)
    leaving = principal.kind == "user" and principal.subject == user_id
    if not leaving:
        await _ensure_manager(session, principal, team)
    members = TeamMemberRepository(session, principal.org)
    member = await _member(members, team.id, user_id)
    await members.remove(member)
    await record_by(
        session,
        principal,
        "teams.member_removed",
        target_type="team",
        target_id=team.id,
        client=client,
        user_id=user_id,
        role=member.role,
    )


# -- rules ------------------------------------------------------------------------------------


async def _ensure_manager(session: AsyncSession, principal: Principal, team: Team) -> None:
    """Organization admins manage every team; maintainers who may edit teams manage theirs."""
    if role_at_least(principal.role, "admin"):
        return
    if principal.kind == "user" and principal.can("teams:update"):
        own = await TeamMemberRepository(session, principal.org).of(team.id, principal.subject)
        if own is not None and own.role == MAINTAINER:
            return
    raise Forbidden(
        "Only an organization admin or a maintainer of this team may change it",
        details=[{"message": "requires organization admin or team maintainer"}],
    )


async def _ensure_name_free(teams: TeamRepository, name: str) -> None:
    if await teams.by_name(name) is not None:
        raise Conflict(
            f"A team named {name!r} already exists",
            details=[{"field": "name", "message": "already taken"}],
        )


async def _member(members: TeamMemberRepository, team_id: str, user_id: str) -> TeamMember:
    member = await members.of(team_id, user_id)
    if member is None:
        raise NotFound(f"User {user_id!r} is not a member of this team")
    return member


def _member_out(member: TeamMember, user: User | None) -> TeamMemberOut:
    return TeamMemberOut(
        team_id=member.team_id,
        user_id=member.user_id,
        role=member.role,
        email=user.email if user else "",
        name=user.name if user else "",
        created_at=member.created_at,
        updated_at=member.updated_at,
    )
