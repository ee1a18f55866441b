"""HTTP endpoints of organizations and invitations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, PrincipalDep, get_principal, require
from inwire.kit.auth.deps import bearer_token
from inwire.kit.db import SessionDep
from inwire.services.core.auth.schemas import TokenPair
from inwire.services.core.context import ClientDep, CoreDep
from inwire.services.core.organizations import service
from inwire.services.core.organizations.schemas import (
    InvitationAcceptIn,
    InvitationCreated,
    InvitationIn,
    InvitationOut,
    InvitationStatus,
    OrganizationIn,
    OrganizationOut,
    OrganizationPatch,
)
from inwire.services.core.users.schemas import Role

router = APIRouter(prefix="/organizations", tags=["organizations"])
invitations_router = APIRouter(prefix="/invitations", tags=["invitations"])
routers = [router, invitations_router]

OrganizationList = Annotated[
    ListQuery,
    Depends(list_params(("created_at", "name", "slug"), filters={"role": Role})),
]
InvitationList = Annotated[
    ListQuery,
    Depends(
        list_params(
            ("created_at", "expires_at", "email"),
            filters={"status": InvitationStatus, "email": str, "role": Role},
        )
    ),
]


async def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller if the request carries a bearer credential (which must then be valid)."""
    if bearer_token(request) is None:
        return None
    return await get_principal(request, session)


# -- organizations ----------------------------------------------------------------------------


@router.get("", response_model=Page[OrganizationOut])
async def list_organizations(
    query: OrganizationList, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """List the organizations you belong to, with your role in each."""
    rows, total = await service.list_organizations(session, principal, query)
    return query.page_of(rows, total)


@router.post("", status_code=201, response_model=Item[OrganizationOut])
async def create_organization(
    body: OrganizationIn, session: SessionDep, client: ClientDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Create an organization; you become its owner."""
    return {"data": await service.create_organization(session, principal, body, client)}


@router.get("/{org_id}", response_model=Item[OrganizationOut])
async def get_organization(
    org_id: str, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Get an organization you belong to."""
    return {"data": await service.get_organization(session, principal, org_id)}


@router.patch("/{org_id}", response_model=Item[OrganizationOut])
async def update_organization(
    org_id: str,
    body: OrganizationPatch,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("organizations:update")],
) -> dict[str, Any]:
    """Rename the organization you are signed in to, or change its slug."""
    return {"data": await service.update_organization(session, principal, org_id, body, client)}


@router.delete("/{org_id}", status_code=204)
async def delete_organization(
    org_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("organizations:delete")],
) -> Response:
    """Delete the organization you are signed in to and all it owns (owners only)."""
    await service.delete_organization(session, principal, org_id, client)
    return Response(status_code=204)


# -- invitations ------------------------------------------------------------------------------


@invitations_router.get("", response_model=Page[InvitationOut])
async def list_invitations(
    query: InvitationList,
    session: SessionDep,
    principal: Annotated[Principal, require("invitations:read")],
) -> dict[str, Any]:
    """List your organization's invitations; filter by status, email or role."""
    rows, total = await service.list_invitations(session, principal, query)
    return query.page_of(rows, total)


@invitations_router.post("", status_code=201, response_model=Item[InvitationCreated])
async def create_invitation(
    body: InvitationIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("invitations:create")],
) -> dict[str, Any]:
    """Invite someone by e-mail; the token is mailed and shown in this response only."""
    return {"data": await service.create_invitation(core, session, principal, body, client)}


@invitations_router.post("/accept", response_model=Item[TokenPair])
async def accept_invitation(
    body: InvitationAcceptIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> dict[str, Any]:
    """Accept an invitation (no sign-in needed for a new account); returns tokens like login."""
    return {"data": await service.accept_invitation(core, session, body, principal, client)}


@invitations_router.delete("/{invitation_id}", status_code=204)
async def revoke_invitation(
    invitation_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("invitations:delete")],
) -> Response:
    """Revoke a pending invitation so its token stops working."""
    await service.revoke_invitation(session, principal, invitation_id, client)
    return Response(status_code=204)
