"""HTTP endpoints of single sign-on: provider management and the OIDC sign-in flow."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.db.engine import WRITES
from inwire.services.core.auth.schemas import TokenPair
from inwire.services.core.context import ClientDep, CoreDep
from inwire.services.core.security import new_secret_token
from inwire.services.core.sso import service
from inwire.services.core.sso.schemas import ProviderIn, ProviderOut, ProviderUpdate

router = APIRouter(prefix="/sso", tags=["sso"])
sign_in_router = APIRouter(prefix="/auth/sso", tags=["auth"])
routers = [router, sign_in_router]

#: Binds a sign-in to the browser that started it (RFC 6749 §10.12, login CSRF).
BROWSER_COOKIE = "inwire_sso_browser"
#: Token responses must not be cached (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_query = list_params(("created_at", "name"), filters={"enabled": bool})


async def idp_http(request: Request) -> service.ClientFactory:
    """HTTP clients for identity providers; ``app.state.sso_http_transport`` overrides."""
    return service.http_client_factory(getattr(request.app.state, "sso_http_transport", None))


IdPHttpDep = Annotated[service.ClientFactory, Depends(idp_http)]


@router.get("/providers", response_model=Page[ProviderOut])
async def list_providers(
    session: SessionDep,
    core: CoreDep,
    query: Annotated[ListQuery, Depends(_query)],
    principal: Annotated[Principal, require("sso:read")],
) -> dict[str, Any]:
    """Single sign-on providers of your organization; filter by enabled."""
    rows, total = await service.list_providers(core, session, principal, query)
    return query.page_of(rows, total)


@router.post("/providers", response_model=Item[ProviderOut], status_code=201)
async def create_provider(
    body: ProviderIn,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("sso:create")],
) -> dict[str, Any]:
    """Add an OpenID Connect provider; register the returned redirect_uri with it."""
    row = await service.create_provider(core, session, principal, body, client)
    return {"data": service.present(core, row)}


@router.get("/providers/{provider_id}", response_model=Item[ProviderOut])
async def get_provider(
    provider_id: str,
    session: SessionDep,
    core: CoreDep,
    principal: Annotated[Principal, require("sso:read")],
) -> dict[str, Any]:
    """One SSO provider of your organization (without its client secret)."""
    row = await service.get_provider(session, principal, provider_id)
    return {"data": service.present(core, row)}


@router.patch("/providers/{provider_id}", response_model=Item[ProviderOut])
async def update_provider(
    provider_id: str,
    body: ProviderUpdate,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    principal: Annotated[Principal, require("sso:update")],
) -> dict[str, Any]:
    """Change an SSO provider: settings, client secret, default role, domains, enabled."""
    row = await service.update_provider(core, session, principal, provider_id, body, client)
    return {"data": service.present(core, row)}


@router.delete("/providers/{provider_id}", status_code=204)
async def delete_provider(
    provider_id: str,
    session: SessionDep,
    client: ClientDep,
    principal: Annotated[Principal, require("sso:delete")],
) -> Response:
    """Remove an SSO provider; people who signed in with it keep their accounts."""
    await service.delete_provider(session, principal, provider_id, client)
    return Response(status_code=204)


def _cookie_path(core: CoreDep) -> str:
    return urlsplit(core.settings.public_url).path.rstrip("/") + "/api/v1/auth/sso"


@sign_in_router.get(
    "/{provider_id}/login",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "Redirect to the identity provider"}},
    openapi_extra=WRITES,
)
async def sso_login(
    provider_id: str,
    request: Request,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    http: IdPHttpDep,
    redirect_uri: Annotated[
        str | None,
        Query(max_length=1000, description="Where to send the browser with the tokens afterwards"),
    ] = None,
) -> Response:
    """Start single sign-on: redirects the browser to the organization's identity provider."""
    browser = request.cookies.get(BROWSER_COOKIE) or new_secret_token()
    url = await service.start_login(
        core, session, http, provider_id, redirect_uri=redirect_uri, browser=browser, client=client
    )
    response = RedirectResponse(url, status_code=302, headers=NO_STORE)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=int(service.STATE_TTL.total_seconds()),
        path=_cookie_path(core),
        secure=core.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on embeds
    )
    return response


@sign_in_router.get(
    "/callback",
    response_model=Item[TokenPair],
    responses={302: {"description": "Redirect to redirect_uri with the tokens in the fragment"}},
    openapi_extra=WRITES,
)
async def sso_callback(
    request: Request,
    response: Response,
    session: SessionDep,
    core: CoreDep,
    client: ClientDep,
    http: IdPHttpDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Finish single sign-on (the identity provider redirects here); returns Inwire tokens."""
    result = await service.finish_login(
        core,
        session,
        http,
        code=code,
        state=state,
        error=error,
        browser=request.cookies.get(BROWSER_COOKIE),
        client=client,
    )
    response.headers.update(NO_STORE)
    if result.redirect_uri:
        # The fragment never reaches a server or a Referer header (RFC 3986 §3.5).
        fragment = urlencode(
            {k: v for k, v in result.tokens.model_dump(exclude={"user"}).items() if v is not None}
        )
        return RedirectResponse(
            f"{result.redirect_uri}#{fragment}", status_code=302, headers=NO_STORE
        )
    return {"data": result.tokens}
