"""Who calls the MLflow API: ``MLFLOW_TRACKING_TOKEN`` is a bearer JWT or an API key.

The stock client sends ``Authorization: Bearer <MLFLOW_TRACKING_TOKEN>``. Through the
gateway an API key has already become a JWT; called directly, an ``iwk_…`` key is
exchanged with Core here (cached briefly under its SHA-256 by the kit's
:class:`~inwire.kit.auth.apikeys.Authenticator`, the gateway's too). The organization is the
credential's.
"""

from __future__ import annotations

from fastapi import Request

from inwire.kit.auth import Principal
from inwire.kit.auth.apikeys import credentials_from
from inwire.kit.errors import Unauthorized
from inwire.kit.observability import org_var, principal_var
from inwire.services.training.mlflow.peers import caller_token


async def authenticate(request: Request) -> Principal:
    """The caller, from a JWT or an exchanged API key; 401 (``UNAUTHENTICATED``) otherwise.

    Leaves the principal where ``require(...)`` finds it, and its token for ModelOps calls.
    """
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    credentials = credentials_from(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    if credentials is None:
        raise Unauthorized("Missing credentials: set MLFLOW_TRACKING_TOKEN to a token or API key")
    identity = await request.app.state.mlflow_peers.authenticator.authenticate(credentials)
    principal: Principal = identity.principal
    request.state.principal = principal
    principal_var.set(principal.subject)
    org_var.set(principal.org)
    caller_token.set(identity.token)
    return principal
