"""``inwire up --one-process``: every service app mounted under its prefix in one ASGI app.

Starlette does not run a mounted app's lifespan, so the parent's lifespan enters each
service's lifespan in registry order (and leaves them in reverse), which is what prepares
databases, runs migrations and starts background work. The parent answers ``/health``
and ``/health/ready`` (ready when every service is) and the error envelope for paths no
service owns; ``/<prefix>/…`` is the service's own app, exactly as through the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inwire.allinone.serve import build_app, signals_end_cleanly
from inwire.allinone.supervisor import footer_text, inwire_home, status_table
from inwire.services.registry import ServiceSpec

if TYPE_CHECKING:
    from fastapi import FastAPI
    from rich.console import Console
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from inwire.kit.settings import ServiceSettings

DEFAULT_PORT = 8080


@dataclass(frozen=True)
class MountedService:
    """A service app and the settings it was built from, mounted under ``spec.prefix``."""

    spec: ServiceSpec
    settings: ServiceSettings
    app: FastAPI


#: Settings naming where a peer (or the service itself) is reached, and its prefix here.
_PEER_URLS = {
    "core_url": "/core",
    "synthex_url": "/synthex",
    "modelops_url": "/modelops",
    "tracking_url": "/training",
}


def _settings(spec: ServiceSpec, base_url: str, has_core: bool) -> ServiceSettings:
    settings = spec.settings()
    overrides: dict[str, str] = {}
    # Core's keys are on this process's port under /core, not on Core's own port, unless
    # the environment says where they are. So are the peers a service's jobs call.
    if has_core and "jwks_url" not in settings.model_fields_set:
        overrides["jwks_url"] = f"{base_url}/core/.well-known/jwks.json"
    for name, prefix in _PEER_URLS.items():
        if name in type(settings).model_fields and name not in settings.model_fields_set:
            overrides[name] = f"{base_url}{prefix}"
    return spec.settings(**overrides) if overrides else settings


def mount_services(services: Sequence[ServiceSpec], *, base_url: str) -> list[MountedService]:
    """Build every service's app from its settings (the environment)."""
    has_core = any(spec.name == "core" for spec in services)
    mounted = []
    for spec in services:
        settings = _settings(spec, base_url, has_core)
        mounted.append(MountedService(spec, settings, build_app(spec, settings)))
    return mounted


async def _get_status(app: FastAPI, path: str) -> int:
    """Status of ``GET path`` on ``app``, called in process (no socket, no client logging)."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"inwire")],
        "client": ("127.0.0.1", 0),
        "server": ("inwire", 80),
    }
    await app(scope, receive, send)
    return status


async def _ready(service: MountedService) -> tuple[str, int]:
    try:
        code = await _get_status(service.app, "/health/ready")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}", 503
    return ("ready" if code == 200 else f"not ready ({code})"), code


def compose(mounted: Sequence[MountedService]) -> Starlette:
    """One ASGI app serving every mounted service under its prefix."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Mount, Route

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        state: dict[str, Any] = {}
        async with AsyncExitStack() as stack:
            for service in mounted:
                app = service.app
                result = await stack.enter_async_context(app.router.lifespan_context(app))
                if result:
                    state.update(result)
            yield state

    async def health(_: Request) -> Response:
        """Liveness of the composed process."""
        return JSONResponse({"status": "ok", "services": [m.spec.name for m in mounted]})

    async def health_ready(_: Request) -> Response:
        """Ready when every mounted service is; 503 names the ones that are not."""
        results = await asyncio.gather(*(_ready(m) for m in mounted))
        checks = {m.spec.name: status for m, (status, _) in zip(mounted, results, strict=True)}
        failed = [
            {"field": name, "message": status}
            for name, status in checks.items()
            if status != "ready"
        ]
        if failed:
            names = ", ".join(f["field"] for f in failed)
            error = {"code": "NOT_READY", "message": f"Not ready: {names}", "details": failed}
            return JSONResponse({"error": error}, status_code=503)
        return JSONResponse({"status": "ready", "checks": checks})

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        message = {404: "No such route", 405: "Method not allowed"}.get(
            exc.status_code, str(exc.detail)
        )
        body = {"error": {"code": code, "message": message, "details": []}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", health_ready, methods=["GET"]),
    ]
    routes += [Mount(m.spec.prefix, app=m.app, name=m.spec.name) for m in mounted]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: http_error, 405: http_error}
    )


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = "[::1]" if shown == "::" else (f"[{shown}]" if ":" in shown else shown)
    return f"http://{shown}:{port}"


async def serve_one_process(
    services: Sequence[ServiceSpec],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    console: Console | None = None,
    log_level: str = "info",
) -> int:
    """Serve every service from this process on ``host:port`` until SIGINT/SIGTERM."""
    import uvicorn

    from inwire.gateway.app import in_front

    base_url = _base_url(host, port)
    mounted = mount_services(services, base_url=base_url)
    app = in_front(compose(mounted), services)
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", access_log=False, log_level=log_level
    )
    server = uvicorn.Server(config)
    with signals_end_cleanly():
        serving = asyncio.create_task(server.serve())
        # uvicorn offers a flag, not an event, for "lifespan done and sockets bound".
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started and console is not None:
            results = await asyncio.gather(*(_ready(m) for m in mounted))
            rows = [
                (m.spec.name, f"{base_url}{m.spec.prefix}", status)
                for m, (status, _) in zip(mounted, results, strict=True)
            ]
            console.print(status_table(rows, columns=("Service", "URL", "Status")))
            home = mounted[0].settings.home if mounted else inwire_home()
            console.print(footer_text(home, services))
        with contextlib.suppress(SystemExit):
            await serving
    return 0 if server.started else 1
