"""Core's app: identity provider, organizations, teams, API keys and integrations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.app import create_service_app
from inwire.kit.auth import JWKSKeySource, Principal
from inwire.kit.ratelimit import open_rate_limiter
from inwire.services.core.auth import service as auth_service
from inwire.services.core.auth.keyring import Keyring
from inwire.services.core.auth.router import jwks_router
from inwire.services.core.auth.router import router as auth_router
from inwire.services.core.bootstrap import bootstrap
from inwire.services.core.context import CoreContext
from inwire.services.core.mail import Mailer
from inwire.services.core.security import Passwords, Sealer
from inwire.services.core.settings import CoreSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CoreSettings | None = None, peers: Any = None) -> FastAPI:
    """Build Core. Nothing happens until the app starts."""
    settings = settings or CoreSettings()
    holder: dict[str, FastAPI] = {}

    async def own_jwks() -> Mapping[str, Any]:
        core: CoreContext = holder["app"].state.core
        return await core.keyring.jwks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sealer = Sealer.from_settings(settings)
        limiter = open_rate_limiter(settings.cache_url)
        core = CoreContext(
            settings=settings,
            db=app.state.db,
            passwords=Passwords(settings),
            sealer=sealer,
            keyring=Keyring(app.state.db, sealer, settings),
            limiter=limiter,
            mailer=Mailer(settings.mail_url or f"file://{settings.home / 'mail'}"),
        )
        app.state.core = core

        async def authenticate(token: str, request: Request, session: AsyncSession) -> Principal:
            return await auth_service.authenticate(core, app.state.verifier, token, session)

        app.state.authenticate = authenticate
        await core.keyring.ensure_current()
        rotation = asyncio.create_task(core.keyring.run_rotation(), name="core-key-rotation")
        if settings.bootstrap:
            await bootstrap(core)
        try:
            yield
        finally:
            rotation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rotation
            await limiter.close()

    async def keys_ready(app: FastAPI) -> None:
        await app.state.core.keyring.signing_key()

    app = create_service_app(
        settings,
        title="Inwire Core",
        description="Authentication, users, teams, organizations, API keys and integrations.",
        routers=_routers(),
        root_routers=[jwks_router],
        migrations=MIGRATIONS,
        lifespan=lifespan,
        ready_checks={"signing_keys": keys_ready},
        key_source=JWKSKeySource("core:keyring", fetch=own_jwks, ttl=30, min_refresh_interval=1),
    )
    holder["app"] = app
    return app


def _routers() -> list[Any]:
    """Every /api/v1 router of Core; a concept's router appears here once it exists."""
    from importlib import import_module

    routers = [auth_router]
    for name in ("users", "organizations", "teams", "apikeys", "integrations", "sso", "audit"):
        try:
            module = import_module(f"inwire.services.core.{name}.router")
        except ModuleNotFoundError as exc:
            if exc.name != f"inwire.services.core.{name}.router":
                raise
            continue
        routers.extend(getattr(module, "routers", [module.router]))
    return routers
