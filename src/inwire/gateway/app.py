"""The gateway: one ASGI app in front of every service, on port 8080.

For each request it assigns the request id, continues or starts the W3C trace, finds the
service by prefix, authenticates (``inwire.kit.auth.apikeys``), spends the caller's rate-limit
budget (``inwire.gateway.limits``), and streams the request to the service and the answer
back (``inwire.gateway.proxy``); it answers its own ``/health``, ``/health/live``,
``/health/ready`` (every service ready), ``/metrics`` and ``/docs``. Errors it raises itself
use the platform's envelope ``{"error": {"code", "message", "details"}}``.

Stack, chosen by measurement (2 CPUs, Python 3.11, loopback; a minimal uvicorn upstream
answering 88 bytes of JSON; a bare proxy of each kind, ~30 lines each, written for the
comparison and not kept; aiohttp load generator, keep-alive, 3000 requests after 200 of
warm-up, best of 2 rounds, three runs alternated; the ranges are the spread of the runs)::

    server (upstream client)             1 conn req/s   p50 ms   32 conns req/s
    upstream directly                       3700-4600   0.20-0.26   5800-16500
    aiohttp.web (aiohttp)                   1570-1650   0.56-0.63   3700-6200
    raw ASGI on uvicorn+httptools (aiohttp) 1530-1750   0.55-0.64   4400-8500
    raw ASGI on uvicorn+h11 (aiohttp)            1354        0.70         3570
    raw ASGI on uvicorn+httptools (httpx)         853        1.10          365

aiohttp.web and a raw ASGI app under uvicorn (httptools, uvloop) are equal within the
noise of this machine; httpx as the upstream client collapses under concurrency (365 req/s
at 32 connections, as the issue and ``kit/peers.py`` found). We take the raw ASGI app on
uvicorn with an ``aiohttp.ClientSession`` upstream: it runs under the same server and the
same ``inwire.allinone.serve`` path as every service, and in ``inwire up --one-process`` it
sits in front of the mounted apps and calls them in process, with no socket in between.
The finished gateway in front of Core (``bench/bench_gateway.py``, authenticated
``GET /auth/me``, same machine while busy with other work): 85 % of direct throughput and
+0.5 ms at p50 with 1 connection, 100 % and +1.0 ms with 32; Core spends ~3.5 ms of CPU per
call, the gateway ~0.85 ms, most of it in uvicorn and aiohttp. A client's JWT is verified
once and then remembered until it expires: verifying it on every request cost ~0.3-0.7 ms
of CPU (PyJWT checks the base64 alphabet character by character before the signature).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inwire import __version__
from inwire.contracts.core import CoreClient
from inwire.gateway import docs
from inwire.gateway.breaker import CircuitBreaker, CircuitState
from inwire.gateway.exchange import (
    BodyTooLarge,
    ClientGone,
    RawHeaders,
    RequestBody,
    ResponseWriter,
    connection_listed,
)
from inwire.gateway.limits import RateLimitPolicy
from inwire.gateway.proxy import (
    HttpTransport,
    ProxyPolicy,
    UpstreamFailure,
    deny_websocket,
    response_headers_of,
)
from inwire.gateway.routes import (
    DOC_PATHS,
    Match,
    RouteTable,
    Upstream,
    has_dot_segment,
    upstreams_from_registry,
)
from inwire.gateway.settings import GatewaySettings
from inwire.gateway.traefik import FORWARD_AUTH_PATH
from inwire.kit.auth.apikeys import Authenticator, Identity, credentials_from
from inwire.kit.auth.tokens import JWKSKeySource, KeySource, StaticKeySource, TokenVerifier
from inwire.kit.errors import InwireError, Unauthorized
from inwire.kit.ids import new_id
from inwire.kit.observability import (
    ServiceMetrics,
    configure_logging,
    configure_tracing,
    org_var,
    principal_var,
    request_id_var,
)
from inwire.kit.ratelimit import RateLimiter, open_rate_limiter

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from inwire.services.registry import ServiceSpec

log = logging.getLogger("inwire.gateway")
access_log = logging.getLogger("inwire.gateway.access")

#: Request headers the gateway sets itself (or must not pass on) rather than forward.
_REPLACED = frozenset(
    {
        b"host",
        b"x-request-id",
        b"x-api-key",
        b"traceparent",
        b"tracestate",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"expect",
        # The platform's internal secret proves a call comes from a service; one arriving
        # from outside is dropped, never passed on (kit.auth.internal).
        b"x-inwire-internal",
    }
)
_OWN_PATHS = frozenset({"/", "/health", "/health/live", "/health/ready", "/metrics", "/docs"})
_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"


@dataclass
class _Running:
    """What exists between startup and shutdown."""

    authenticator: Authenticator
    limiter: RateLimiter | None
    transport: HttpTransport | None
    core: CoreClient | None


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header's value (the first), or None."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


@dataclass(slots=True)
class _Request:
    """What one request has gathered on its way through."""

    scope: Scope
    receive: Receive
    writer: ResponseWriter
    request_id: str
    authorization: str | None = None
    api_key: str | None = None
    content_length: str | None = None
    chunked: bool = False
    upstream: str = ""
    client: str = ""


class GatewayMetrics(ServiceMetrics):
    """The services' request metrics plus the gateway's own."""

    def __init__(self) -> None:
        super().__init__("gateway")
        self.upstream_failures = Counter(
            "inwire_gateway_upstream_failures",
            "Requests a service could not answer (connect, reset, timeout, protocol)",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "inwire_gateway_rate_limited",
            "Requests refused by the rate limit",
            ["group"],
            registry=self.registry,
        )
        self.circuit = Gauge(
            "inwire_gateway_circuit_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            ["upstream"],
            registry=self.registry,
        )


_CIRCUIT_LEVEL = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class _EnvelopeCORS(CORSMiddleware):
    """Starlette's CORS, answering a refused preflight in the error envelope."""

    def preflight_response(self, request_headers: Any) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        message = bytes(response.body).decode() or "CORS preflight refused"
        headers = {k: v for k, v in response.headers.items() if k.lower() == "vary"}
        return JSONResponse(
            {"error": {"code": "CORS_REJECTED", "message": message, "details": []}},
            status_code=response.status_code,
            headers=headers,
        )


