"""HTTP endpoints of authentication."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from inwire.kit.api import APIRouter, Item
from inwire.kit.auth import PrincipalDep
from inwire.kit.auth.permissions import ORG_ROLES, permits
from inwire.kit.db import SessionDep
from inwire.services.core.auth import service
from inwire.services.core.auth.schemas import (
    LoginIn,
    LogoutIn,
    Me,
    OrganizationRole,
    PasswordChangeIn,
    PasswordResetIn,
    PasswordResetRequestIn,
    RefreshIn,
    SwitchOrganizationIn,
    TokenExchangeIn,
    TokenPair,
)
from inwire.services.core.context import ClientDep, CoreDep
from inwire.services.core.organizations.repository import (
    OrganizationRepository,
)
from inwire.services.core.users.models import User

router = APIRouter(prefix="/auth", tags=["auth"])
jwks_router = APIRouter(tags=["auth"])

_SAMPLE = (
    "datasets:read",
    "datasets:create",
    "members:update",
    "audit:read",
    "organizations:delete",
)


@router.post("/login", response_model=Item[TokenPair])
async def login(
    body: LoginIn, session: SessionDep, core: CoreDep, client: ClientDep
) -> dict[str, Any]:
    """Sign in with e-mail and password; returns an access token and a refresh token."""
    pair = await service.login(
        core, session, body.email, body.password, body.organization_id, client
    )
    return {"data": pair}


@router.post("/token/refresh", response_model=Item[TokenPair])
async def refresh(
    body: RefreshIn, session: SessionDep, core: CoreDep, client: ClientDep
) -> dict[str, Any]:
    """Exchange a refresh token for new tokens; each refresh token works once."""
    return {"data": await service.refresh(core, session, body.refresh_token, client)}


@router.post("/token", response_model=Item[TokenPair])
async def exchange_api_key(
    body: TokenExchangeIn, session: SessionDep, core: CoreDep
) -> dict[str, Any]:
    """Exchange an API key for a short-lived access token."""
    return {"data": await service.exchange_api_key(core, session, body.api_key)}


@router.post("/logout", status_code=204)
async def logout(
    body: LogoutIn, principal: PrincipalDep, session: SessionDep, core: CoreDep, client: ClientDep
) -> Response:
    """Revoke the current access token and, if given, the refresh token's whole family."""
    await service.logout(core, session, principal, body.refresh_token, client)
    return Response(status_code=204)


@router.get("/me", response_model=Item[Me])
async def me(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """Who you are, the organization you act in, your role and your other organizations."""
    organizations: list[OrganizationRole] = []
    email = None
    name = principal.name
    if principal.kind == "user":
        user = await session.get(User, principal.subject)  # loaded by authentication
        email, name = (user.email, user.name) if user else (None, name)
        organizations = [
            OrganizationRole(id=o.id, name=o.name, slug=o.slug, role=role)
            for o, role in await OrganizationRepository.unscoped(session).with_roles_for_user(
                principal.subject
            )
        ]
    role = principal.role
    return {
        "data": Me(
            id=principal.subject,
            kind=principal.kind,
            email=email,
            name=name,
            organization_id=principal.org,
            role=role,
            permissions_sample=[p for p in _SAMPLE if role in ORG_ROLES and permits(role, p)],
            organizations=organizations,
            token_expires_at=principal.expires_at,
        )
    }


@router.post("/switch-organization", response_model=Item[TokenPair])
async def switch_organization(
    body: SwitchOrganizationIn,
    principal: PrincipalDep,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
) -> dict[str, Any]:
    """Get tokens for another organization you belong to."""
    return {
        "data": await service.switch_organization(
            core, session, principal, body.organization_id, client
        )
    }


@router.post("/password/change", status_code=204)
async def change_password(
    body: PasswordChangeIn,
    principal: PrincipalDep,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
) -> Response:
    """Change your password; signs you out everywhere else."""
    await service.change_password(
        core, session, principal, body.current_password, body.new_password, client
    )
    return Response(status_code=204)


@router.post("/password/reset-request", status_code=202)
async def request_password_reset(
    body: PasswordResetRequestIn, session: SessionDep, core: CoreDep, client: ClientDep
) -> dict[str, Any]:
    """Ask for a password reset mail; the answer is the same whether the account exists."""
    await service.request_password_reset(core, session, body.email, client)
    return {"data": {"status": "accepted"}}


@router.post("/password/reset", status_code=204)
async def reset_password(
    body: PasswordResetIn, session: SessionDep, core: CoreDep, client: ClientDep
) -> Response:
    """Set a new password with the token from the reset mail."""
    await service.reset_password(core, session, body.token, body.new_password, client)
    return Response(status_code=204)


@jwks_router.get("/.well-known/jwks.json")
async def jwks(core: CoreDep) -> dict[str, Any]:
    """Public keys that verify Inwire access tokens (RFC 7517)."""
    return await core.keyring.jwks()
