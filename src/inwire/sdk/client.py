"""``inwire.Client`` (blocking) and ``inwire.AsyncClient``: one object for the whole platform.

Where the services are (one rule, applied per service):

1. ``services={"core": ...}`` names a service's own address (``"http://host:18000"``) or its
   ASGI app (called in process, for tests and embedding).
2. ``core_url=...`` is the same as ``services={"core": core_url}``.
3. Otherwise the service is behind ``url``, the gateway (or ``inwire up --one-process``),
   under its prefix: ``http://127.0.0.1:8080/core``.

``url`` defaults to ``$INWIRE_URL``, then ``http://127.0.0.1:8080``. Credentials: one of
``api_key``, ``token`` (with an optional ``refresh_token``) or ``email`` and ``password``;
with none given, ``$INWIRE_API_KEY`` and then ``$INWIRE_TOKEN`` are used when set.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Coroutine, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from inwire.contracts.core import GATEWAY_PREFIX, Caller, CoreClient, TokenGrant
from inwire.contracts.modelops import GATEWAY_PREFIX as MODELOPS_PREFIX
from inwire.contracts.modelops import ModelOpsClient
from inwire.contracts.synthex import GATEWAY_PREFIX as SYNTHEX_PREFIX
from inwire.contracts.synthex import SynthexClient
from inwire.contracts.training import GATEWAY_PREFIX as TRAINING_PREFIX
from inwire.contracts.training import TrainingClient
from inwire.kit.peers import ASGIApp
from inwire.sdk.core import AsyncCore
from inwire.sdk.core_sync import Core
from inwire.sdk.http import PlatformCalls
from inwire.sdk.loop import LoopThread
from inwire.sdk.retry import RetryPolicy
from inwire.sdk.session import Session, TokenListener, Tokens

__all__ = ["DEFAULT_URL", "AsyncClient", "Client"]

T = TypeVar("T")
C = TypeVar("C", bound=PlatformCalls)

DEFAULT_URL = "http://127.0.0.1:8080"


class _Core(PlatformCalls, CoreClient):
    """Core's contract client with the SDK's credentials, refresh and retries."""


class _Training(PlatformCalls, TrainingClient):
    """Model Training's contract client with the SDK's credentials, refresh and retries."""


class _Synthex(PlatformCalls, SynthexClient):
    """Synthex's contract client with the SDK's credentials, refresh and retries."""


class _ModelOps(PlatformCalls, ModelOpsClient):
    """ModelOps' contract client with the SDK's credentials, refresh and retries."""


def _address(
    name: str,
    prefix: str,
    url: str,
    direct: str | None,
    services: Mapping[str, str | ASGIApp],
) -> dict[str, Any]:
    """``base_url``/``app`` arguments for one service, by the rule in the module docstring."""
    target = services.get(name, direct)
    if target is None:
        return {"base_url": f"{url.rstrip('/')}{prefix}"}
    if isinstance(target, str):
        return {"base_url": target.rstrip("/")}
    return {"base_url": f"http://{name}", "app": target}


class AsyncClient:
    """The platform from async code: ``async with inwire.AsyncClient(url, api_key=...) as c``.

    ``client.core`` holds Core's resources (organizations, users, invitations, teams,
    api_keys, service_accounts). Build one client per event loop and close it.

    Args:
        url: the gateway (or ``inwire up --one-process``); services under ``/<prefix>``.
        api_key: an ``iwk_…`` key, sent as the bearer credential.
        token: an access token; with ``refresh_token`` it is renewed when it expires.
        refresh_token: renews ``token`` (each refresh token works once).
        token_expires_at: when ``token`` expires, to refresh it ahead of time.
        email: sign in with this address and ``password`` on first use.
        password: the password for ``email``.
        organization_id: the organization to sign in to (default: the account's own).
        core_url: Core's own address, bypassing the gateway.
        services: per-service address or ASGI app, e.g. ``{"core": core_app}``.
        timeout: seconds a single request may take.
        retry: retries of 429/503 and lost connections (default :class:`RetryPolicy`).
        on_tokens: told about every new token pair (store the refresh token: it rotates).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        token_expires_at: datetime | None = None,
        email: str | None = None,
        password: str | None = None,
        organization_id: str | None = None,
        core_url: str | None = None,
        services: Mapping[str, str | ASGIApp] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        on_tokens: TokenListener | None = None,
    ) -> None:
        if api_key is None and token is None and email is None and password is None:
            api_key = os.environ.get("INWIRE_API_KEY") or None
            token = None if api_key else os.environ.get("INWIRE_TOKEN") or None
        if token is None and refresh_token is not None:
            raise ValueError("refresh_token needs the token it renews")
        self.url = (url or os.environ.get("INWIRE_URL") or DEFAULT_URL).rstrip("/")
        tokens = (
            Tokens(token, refresh_token, token_expires_at, organization_id)
            if token is not None
            else None
        )
        self.session = Session(
            api_key=api_key,
            tokens=tokens,
            email=email,
            password=password,
            organization_id=organization_id,
            on_tokens=on_tokens,
        )
        self.retry = retry or RetryPolicy()
        core = _Core(
            "core",
            **_address("core", GATEWAY_PREFIX, self.url, core_url, services or {}),
            timeout=timeout,
            session=self.session,
            retry=self.retry,
        )
        self.session.core = core
        self.core = AsyncCore(core, self.session)
        where = services or {}

        def contract(cls: type[C], name: str, prefix: str) -> C:
            return cls(
                name,
                **_address(name, prefix, self.url, None, where),
                timeout=timeout,
                session=self.session,
                retry=self.retry,
            )

        #: Model Training's typed contract client (async), used by ``inwire.start_run``.
        self.training_api: TrainingClient = contract(_Training, "training", TRAINING_PREFIX)
        #: Synthex's typed contract client (async): datasets, versions, downloads.
        self.synthex_api: SynthexClient = contract(_Synthex, "synthex", SYNTHEX_PREFIX)
        #: ModelOps' typed contract client (async): the model registry.
        self.modelops_api: ModelOpsClient = contract(_ModelOps, "modelops", MODELOPS_PREFIX)

    @property
    def tokens(self) -> Tokens | None:
        """The current access and refresh tokens (``None`` with an API key or signed out)."""
        return self.session.tokens

    async def login(
        self, email: str, password: str, *, organization_id: str | None = None
    ) -> TokenGrant:
        """Sign in with a password; later calls use the new tokens."""
        return await self.session.login(email, password, organization_id)

    async def logout(self) -> None:
        """Revoke this session's tokens at Core and forget every credential."""
        tokens = self.session.tokens
        if tokens is not None:
            await self.core.api.logout(tokens.refresh_token)
        self.session.clear()

    async def me(self) -> Caller:
        """Who this client acts as (``client.core.me()``)."""
        return await self.core.me()

    async def close(self) -> None:
        """Close pooled connections; the client must not be used afterwards."""
        await self.core.api.close()
        await self.training_api.close()
        await self.synthex_api.close()
        await self.modelops_api.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _shutdown(loop: LoopThread, inner: AsyncClient) -> None:
    if loop.closed:
        return
    try:
        loop.run(inner.close())
    finally:
        loop.close()


