"""``create_service_app()``: the FastAPI app every Inwire service is.

It gives each service the spec's envelope for every ``/api/v1`` error (404, 405, 413, 415,
validation as 400 ``VALIDATION_ERROR``, 500 without a stack trace), health endpoints, docs,
Prometheus metrics, request ids, JSON logs, W3C trace propagation, its database (migrated
at start) and token verification.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inwire import __version__
from inwire.kit.api import APIRouter, ErrorBody
from inwire.kit.auth.tokens import JWKSKeySource, KeySource, TokenVerifier
from inwire.kit.db.engine import Database
from inwire.kit.db.migrations import upgrade_async
from inwire.kit.errors import InwireError, PayloadTooLarge
from inwire.kit.ids import new_id
from inwire.kit.jobs import jobs_router
from inwire.kit.observability import (
    ServiceMetrics,
    configure_logging,
    configure_tracing,
    request_id_var,
)
from inwire.kit.settings import ServiceSettings

log = logging.getLogger("inwire.http")

ReadyCheck = Callable[[FastAPI], Awaitable[None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Validation error"),
        (401, "Not authenticated"),
        (403, "Permission denied"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Payload too large"),
        (415, "Unsupported media type"),
        (429, "Rate limited"),
        (500, "Internal error"),
    )
}

_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    429: "RATE_LIMITED",
}


def _too_large() -> JSONResponse:
    return error_response(413, "PAYLOAD_TOO_LARGE", "Request body is too large")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response in the error envelope."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": list(details)}},
        status_code=status,
        headers=dict(headers or {}),
    )


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_inwire_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, InwireError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "field": _field_of(e.get("loc", ())),
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({d["field"] for d in details}))
    return error_response(400, "VALIDATION_ERROR", f"Invalid input: {fields}", details)


async def _on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = {404: "No such route", 405: "Method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _internal_error(rid: str) -> JSONResponse:
    return error_response(
        500,
        "INTERNAL_ERROR",
        "Internal error; quote the request id when reporting it",
        [{"message": "request id", "request_id": rid}],
    )


_TOO_LARGE = _too_large()


class RequestContextMiddleware:
    """Request id, trace span, metrics, access log and body-size limit for every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        tracer: trace.Tracer,
        max_body_bytes: int,
        body_limit_exempt: Sequence[str | re.Pattern[str]] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.max_body = max_body_bytes
        self.exempt_prefixes = tuple(e for e in body_limit_exempt if isinstance(e, str))
        self.exempt_patterns = tuple(e for e in body_limit_exempt if not isinstance(e, str))

    def _exempt(self, path: str) -> bool:
        return bool(self.exempt_prefixes and path.startswith(self.exempt_prefixes)) or any(
            p.fullmatch(path) for p in self.exempt_patterns
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        incoming = headers.get("x-request-id", "")
        rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else new_id("req")
        token = request_id_var.set(rid)
        status = 500
        method = scope.get("method", "GET")
        path = scope.get("path", "")

        # Under a mount (one-process mode) the path keeps the mount prefix; the root_path has it.
        local_path = (
            path[len(scope.get("root_path", "")) :]
            if scope.get("root_path") and path.startswith(scope.get("root_path", ""))
            else path
        )
        limit = 0 if self._exempt(local_path) else self.max_body
        too_large = False
        replaced = False
        status_sent = False
        seen = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, replaced, status_sent
            if message["type"] == "http.response.start":
                status_sent = True
                if too_large:
                    # The app failed while reading an oversized body; whatever it answered,
                    # the truthful answer is 413.
                    replaced = True
                    message = {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": _TOO_LARGE.raw_headers,
                    }
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            elif replaced:
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": _TOO_LARGE.body}
            await send(message)

        async def receive_limited() -> Message:
            nonlocal too_large, seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
            return message

        declared = headers.get("content-length", "")
        self.metrics.in_flight.labels(self.metrics.service).inc()
        ctx = propagate.extract(headers)
        with self.tracer.start_as_current_span(
            f"{method} {path}", context=ctx, kind=SpanKind.SERVER
        ) as span:
            try:
                if limit and declared.isdigit() and int(declared) > limit:
                    await _send_json(
                        send_wrapper,
                        error_response(
                            413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes"
                        ),
                    )
                    return
                receive_checked = receive_limited if limit else receive
                try:
                    await self.app(scope, receive_checked, send_wrapper)
                except Exception:
                    # Answered here, while the request id is still known, rather than by
                    # Starlette's outermost handler; a response already begun is cut off.
                    log.exception("unhandled error", extra={"path": path})
                    if status_sent:
                        raise
                    await _send_json(send_wrapper, _internal_error(rid))
            finally:
                # Still inside the span: the access log line carries its trace id.
                span.set_attribute("http.status_code", status)
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.in_flight.labels(self.metrics.service).dec()
                self.metrics.observe(method, template, status, started)
                if not path.startswith(("/health", "/metrics")):
                    log.info(
                        "%s %s %s",
                        method,
                        path,
                        status,
                        extra={
                            "method": method,
                            "path": path,
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )
                request_id_var.reset(token)


async def send_error(send: Send, exc: InwireError) -> None:
    """Answer ``exc`` in the error envelope from raw ASGI code (a ``middleware`` of
    ``create_service_app`` that serves a route itself)."""
    await _send_json(
        send, error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    )


async def _send_json(send: Send, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    root_routers: Sequence[APIRouter] = (),
    migrations: Path | None = None,
    lifespan: Lifespan | None = None,
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    key_source: KeySource | None = None,
    body_limit_exempt: Sequence[str | re.Pattern[str]] = (),
    storage: bool = False,
    middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """Build a service app. ``routers`` are mounted under ``/api/v1``, ``root_routers`` at ``/``.

    ``migrations`` is the service's Alembic folder, applied at start when
    ``settings.migrate_on_start``. ``key_source`` defaults to Core's JWKS at
    ``settings.jwks_url``. ``lifespan`` runs inside the kit's own start/stop.
    ``storage=True`` opens the object store at ``settings.storage_url`` (``StorageDep``)
    and adds it to the readiness checks. ``body_limit_exempt`` lists routes whose bodies
    the route limits itself (uploads): a string is a path prefix, a compiled pattern must
    match the whole path. ``middleware`` (raw ASGI, first listed outermost) runs inside the
    kit's request context (request id, span, metrics, access log, body limit) and outside
    FastAPI's routing: a data-plane route that must not pay for dependency solving serves
    itself there (ModelOps' predict).
    """
    service = settings.service
    metrics = ServiceMetrics(service)
    checks: dict[str, ReadyCheck] = {"database": lambda a: a.state.db.ping()}
    if storage:
        checks["storage"] = lambda a: a.state.storage.ping()
    checks.update(ready_checks or {})

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level, settings.log_json)
        db = Database(settings.database_url, schema=settings.database_schema)
        app.state.db = db
        await db.prepare()
        if migrations is not None and settings.migrate_on_start:
            await upgrade_async(
                migrations, settings.database_url, service=service, schema=settings.database_schema
            )
        if storage:
            from inwire.kit.storage import open_object_store

            app.state.storage = open_object_store(settings.storage_url)
        keys = key_source or JWKSKeySource(settings.jwks_url)
        app.state.verifier = TokenVerifier(keys, issuer=settings.issuer, audience=settings.audience)
        try:
            if lifespan is not None:
                async with lifespan(app):
                    yield
            else:
                yield
        finally:
            if storage:
                await app.state.storage.close()
            await db.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        lifespan=app_lifespan,
        # The kit makes its own server span, metrics and access log (RequestContextMiddleware);
        # FastAPI's native telemetry would make each a second time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.router.route_class = APIRouter().route_class

    app.add_exception_handler(InwireError, _on_inwire_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)

    # Starlette puts each added middleware outside those added before it: these first, so
    # that the request context below wraps them.
    for inner in reversed(middleware):
        app.add_middleware(inner.cls, *inner.args, **inner.kwargs)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
            ],
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        tracer=configure_tracing(service),
        max_body_bytes=settings.max_body_bytes,
        body_limit_exempt=body_limit_exempt,
    )

    health = APIRouter(tags=["health"])

    @health.get("/health")
    async def health_basic() -> dict[str, Any]:
        """Basic liveness: the process answers."""
        return {"status": "ok", "service": service, "version": __version__}

    @health.get("/health/live")
    async def health_live() -> dict[str, Any]:
        """Kubernetes liveness probe."""
        return {"status": "ok", "service": service}

    @health.get("/health/ready", responses={503: {"model": ErrorBody}})
    async def health_ready(request: Request) -> Response:
        """Readiness: every dependency answers; 503 names the ones that do not."""
        results: dict[str, str] = {}
        failed: list[dict[str, str]] = []
        for name, check in checks.items():
            try:
                await check(request.app)
                results[name] = "ok"
            except Exception as exc:
                results[name] = "fail"
                failed.append({"field": name, "message": f"{type(exc).__name__}: {exc}"[:300]})
        if failed:
            names = ", ".join(f["field"] for f in failed)
            return error_response(503, "NOT_READY", f"Not ready: {names}", failed)
        return JSONResponse({"status": "ready", "service": service, "checks": results})

    @health.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of this service's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(health)
    for router in routers:
        app.include_router(router, prefix="/api/v1", responses=ERROR_RESPONSES)
    for router in root_routers:
        app.include_router(router)
    return app


def concept_routers(package: str, concepts: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """A service's routers from its concepts' ``<package>.<concept>.router`` modules: the
    ``/api/v1`` ones (``routers``, or the one ``router``) and those mounted at ``/``
    (``root_routers``), then the kit's jobs router. A concept without a router module (one
    that only has tables) contributes none."""
    routers: list[Any] = []
    root_routers: list[Any] = []
    for name in concepts:
        module_name = f"{package}.{name}.router"
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if hasattr(module, "routers") or hasattr(module, "router"):
            routers.extend(getattr(module, "routers", None) or [module.router])
        root_routers.extend(getattr(module, "root_routers", []))
    routers.append(jobs_router())
    return routers, root_routers
