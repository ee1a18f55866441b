"""HTTP endpoints of users: the members of the caller's organization."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, PrincipalDep, require
from inwire.kit.db import SessionDep
from inwire.services.core.context import ClientDep, CoreDep
from inwire.services.core.users import service
from inwire.services.core.users.repository import MEMBER_SORT
from inwire.services.core.users.schemas import MemberIn, MemberOut, MemberPatch, Role

router = APIRouter(prefix="/users", tags=["users"])

MemberList = Annotated[
    ListQuery,
    Depends(
        list_params(
            tuple(MEMBER_SORT),
            filters={"role": Role, "is_active": bool, "email": str},
        )
    ),
]


@router.get("", response_model=Page[MemberOut])
async def list_users(
    query: MemberList,
    session: SessionDep,
    principal: Annotated[Principal, require("users:read")],
) -> dict[str, Any]:
    """List the members of your organization; filter by role, is_active or email."""
    rows, total = await service.list_members(session, principal, query)
    return query.page_of(rows, total)


@router.post("", status_code=201, response_model=Item[MemberOut])
async def add_user(
    body: MemberIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("users:create")],
) -> dict[str, Any]:
    """Add a member: an existing account by e-mail, or a new account with a password."""
    return {"data": await service.add_member(core, session, principal, body, client)}


@router.get("/{user_id}", response_model=Item[MemberOut])
async def get_user(
    user_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require("users:read")],
) -> dict[str, Any]:
    """Get a member of your organization."""
    return {"data": await service.get_member(session, principal, user_id)}


@router.patch("/{user_id}", response_model=Item[MemberOut])
async def update_user(
    user_id: str,
    body: MemberPatch,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Rename yourself, or (admins) change a member's role or deactivate a member."""
    return {"data": await service.update_member(core, session, principal, user_id, body, client)}


@router.delete("/{user_id}", status_code=204)
async def remove_user(
    user_id: str, session: SessionDep, client: ClientDep, principal: PrincipalDep
) -> Response:
    """Remove a member from your organization (or leave it yourself); ends their sessions here."""
    await service.remove_member(session, principal, user_id, client)
    return Response(status_code=204)
