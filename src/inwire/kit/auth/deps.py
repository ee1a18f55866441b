"""FastAPI dependencies: ``PrincipalDep`` and ``require(permission)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from inwire.kit.auth.internal import on_behalf_principal
from inwire.kit.auth.principal import Principal
from inwire.kit.db.engine import SessionDep
from inwire.kit.errors import Forbidden, Unauthorized
from inwire.kit.observability import org_var, principal_var

PrincipalCheck = Callable[[Principal, Request], Awaitable[Principal]]


def bearer_token(request: Request) -> str | None:
    """The bearer token of the Authorization header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """Authenticate the request; 401 in the error envelope when that fails.

    An app may install ``app.state.authenticate(token, request, session)`` (Core does, for
    API keys, revocation and current roles; it reads through the request's own session);
    otherwise the bearer JWT is verified with ``app.state.verifier`` and no database is
    touched (the session is lazy). A platform service's call carrying the internal secret
    and on-behalf headers acts as the user they name (``kit.auth.internal``).
    """
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    token = bearer_token(request)
    delegated = on_behalf_principal(request)
    authenticate = getattr(request.app.state, "authenticate", None)
    principal: Principal
    if delegated is not None:
        principal = delegated
    elif token is None:
        raise Unauthorized("Missing bearer credentials")
    elif authenticate is not None:
        principal = await authenticate(token, request, session)
    else:
        principal = await request.app.state.verifier.verify(token)
    request.state.principal = principal
    principal_var.set(principal.subject)
    org_var.set(principal.org)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def ensure(principal: Principal, permission: str) -> None:
    """403 unless ``principal`` holds ``permission`` (for checks that depend on the input)."""
    if not principal.can(permission):
        raise Forbidden(
            f"Missing permission {permission}",
            details=[{"message": f"requires {permission}", "permission": permission}],
        )


def require(permission: str) -> Any:
    """Depend on an authenticated principal holding ``permission``; 403 otherwise."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.can(permission):
            raise Forbidden(
                f"Missing permission {permission}",
                details=[{"message": f"requires {permission}", "permission": permission}],
            )
        return principal

    check.__name__ = f"require_{permission.replace(':', '_')}"
    return Depends(check)
