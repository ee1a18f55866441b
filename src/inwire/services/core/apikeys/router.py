"""HTTP endpoints of API keys and service accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.services.core.apikeys import service
from inwire.services.core.apikeys.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    OrgRole,
    ServiceAccountIn,
    ServiceAccountOut,
    ServiceAccountUpdate,
)
from inwire.services.core.context import ClientDep

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
service_accounts_router = APIRouter(prefix="/service-accounts", tags=["service-accounts"])
routers = [router, service_accounts_router]

_KEY_SORTS = ("created_at", "name", "last_used_at", "expires_at")
_keys_query = list_params(
    _KEY_SORTS,
    filters={"user_id": str, "service_account_id": str, "revoked": bool, "role": OrgRole},
)
_account_keys_query = list_params(_KEY_SORTS, filters={"revoked": bool, "role": OrgRole})
_accounts_query = list_params(
    ("name", "created_at"),
    default_sort="name",
    default_order="asc",
    filters={"role": OrgRole, "is_active": bool},
)


def _keys(rows: Any) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(r) for r in rows]


# -- API keys ---------------------------------------------------------------------------------


@router.post("", response_model=Item[ApiKeyCreated], status_code=201)
async def create_api_key(
    body: ApiKeyIn,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("api_keys:create")],
) -> dict[str, Any]:
    """Create an API key for yourself; the key is in this response only, store it now."""
    return {"data": await service.create_key(session, principal, body, client)}


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_keys_query)],
    principal: Annotated[Principal, require("api_keys:read")],
) -> dict[str, Any]:
    """Your API keys; admins see every key of the organization."""
    rows, total = await service.list_keys(session, principal, query)
    return query.page_of(_keys(rows), total)


@router.get("/{key_id}", response_model=Item[ApiKeyOut])
async def get_api_key(
    key_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require("api_keys:read")],
) -> dict[str, Any]:
    """One API key (yours, or any of the organization's for admins); never the secret."""
    return {"data": ApiKeyOut.model_validate(await service.get_key(session, principal, key_id))}


@router.delete("/{key_id}", response_model=Item[ApiKeyOut])
async def revoke_api_key(
    key_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("api_keys:read")],
) -> dict[str, Any]:
    """Revoke an API key at once (its owner or an admin); the record stays for the audit."""
    key = await service.revoke_key(session, principal, key_id, client)
    return {"data": ApiKeyOut.model_validate(key)}


# -- service accounts -------------------------------------------------------------------------


@service_accounts_router.get("", response_model=Page[ServiceAccountOut])
async def list_service_accounts(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_accounts_query)],
    principal: Annotated[Principal, require("service_accounts:read")],
) -> dict[str, Any]:
    """Service accounts of your organization (admins)."""
    rows, total = await service.list_service_accounts(session, principal, query)
    return query.page_of([ServiceAccountOut.model_validate(r) for r in rows], total)


@service_accounts_router.post("", response_model=Item[ServiceAccountOut], status_code=201)
async def create_service_account(
    body: ServiceAccountIn,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("service_accounts:create")],
) -> dict[str, Any]:
    """Create a service account for automation, with a role no higher than yours."""
    account = await service.create_service_account(session, principal, body, client)
    return {"data": ServiceAccountOut.model_validate(account)}


@service_accounts_router.get("/{account_id}", response_model=Item[ServiceAccountOut])
async def get_service_account(
    account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require("service_accounts:read")],
) -> dict[str, Any]:
    """One service account of your organization."""
    account = await service.get_service_account(session, principal, account_id)
    return {"data": ServiceAccountOut.model_validate(account)}


@service_accounts_router.patch("/{account_id}", response_model=Item[ServiceAccountOut])
async def update_service_account(
    account_id: str,
    body: ServiceAccountUpdate,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("service_accounts:update")],
) -> dict[str, Any]:
    """Change a service account's role or description, or (de)activate it."""
    account = await service.update_service_account(session, principal, account_id, body, client)
    return {"data": ServiceAccountOut.model_validate(account)}


@service_accounts_router.delete("/{account_id}", status_code=204)
async def delete_service_account(
    account_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("service_accounts:delete")],
) -> Response:
    """Delete a service account and all of its API keys."""
    await service.delete_service_account(session, principal, account_id, client)
    return Response(status_code=204)


@service_accounts_router.post(
    "/{account_id}/keys", response_model=Item[ApiKeyCreated], status_code=201
)
async def issue_service_account_key(
    account_id: str,
    body: ApiKeyIn,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("service_accounts:update")],
) -> dict[str, Any]:
    """Issue an API key owned by a service account; the key is in this response only."""
    key = await service.issue_service_account_key(session, principal, account_id, body, client)
    return {"data": key}


@service_accounts_router.get("/{account_id}/keys", response_model=Page[ApiKeyOut])
async def list_service_account_keys(
    account_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_account_keys_query)],
    principal: Annotated[Principal, require("service_accounts:read")],
) -> dict[str, Any]:
    """API keys of a service account (revoke one with DELETE /api-keys/{id})."""
    rows, total = await service.list_service_account_keys(session, principal, account_id, query)
    return query.page_of(_keys(rows), total)