class Gateway:
    """The gateway as an ASGI app (see the module docstring).

    ``upstreams`` are proxied over HTTP; with ``inner`` (one-process mode) every upstream is
    that ASGI app instead, called in process with the original path, and ``inner_lifespan``
    runs inside the gateway's own.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        upstreams: Sequence[Upstream],
        *,
        inner: ASGIApp | None = None,
        inner_lifespan: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.routes = RouteTable(upstreams, settings.public_paths)
        self.policy = RateLimitPolicy(settings)
        self.metrics = GatewayMetrics()
        self.breakers = {
            u.name: CircuitBreaker(
                failures=settings.breaker_failures, open_seconds=settings.breaker_open_seconds
            )
            for u in upstreams
        }
        self.inner = inner
        self.inner_lifespan = inner_lifespan
        self.running: _Running | None = None
        self._tracer = configure_tracing("gateway")
        self._docs_index = docs.index_page(upstreams)
        self._app: ASGIApp = self._dispatch
        if settings.cors_origins:
            self._app = _EnvelopeCORS(
                self._dispatch,
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
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)

    # -- life cycle ------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        await receive()  # lifespan.startup
        try:
            async with self.lifespan(scope.get("state")):
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except BaseException as exc:
            log.exception("gateway %s failed", "shutdown" if started else "startup")
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": f"{type(exc).__name__}: {exc}"})
            if not isinstance(exc, Exception):
                raise
            return
        await send({"type": "lifespan.shutdown.complete"})

    def lifespan(self, state: dict[str, Any] | None = None) -> AbstractAsyncContextManager[None]:
        """Open clients and the limiter (and the inner app's lifespan); close them after."""
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def running() -> AsyncIterator[None]:
            settings = self.settings
            configure_logging("gateway", settings.log_level, settings.log_json)
            async with AsyncExitStack() as stack:
                if self.inner_lifespan is not None:
                    inner_state = await stack.enter_async_context(self.inner_lifespan())
                    if inner_state and state is not None:
                        state.update(inner_state)
                transport = None
                if self.inner is None:
                    transport = HttpTransport(
                        ProxyPolicy(
                            connect_timeout=settings.connect_timeout_seconds,
                            read_timeout=settings.upstream_timeout_seconds,
                            keepalive=settings.upstream_keepalive_seconds,
                            max_connections=settings.upstream_max_connections,
                            retries=settings.retries,
                            backoff=settings.retry_backoff_seconds,
                        ),
                        self.breakers,
                        on_failure=self._count_failure,
                    )
                    stack.push_async_callback(transport.close)
                core = self._core_client()
                if core is not None:
                    stack.push_async_callback(core.close)
                limiter = None
                if settings.rate_limit_enabled:
                    limiter = open_rate_limiter(
                        settings.cache_url, key_prefix=settings.rate_limit_prefix
                    )
                    stack.push_async_callback(limiter.close)
                verifier = TokenVerifier(
                    self._key_source(),
                    issuer=settings.issuer,
                    audience=settings.audience,
                    cache_size=settings.token_cache_size,
                )
                authenticator = Authenticator(
                    verifier,
                    core,
                    cache_seconds=settings.api_key_cache_seconds,
                    cache_size=settings.api_key_cache_size,
                )
                self.running = _Running(authenticator, limiter, transport, core)
                try:
                    yield
                finally:
                    self.running = None

        return running()

    def _core_client(self) -> CoreClient | None:
        core = self.routes.by_name.get("core")
        if core is None:
            return None
        timeout = self.settings.upstream_timeout_seconds
        if self.inner is not None:
            return CoreClient(f"http://inwire{core.prefix}", app=self.inner, timeout=timeout)
        return CoreClient(core.url, timeout=timeout)

    def _key_source(self) -> KeySource:
        url = self.settings.jwks_url
        core = self.routes.by_name.get("core")
        if url:
            return JWKSKeySource(url)
        if core is None:
            return StaticKeySource({"keys": []})
        if self.inner is not None:
            return JWKSKeySource(
                f"inprocess:{core.prefix}/.well-known/jwks.json", fetch=self._inner_jwks
            )
        return JWKSKeySource(f"{core.url}/.well-known/jwks.json")

    async def _inner_jwks(self) -> Mapping[str, Any]:
        import json

        core = self.routes.by_name["core"]
        status, body = await _call_inner(self.inner, f"{core.prefix}/.well-known/jwks.json")
        if status != 200:
            raise RuntimeError(f"JWKS answered {status}")
        document: Mapping[str, Any] = json.loads(body)
        return document

    def _transport(self) -> HttpTransport:
        running = self.running
        if running is None or running.transport is None:
            raise RuntimeError("the gateway is not started, or proxies in process")
        return running.transport

    def _count_failure(self, upstream: str, kind: str) -> None:
        self.metrics.upstream_failures.labels(upstream, kind).inc()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = self._request(scope, receive, send)
        writer = request.writer
        method: str = scope["method"]
        path: str = scope["path"]
        rid_token = request_id_var.set(request.request_id)
        principal_token = principal_var.set(None)
        org_token = org_var.set(None)
        metrics = self.metrics
        metrics.in_flight.labels("gateway").inc()
        try:
            with self._tracer.start_as_current_span(
                f"{method} gateway",
                context=propagate.extract(_trace_carrier(scope)),
                kind=SpanKind.SERVER,
            ) as span:
                try:
                    await self._handle(request, method, path)
                except ClientGone:
                    writer.status = writer.status or 499
                except Exception:
                    log.exception("unhandled error", extra={"path": path})
                    if not writer.started:
                        await writer.error(
                            500,
                            "INTERNAL_ERROR",
                            "Internal error; quote the request id when reporting it",
                            [{"message": "request id", "request_id": request.request_id}],
                        )
                span.set_attribute("http.status_code", writer.status)
                if request.upstream:
                    span.update_name(f"{method} {request.upstream}")
        finally:
            metrics.in_flight.labels("gateway").dec()
            label = request.upstream or "gateway"
            metrics.observe(method, label, writer.status, started)
            if self.settings.access_log and not (
                label == "gateway" and path.startswith(("/health", "/metrics"))
            ):
                access_log.info(
                    "%s %s %s",
                    method,
                    path,
                    writer.status,
                    extra={
                        "method": method,
                        "path": path,
                        "status": writer.status,
                        "upstream": request.upstream or None,
                        "client": request.client,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            org_var.reset(org_token)
            principal_var.reset(principal_token)
            request_id_var.reset(rid_token)

    def _request(self, scope: Scope, receive: Receive, send: Send) -> _Request:
        incoming = None
        authorization = api_key = content_length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        rid = (
            incoming
            if incoming and len(incoming) <= 128 and incoming.isprintable()
            else new_id("req")
        )
        client = scope.get("client")
        writer = ResponseWriter(send, [(b"x-request-id", rid.encode())])
        return _Request(
            scope=scope,
            receive=receive,
            writer=writer,
            request_id=rid,
            authorization=authorization,
            api_key=api_key,
            content_length=content_length,
            chunked=chunked,
            client=client[0] if client else "",
        )

    async def _handle(self, request: _Request, method: str, path: str) -> None:
        writer = request.writer
        if path == FORWARD_AUTH_PATH:
            await self._forward_auth(request)
            return
        if path in _OWN_PATHS:
            await self._own(request, method, path)
            return
        if has_dot_segment(path):
            await writer.error(400, "INVALID_PATH", "Paths with '.' or '..' segments are refused")
            return
        match = self.routes.match(path)
        if match is None:
            await writer.error(
                404,
                "NOT_FOUND",
                f"No service at {path}",
                [{"field": "path", "message": "known prefixes: " + self._prefixes()}],
            )
            return
        upstream = match.upstream
        request.upstream = upstream.name
        if match.local_path in DOC_PATHS and method in ("GET", "HEAD"):
            await self._service_docs(request, match)
            return
        identity = None
        if not self.routes.is_public(path, match.local_path):
            identity = await self._authenticate(request)
            if identity is None:
                return
        if not await self._spend(request, path, identity):
            return
        limit = self.settings.max_body_bytes
        declared = request.content_length
        if limit and declared is not None and declared.isdigit() and int(declared) > limit:
            await writer.error(
                413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes", [{"limit": limit}]
            )
            return
        headers = self._upstream_headers(request, upstream, identity)
        has_body = request.chunked or (declared is not None and declared not in ("", "0"))
        body = RequestBody(request.receive, limit) if has_body or self.inner else None
        try:
            if self.inner is not None:
                assert body is not None
                await self._in_process(request, headers, body)
            else:
                await self._transport().forward(
                    upstream, request.scope, request.receive, headers, body, writer
                )
        except UpstreamFailure as failure:
            if not writer.started:
                await writer.error(
                    failure.status,
                    failure.code,
                    failure.message,
                    [{"service": upstream.name}],
                    response_headers_of(failure),
                )
        except BodyTooLarge:
            if not writer.started:
                await writer.error(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"Request body exceeds {limit} bytes",
                    [{"limit": limit}],
                )

    async def _forward_auth(self, request: _Request) -> None:
        """Traefik's ForwardAuth: decide for the request Traefik describes in its headers.

        200 lets it through (with ``Authorization: Bearer <jwt>`` for Traefik to pass on,
        an API key exchanged like any other); anything else is the answer the client gets.
        """
        writer = request.writer
        forwarded = _header(request.scope, b"x-forwarded-uri") or "/"
        path = urlsplit(forwarded).path or "/"
        match = self.routes.match(path)
        if match is None:
            await writer.error(404, "NOT_FOUND", f"No service at {path}")
            return
        request.upstream = match.upstream.name
        if self.routes.is_public(path, match.local_path):
            await writer.json(200, {"status": "public"})
            return
        identity = await self._authenticate(request)
        if identity is None or not await self._spend(request, path, identity):
            return
        await writer.json(
            200,
            {"status": "ok", "principal": identity.principal.subject},
            [(b"authorization", f"Bearer {identity.token}".encode())],
        )

    def _prefixes(self) -> str:
        return ", ".join(sorted(u.prefix for u in self.routes.upstreams))

    async def _authenticate(self, request: _Request) -> Identity | None:
        """The caller, or None after answering 401/429/503 for them."""
        running = self.running
        assert running is not None
        writer = request.writer
        try:
            credentials = credentials_from(request.authorization, request.api_key)
            if credentials is None:
                raise Unauthorized("Authentication required: a bearer token or an API key")
            # Each exchange costs Core a key look-up: it spends the client address's
            # anonymous budget, so guessing keys is as slow as any anonymous traffic.
            key = credentials.api_key
            if (
                key is not None
                and not running.authenticator.is_cached(key)
                and not await self._spend(request, "", None, record=False)
            ):
                return None
            identity = await running.authenticator.authenticate(credentials)
        except InwireError as exc:
            await writer.error(exc.status, exc.code, exc.message, exc.details, exc.headers)
            return None
        principal_var.set(identity.principal.subject)
        org_var.set(identity.principal.org)
        return identity

    async def _spend(
        self, request: _Request, path: str, identity: Identity | None, *, record: bool = True
    ) -> bool:
        """Spend the request's budget; False after answering 429. ``record`` puts the
        ``RateLimit-*`` headers on the response."""
        limiter = self.running.limiter if self.running is not None else None
        if limiter is None:
            return True
        principal = identity.principal if identity is not None else None
        budget = self.policy.budget(
            path,
            subject=principal.subject if principal is not None else None,
            org=principal.org if principal is not None else None,
            client=request.client,
        )
        try:
            decision = await limiter.hit(budget.key, budget.limit)
        except Exception as exc:
            # A limiter that cannot answer (Redis down) must not take the platform down
            # with it: the request passes and the failure is logged.
            log.warning("rate limiter unavailable, request let through: %s", exc)
            return True
        headers = decision.headers()
        if decision.allowed:
            if record:
                request.writer.added.extend(
                    (k.lower().encode(), v.encode()) for k, v in headers.items()
                )
            return True
        self.metrics.rate_limited.labels(budget.group).inc()
        await request.writer.error(
            429,
            "RATE_LIMITED",
            "Too many requests; retry after the time in Retry-After",
            [{"group": budget.group, "limit": decision.limit}],
            headers,
        )
        return False

    def _upstream_headers(
        self, request: _Request, upstream: Upstream, identity: Identity | None
    ) -> RawHeaders:
        scope = request.scope
        incoming: RawHeaders = scope["headers"]
        dropped = connection_listed(incoming) | _REPLACED
        if identity is not None and identity.from_api_key:
            dropped = dropped | {b"authorization"}
        host = b""
        headers: RawHeaders = []
        for name, value in incoming:
            if name == b"host":
                host = value
            if name not in dropped:
                headers.append((name, value))
        if identity is not None and identity.from_api_key:
            headers.append((b"authorization", b"Bearer " + identity.token.encode()))
        headers.append((b"x-request-id", request.request_id.encode()))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.extend((k.encode(), v.encode()) for k, v in carrier.items())
        if request.client:
            headers.append((b"x-forwarded-for", request.client.encode()))
        headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        if host:
            headers.append((b"x-forwarded-host", host))
        headers.append((b"x-forwarded-prefix", upstream.prefix.encode()))
        return headers

    async def _in_process(self, request: _Request, headers: RawHeaders, body: RequestBody) -> None:
        """Call the inner app with the gateway's headers (one-process mode)."""
        assert self.inner is not None
        writer = request.writer
        scope = dict(request.scope)
        # The inner app sees the Host too: it routes and builds URLs with it.
        scope["headers"] = [
            *headers,
            *((k, v) for k, v in request.scope["headers"] if k == b"host"),
        ]
        replaced = False

        async def send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                if body.too_large:
                    replaced = True
                    limit = self.settings.max_body_bytes
                    await writer.error(
                        413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes"
                    )
                    return
                await writer.start(int(message["status"]), message.get("headers", []))
            elif message["type"] == "http.response.body" and not replaced:
                await writer.body(message.get("body", b""), more=message.get("more_body", False))

        await self.inner(scope, body.receive_counted, send)

    # -- the gateway's own routes ---------------------------------------------------------------

    async def _own(self, request: _Request, method: str, path: str) -> None:
        writer = request.writer
        if method not in ("GET", "HEAD"):
            await writer.error(
                405, "METHOD_NOT_ALLOWED", "Method not allowed", headers={"Allow": "GET, HEAD"}
            )
            return
        if path in ("/health", "/health/live"):
            payload: dict[str, Any] = {"status": "ok", "service": "gateway"}
            if path == "/health":
                payload["version"] = __version__
            await writer.json(200, payload)
        elif path == "/health/ready":
            await self._ready(writer)
        elif path == "/metrics":
            for name, breaker in self.breakers.items():
                self.metrics.circuit.labels(name).set(_CIRCUIT_LEVEL[breaker.state])
            await writer.bytes(
                200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode()
            )
        else:
            await writer.bytes(200, self._docs_index, _HTML)

    async def _ready(self, writer: ResponseWriter) -> None:
        upstreams = sorted(self.routes.upstreams, key=lambda u: u.name)
        results = await asyncio.gather(*(self._upstream_ready(u) for u in upstreams))
        checks = {u.name: status for u, status in zip(upstreams, results, strict=True)}
        failed = [
            {"field": name, "message": status}
            for name, status in checks.items()
            if status != "ready"
        ]
        if failed:
            names = ", ".join(f["field"] for f in failed)
            await writer.error(503, "NOT_READY", f"Not ready: {names}", failed)
            return
        await writer.json(200, {"status": "ready", "service": "gateway", "checks": checks})

    async def _upstream_ready(self, upstream: Upstream) -> str:
        timeout = self.settings.ready_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                if self.inner is not None:
                    status, _ = await _call_inner(self.inner, f"{upstream.prefix}/health/ready")
                else:
                    async with self._transport().session.get(
                        f"{upstream.url}/health/ready", allow_redirects=False
                    ) as response:
                        status = response.status
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ready" if status == 200 else f"not ready ({status})"

    async def _service_docs(self, request: _Request, match: Match) -> None:
        writer = request.writer
        upstream = match.upstream
        if match.local_path == "/docs":
            await writer.bytes(200, docs.swagger_page(upstream), _HTML)
            return
        if match.local_path == "/redoc":
            await writer.bytes(200, docs.redoc_page(upstream), _HTML)
            return
        try:
            status, schema = await self._fetch_schema(upstream)
        except Exception as exc:
            await writer.error(
                503,
                "SERVICE_UNAVAILABLE",
                f"Service '{upstream.name}' did not give its schema: {type(exc).__name__}",
                [{"service": upstream.name}],
            )
            return
        if status != 200:
            await writer.bytes(status, schema, _JSON)
            return
        await writer.bytes(200, docs.prefixed_schema(schema, upstream), _JSON)

    async def _fetch_schema(self, upstream: Upstream) -> tuple[int, bytes]:
        timeout = self.settings.upstream_timeout_seconds
        async with asyncio.timeout(timeout):
            if self.inner is not None:
                return await _call_inner(self.inner, f"{upstream.prefix}/openapi.json")
            async with self._transport().session.get(f"{upstream.url}/openapi.json") as response:
                return response.status, await response.read()

    # -- WebSocket -------------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        statuses: list[int] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "websocket.accept":
                statuses.append(101)
            elif message["type"] == "websocket.http.response.start":
                statuses.append(int(message["status"]))
            elif message["type"] == "websocket.close" and not statuses:
                statuses.append(403)
            await send(message)

        request = self._request(scope, receive, recording_send)
        rid_token = request_id_var.set(request.request_id)
        try:
            await self._handle_websocket(request, path)
        finally:
            status = statuses[0] if statuses else 500
            self.metrics.observe("WEBSOCKET", request.upstream or "gateway", status, started)
            if self.settings.access_log:
                access_log.info(
                    "WEBSOCKET %s %s",
                    path,
                    status,
                    extra={
                        "method": "WEBSOCKET",
                        "path": path,
                        "status": status,
                        "upstream": request.upstream or None,
                        "client": request.client,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(rid_token)

    async def _handle_websocket(self, request: _Request, path: str) -> None:
        scope, send = request.scope, request.writer.send
        rid_header: RawHeaders = [(b"x-request-id", request.request_id.encode())]
        match = None if has_dot_segment(path) else self.routes.match(path)
        if match is None:
            await deny_websocket(scope, send, 404, "NOT_FOUND", f"No service at {path}", rid_header)
            return
        request.upstream = match.upstream.name
        identity = None
        # The handshake goes through a writer that captures a refusal instead of sending it.
        refusal = _Refusal()
        request.writer = ResponseWriter(refusal, [])
        if not self.routes.is_public(path, match.local_path):
            identity = await self._authenticate(request)
        allowed = identity is not None or self.routes.is_public(path, match.local_path)
        if allowed:
            allowed = await self._spend(request, path, identity)
        if not allowed:
            error = refusal.error()
            await deny_websocket(
                scope, send, refusal.status, error["code"], error["message"], rid_header
            )
            return
        headers = self._upstream_headers(request, match.upstream, identity)
        if self.inner is not None:
            inner_scope = dict(scope)
            inner_scope["headers"] = [
                *headers,
                *((k, v) for k, v in scope["headers"] if k == b"host"),
                *((k, v) for k, v in scope["headers"] if k.startswith(b"sec-websocket-")),
            ]
            await self.inner(inner_scope, request.receive, send)
            return
        await self._transport().websocket(match.upstream, scope, request.receive, send, headers)


class _Refusal:
    """An ASGI ``send`` that keeps an error response to replay as a WebSocket refusal."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def error(self) -> dict[str, str]:
        import json

        try:
            err = json.loads(self.body)["error"]
            return {"code": str(err["code"]), "message": str(err["message"])}
        except (ValueError, KeyError, TypeError):
            return {"code": "FORBIDDEN", "message": "Refused"}


def _trace_carrier(scope: Scope) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (b"traceparent", b"tracestate"):
            carrier[name.decode()] = value.decode("latin-1")
    return carrier


async def _call_inner(app: ASGIApp | None, path: str) -> tuple[int, bytes]:
    """``GET path`` on an in-process ASGI app: status and body."""
    assert app is not None
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

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
        "headers": [(b"host", b"inwire"), (b"x-request-id", (request_id_var.get() or "").encode())],
        "client": ("127.0.0.1", 0),
        "server": ("inwire", 80),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    upstreams: Sequence[Upstream] | None = None,
) -> Gateway:
    """The gateway for ``settings`` (default: from the environment), proxying to
    ``upstreams`` (default: every registered service, see ``upstreams_from_registry``)."""
    settings = settings or GatewaySettings()
    if upstreams is None:
        upstreams = upstreams_from_registry(settings)
    return Gateway(settings, upstreams)


def in_front(
    app: Starlette, services: Sequence[ServiceSpec], settings: GatewaySettings | None = None
) -> Gateway:
    """The gateway in front of ``app``, the one-process composition of ``services``.

    Authentication, rate limits, request ids, tracing, CORS, size limits, docs and metrics
    apply as in front of separate processes; the services are called in process, so there
    is no upstream timeout, retry or circuit breaker (there is no network hop to fail).
    """
    upstreams = [Upstream(spec.name, spec.prefix, "inprocess://") for spec in services]
    return Gateway(
        settings or GatewaySettings(),
        upstreams,
        inner=app,
        inner_lifespan=lambda: app.router.lifespan_context(app),
    )


__all__ = ["Gateway", "GatewaySettings", "Upstream", "create_app", "in_front"]
