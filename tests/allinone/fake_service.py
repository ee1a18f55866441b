"""A tiny service built like a real one (kit app factory, settings, lifespan), for the
supervisor and composition tests. Children import it as ``fake_service`` via PYTHONPATH.

``INWIRE_<SERVICE>_FAIL_ON_START=true`` makes its start fail, as a broken service would.
On a clean stop it writes ``$INWIRE_HOME/<service>.stopped`` with its process id.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from pydantic_settings import SettingsConfigDict

from inwire.kit.api import APIRouter
from inwire.kit.app import create_service_app
from inwire.kit.settings import ServiceSettings


class FakeSettings(ServiceSettings):
    """Settings of the fake service ``fake`` (``INWIRE_FAKE_<NAME>``)."""

    service = "fake"
    default_port = 18999
    model_config = SettingsConfigDict(env_prefix="INWIRE_FAKE_")

    fail_on_start: bool = False


class OtherSettings(FakeSettings):
    """Settings of a second fake service, ``other``."""

    service = "other"
    model_config = SettingsConfigDict(env_prefix="INWIRE_OTHER_")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The fake service's app."""
    config = settings if settings is not None else FakeSettings()
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        """Which service and process answered, and whether its lifespan ran."""
        return {
            "data": {
                "service": config.service,
                "pid": os.getpid(),
                "started": bool(getattr(request.app.state, "started", False)),
                "jwks_url": config.jwks_url,
            }
        }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(config, "fail_on_start", False):
            raise RuntimeError("configured to fail on start")
        app.state.started = True
        yield
        (config.home / f"{config.service}.stopped").write_text(str(os.getpid()))

    return create_service_app(
        config, title=f"Fake {config.service}", routers=[router], lifespan=lifespan
    )
