"""The services the MLflow API calls: Core (API-key exchange) and ModelOps (the registry).

``create_app(peers=...)`` may name each peer by an ASGI app (tests, one process) or a URL;
otherwise ``core_url`` and ``modelops_url`` from the settings are used. Calls to ModelOps
carry the caller's own access token (:data:`caller_token`), so the registry applies the
caller's organization and role itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI

from inwire.contracts.core import CoreClient
from inwire.contracts.modelops import ModelOpsClient
from inwire.kit.auth.apikeys import Authenticator
from inwire.kit.peers import ServiceClient

#: The access token of the request being served; ModelOps calls send it.
caller_token: ContextVar[str | None] = ContextVar("mlflow_caller_token", default=None)

C = TypeVar("C", bound=ServiceClient)


async def _caller_token() -> str | None:
    return caller_token.get()


@dataclass
class MlflowPeers:
    """Clients of the MLflow API, open for the app's life."""

    core: CoreClient
    modelops: ModelOpsClient
    authenticator: Authenticator


def _client(cls: type[C], given: Any, url: str, **kwargs: Any) -> C:
    if given is None or isinstance(given, str):
        return cls((given or url).rstrip("/"), **kwargs)
    return cls("http://peer", app=given, **kwargs)


@asynccontextmanager
async def open_peers(app: FastAPI, given: Mapping[str, Any] | None) -> AsyncIterator[None]:
    """Open the peers' clients as ``app.state.mlflow_peers``; close them at shutdown.

    Runs inside the kit's lifespan, after the token verifier exists.
    """
    settings = app.state.settings
    given = dict(given or {})
    core = _client(CoreClient, given.get("core"), settings.core_url)
    modelops = _client(
        ModelOpsClient, given.get("modelops"), settings.modelops_url, credentials=_caller_token
    )
    authenticator = Authenticator(
        app.state.verifier, core, cache_seconds=settings.api_key_cache_seconds
    )
    app.state.mlflow_peers = MlflowPeers(core, modelops, authenticator)
    try:
        yield
    finally:
        await core.close()
        await modelops.close()