class Client:
    """The platform from blocking code: ``with inwire.Client(url, api_key=...) as client``.

    Same arguments and resources as :class:`AsyncClient`; every call blocks until done.
    Calls run on a private event loop in a background thread, so the client works in
    scripts, threads and notebooks, and inside code that already runs an event loop.
    ``on_tokens`` is called on that background thread.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        token_expires_at: datetime | None = None,
        email: str | None = None,
        password: str | None = None,
        organization_id: str | None = None,
        core_url: str | None = None,
        services: Mapping[str, str | ASGIApp] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        on_tokens: TokenListener | None = None,
    ) -> None:
        self._async = AsyncClient(
            url,
            api_key=api_key,
            token=token,
            refresh_token=refresh_token,
            token_expires_at=token_expires_at,
            email=email,
            password=password,
            organization_id=organization_id,
            core_url=core_url,
            services=services,
            timeout=timeout,
            retry=retry,
            on_tokens=on_tokens,
        )
        self._loop = LoopThread()
        self.url = self._async.url
        self.core = Core(self._async.core, self._loop.run)
        #: Model Training's async contract client; run its calls with :meth:`run`.
        self.training_api = self._async.training_api
        #: Synthex's and ModelOps' async contract clients; run their calls with :meth:`run`.
        self.synthex_api = self._async.synthex_api
        self.modelops_api = self._async.modelops_api
        # A client dropped without close() still releases its connections and thread.
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._async)

    @property
    def tokens(self) -> Tokens | None:
        """The current access and refresh tokens (``None`` with an API key or signed out)."""
        return self._async.tokens

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the async API (``client.core.api``) on this client's loop."""
        return self._loop.run(coro)

    def login(self, email: str, password: str, *, organization_id: str | None = None) -> TokenGrant:
        """Sign in with a password; later calls use the new tokens."""
        return self._loop.run(self._async.login(email, password, organization_id=organization_id))

    def logout(self) -> None:
        """Revoke this session's tokens at Core and forget every credential."""
        self._loop.run(self._async.logout())

    def me(self) -> Caller:
        """Who this client acts as (``client.core.me()``)."""
        return self._loop.run(self._async.me())

    def close(self) -> None:
        """Close connections and stop the background loop; idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
