"""HTTP endpoints of integrations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.auth.internal import InternalCallDep
from inwire.kit.db import SessionDep
from inwire.services.core.context import ClientDep, CoreDep
from inwire.services.core.integrations import service
from inwire.services.core.integrations.kinds import KindName
from inwire.services.core.integrations.schemas import (
    ConnectionTestOut,
    IntegrationIn,
    IntegrationKindOut,
    IntegrationOut,
    IntegrationStatus,
    IntegrationUpdate,
    ResolvedIntegrationOut,
    ResolveIn,
)

router = APIRouter(prefix="/integrations", tags=["integrations"])

_query = list_params(
    ("created_at", "name"),
    filters={"kind": KindName, "status": IntegrationStatus},
)


@router.get("", response_model=Page[IntegrationOut])
async def list_integrations(
    session: SessionDep,
    core: CoreDep,
    query: Annotated[ListQuery, Depends(_query)],
    principal: Annotated[Principal, require("integrations:read")],
) -> dict[str, Any]:
    """Integrations of your organization; filter by kind or test status."""
    rows, total = await service.list_integrations(core, session, principal, query)
    return query.page_of(rows, total)


@router.get("/kinds", response_model=Item[list[IntegrationKindOut]])
async def list_kinds(
    principal: Annotated[Principal, require("integrations:read")],
) -> dict[str, Any]:
    """Kinds of integration and the JSON Schemas of their config and credentials."""
    return {"data": service.kind_catalog()}


@router.post("", response_model=Item[IntegrationOut], status_code=201)
async def create_integration(
    body: IntegrationIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("integrations:create")],
) -> dict[str, Any]:
    """Add an integration; its credentials are stored encrypted and never shown again."""
    row = await service.create_integration(core, session, principal, body, client)
    return {"data": service.present(core, row)}


@router.get("/{integration_id}", response_model=Item[IntegrationOut])
async def get_integration(
    integration_id: str,
    session: SessionDep,
    core: CoreDep,
    principal: Annotated[Principal, require("integrations:read")],
) -> dict[str, Any]:
    """One integration of your organization (without its credentials)."""
    row = await service.get_integration(session, principal, integration_id)
    return {"data": service.present(core, row)}


@router.patch("/{integration_id}", response_model=Item[IntegrationOut])
async def update_integration(
    integration_id: str,
    body: IntegrationUpdate,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("integrations:update")],
) -> dict[str, Any]:
    """Rename an integration, change its config or replace its credentials."""
    row = await service.update_integration(core, session, principal, integration_id, body, client)
    return {"data": service.present(core, row)}


@router.delete("/{integration_id}", status_code=204)
async def delete_integration(
    integration_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("integrations:delete")],
) -> Response:
    """Delete an integration and its stored credentials."""
    await service.delete_integration(session, principal, integration_id, client)
    return Response(status_code=204)


@router.post("/{integration_id}/test", response_model=Item[ConnectionTestOut])
async def test_integration(
    integration_id: str,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("integrations:update")],
) -> dict[str, Any]:
    """Connect to the external system with the stored credentials and record the outcome."""
    result = await service.check_connection(core, session, principal, integration_id, client)
    return {"data": result}


@router.post(
    "/{integration_id}/resolve",
    response_model=Item[ResolvedIntegrationOut],
    include_in_schema=False,
)
async def resolve_integration(
    integration_id: str,
    body: ResolveIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    internal: InternalCallDep,
) -> dict[str, Any]:
    """Config and decrypted credentials, for the platform's own services only.

    Needs the internal secret (``X-Inwire-Internal``), which the gateway never lets in from
    outside; the organization and the principal the work is for scope it like any call.
    """
    resolved = await service.resolve_integration(core, session, integration_id, body, client)
    return {"data": resolved}
