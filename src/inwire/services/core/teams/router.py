"""HTTP endpoints of teams and their members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.services.core.context import ClientDep
from inwire.services.core.teams import service
from inwire.services.core.teams.schemas import (
    TeamIn,
    TeamMemberIn,
    TeamMemberOut,
    TeamMemberUpdate,
    TeamOut,
    TeamRole,
    TeamUpdate,
)

router = APIRouter(prefix="/teams", tags=["teams"])

_teams_query = list_params(
    ("name", "created_at"),
    default_sort="name",
    default_order="asc",
    filters={"name": str, "user_id": str},
)
_members_query = list_params(
    ("created_at", "role"), default_order="asc", filters={"role": TeamRole}
)


@router.get("", response_model=Page[TeamOut])
async def list_teams(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_teams_query)],
    principal: Annotated[Principal, require("teams:read")],
) -> dict[str, Any]:
    """Teams of your organization; filter by exact name or by a member's user id."""
    rows, total = await service.list_teams(session, principal, query)
    return query.page_of([TeamOut.model_validate(r) for r in rows], total)


@router.post("", response_model=Item[TeamOut], status_code=201)
async def create_team(
    body: TeamIn,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:create")],
) -> dict[str, Any]:
    """Create a team; you become its maintainer."""
    team = await service.create_team(session, principal, body, client)
    return {"data": TeamOut.model_validate(team)}


@router.get("/{team_id}", response_model=Item[TeamOut])
async def get_team(
    team_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require("teams:read")],
) -> dict[str, Any]:
    """One team of your organization."""
    return {"data": TeamOut.model_validate(await service.get_team(session, principal, team_id))}


@router.patch("/{team_id}", response_model=Item[TeamOut])
async def update_team(
    team_id: str,
    body: TeamUpdate,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:update")],
) -> dict[str, Any]:
    """Rename a team or change its description (organization admins and team maintainers)."""
    team = await service.update_team(session, principal, team_id, body, client)
    return {"data": TeamOut.model_validate(team)}


@router.delete("/{team_id}", status_code=204)
async def delete_team(
    team_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:delete")],
) -> Response:
    """Delete a team and its memberships (organization admins and team maintainers)."""
    await service.delete_team(session, principal, team_id, client)
    return Response(status_code=204)


@router.get("/{team_id}/members", response_model=Page[TeamMemberOut])
async def list_team_members(
    team_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_members_query)],
    principal: Annotated[Principal, require("teams:read")],
) -> dict[str, Any]:
    """Members of a team with their team role."""
    rows, total = await service.list_members(session, principal, team_id, query)
    return query.page_of(rows, total)


@router.post("/{team_id}/members", response_model=Item[TeamMemberOut], status_code=201)
async def add_team_member(
    team_id: str,
    body: TeamMemberIn,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:update")],
) -> dict[str, Any]:
    """Add a member of your organization to a team as maintainer or member."""
    return {"data": await service.add_member(session, principal, team_id, body, client)}


@router.patch("/{team_id}/members/{user_id}", response_model=Item[TeamMemberOut])
async def change_team_member_role(
    team_id: str,
    user_id: str,
    body: TeamMemberUpdate,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:update")],
) -> dict[str, Any]:
    """Change a team member's role."""
    member = await service.change_member_role(
        session, principal, team_id, user_id, body.role, client
    )
    return {"data": member}


@router.delete("/{team_id}/members/{user_id}", status_code=204)
async def remove_team_member(
    team_id: str,
    user_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("teams:read")],
) -> Response:
    """Remove someone from a team (admins and maintainers), or leave a team yourself."""
    await service.remove_member(session, principal, team_id, user_id, client)
    return Response(status_code=204)
