"""Streaming HTTP and WebSocket proxying to a service's port through aiohttp.

Bodies flow chunk by chunk in both directions and are never held whole: the request body
is an async generator over the ASGI ``receive`` (uvicorn stops reading the socket while a
chunk waits), the response is read with ``iter_any`` (whatever bytes arrived, so
server-sent events pass at once) and written with ASGI ``send`` (which waits while the
client's socket is full). Memory per request is bounded by those buffers (~64 KiB each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from inwire.gateway.breaker import CircuitBreaker
from inwire.gateway.exchange import (
    BodyTooLarge,
    ClientGone,
    RawHeaders,
    RequestBody,
    ResponseWriter,
    connection_listed,
    error_body,
)
from inwire.gateway.routes import Upstream

log = logging.getLogger("inwire.gateway.proxy")

#: Methods that may be sent again (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_SERVER_SET = frozenset({b"date", b"server"})
#: A response at most this big (by Content-Length) is read whole and sent in one message.
SMALL_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Timeouts, retries and limits of the HTTP transport."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    keepalive: float = 4.0
    max_connections: int = 1000
    retries: int = 2
    backoff: float = 0.05


class UpstreamFailure(Exception):
    """The upstream could not be reached, did not answer in time or broke the connection."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class HttpTransport:
    """Proxies to upstreams over HTTP with one pooled aiohttp session and a breaker each."""

    def __init__(
        self,
        policy: ProxyPolicy,
        breakers: Mapping[str, CircuitBreaker],
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.policy = policy
        self.breakers = breakers
        self._on_failure = on_failure or (lambda upstream, kind: None)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=policy.max_connections,
                keepalive_timeout=policy.keepalive,
                ttl_dns_cache=10,
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=policy.connect_timeout, sock_read=policy.read_timeout
            ),
            # Bytes pass as the service sent them; the client asked for its own encoding.
            auto_decompress=False,
            # Never keep one caller's cookies for the next one.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Services are addressed directly; an HTTP(S)_PROXY meant for the internet must
            # not capture this traffic.
            trust_env=False,
            # Send what the client sent, nothing aiohttp would add on its own.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )

    async def close(self) -> None:
        """Close pooled connections."""
        await self.session.close()

    # -- HTTP ----------------------------------------------------------------------------------

    async def forward(
        self,
        upstream: Upstream,
        scope: Scope,
        receive: Receive,
        headers: RawHeaders,
        body: RequestBody | None,
        writer: ResponseWriter,
    ) -> None:
        """Send the request to ``upstream`` and stream its answer through ``writer``.

        Raises ``UpstreamFailure`` (nothing sent to the client yet), ``BodyTooLarge`` or
        ``ClientGone``.
        """
        breaker = self.breakers[upstream.name]
        if not breaker.allow():
            raise UpstreamFailure(
                503,
                "SERVICE_UNAVAILABLE",
                f"Service '{upstream.name}' is unavailable (circuit open after repeated "
                "failures); try again shortly",
                retry_after=breaker.retry_after,
            )
        method: str = scope["method"]
        url = _upstream_url(upstream.url, upstream.prefix, scope)
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        attempt = 0
        try:
            while True:
                try:
                    response = await self.session.request(
                        method,
                        url,
                        headers=sent,
                        data=body.stream() if body is not None else None,
                        allow_redirects=False,
                        compress=False,
                    )
                    break
                except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                    self._body_failure(body)
                    # Nothing was answered; only an idempotent request whose body was not
                    # read yet can be sent again as it was (RFC 9110 §9.2.2).
                    if (
                        method in IDEMPOTENT
                        and (body is None or not body.started)
                        and attempt < self.policy.retries
                    ):
                        attempt += 1
                        delay = self.policy.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1)
                        log.warning(
                            "retrying %s %s after %s (retry %d of %d)",
                            method,
                            upstream.name,
                            type(exc).__name__,
                            attempt,
                            self.policy.retries,
                        )
                        await asyncio.sleep(delay)
                        continue
                    breaker.failure()
                    kind = "connect" if isinstance(exc, aiohttp.ClientConnectorError) else "reset"
                    self._on_failure(upstream.name, kind)
                    raise UpstreamFailure(
                        503 if kind == "connect" else 502,
                        "SERVICE_UNAVAILABLE" if kind == "connect" else "BAD_GATEWAY",
                        f"Service '{upstream.name}' is unreachable"
                        if kind == "connect"
                        else f"Service '{upstream.name}' closed the connection without answering",
                        retry_after=1,
                    ) from exc
                except TimeoutError as exc:
                    self._body_failure(body)
                    breaker.failure()
                    self._on_failure(upstream.name, "timeout")
                    raise UpstreamFailure(
                        504,
                        "UPSTREAM_TIMEOUT",
                        f"Service '{upstream.name}' did not answer within "
                        f"{self.policy.read_timeout:g} s",
                    ) from exc
                except aiohttp.ClientError as exc:
                    self._body_failure(body)
                    breaker.failure()
                    self._on_failure(upstream.name, "protocol")
                    raise UpstreamFailure(
                        502,
                        "BAD_GATEWAY",
                        f"Service '{upstream.name}' sent an invalid answer: {type(exc).__name__}",
                    ) from exc
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        try:
            await self._relay(upstream, response, receive, writer)
        finally:
            response.release()

    @staticmethod
    def _body_failure(body: RequestBody | None) -> None:
        """A failure caused by the client's body is the client's error, not the upstream's."""
        # aiohttp reports the body generator's own exception as a connection error.
        if body is not None and body.too_large:
            raise BodyTooLarge
        if body is not None and body.gone:
            raise ClientGone

    async def _relay(
        self,
        upstream: Upstream,
        response: aiohttp.ClientResponse,
        receive: Receive,
        writer: ResponseWriter,
    ) -> None:
        length = response.content_length
        # The gateway's server sets its own Date and Server.
        headers = [(k, v) for k, v in response.raw_headers if k.lower() not in _SERVER_SET]
        await writer.start(response.status, headers)
        if length is not None and length <= SMALL_BODY:
            try:
                data = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s broke off its response: %s", upstream.name, exc)
                return
            await writer.body(data, more=False)
            return
        # A stream of unknown length (server-sent events, chunked) may never end by itself,
        # so a client that leaves must end it here.
        watcher = None if length is not None else asyncio.create_task(_until_gone(receive))
        if watcher is not None:
            watcher.add_done_callback(lambda _: response.close())
        try:
            async for chunk in response.content.iter_any():
                await writer.body(chunk, more=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Too late for an error status: ending without the last chunk tells the client
            # the body is incomplete.
            if watcher is None or not watcher.done():
                log.warning("%s broke off its response: %s", upstream.name, exc)
            return
        finally:
            if watcher is not None:
                watcher.cancel()
        await writer.body(b"", more=False)

    # -- WebSocket -----------------------------------------------------------------------------

    async def websocket(
        self,
        upstream: Upstream,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: RawHeaders,
    ) -> None:
        """Connect to the upstream's WebSocket, accept the client's and relay both ways."""
        breaker = self.breakers[upstream.name]
        if not breaker.allow():
            await deny_websocket(
                scope,
                send,
                503,
                "SERVICE_UNAVAILABLE",
                f"Service '{upstream.name}' is unavailable (circuit open)",
            )
            return
        url = _upstream_url(upstream.url.replace("http", "ws", 1), upstream.prefix, scope)
        protocols = tuple(scope.get("subprotocols") or ())
        dropped = connection_listed(headers) | {
            b"sec-websocket-key",
            b"sec-websocket-version",
            b"sec-websocket-extensions",
            b"sec-websocket-protocol",
        }
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k not in dropped]
        try:
            ws = await self.session.ws_connect(
                url, headers=sent, protocols=protocols, autoping=True, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            breaker.success()
            await deny_websocket(
                scope, send, exc.status, "WEBSOCKET_REFUSED", f"Service refused: {exc.message}"
            )
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            breaker.failure()
            self._on_failure(upstream.name, "connect")
            await deny_websocket(
                scope,
                send,
                503,
                "SERVICE_UNAVAILABLE",
                f"Service '{upstream.name}' is unreachable: {type(exc).__name__}",
            )
            return
        breaker.success()
        await send({"type": "websocket.accept", "subprotocol": ws.protocol})
        async with ws:
            await _relay_websocket(ws, receive, send)


async def _until_gone(receive: Receive) -> None:
    """Return when the client disconnects (other messages are dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _upstream_url(base: str, prefix: str, scope: Scope) -> URL:
    """The service's URL for this request: the gateway prefix taken off the path, which
    goes on, with the query, exactly as the client encoded it."""
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    encoded_prefix = prefix.encode()
    if raw.startswith(encoded_prefix):
        local = raw[len(encoded_prefix) :].decode("latin-1")
    else:
        # The client percent-encoded part of the prefix itself: encode the decoded rest.
        local = quote(path[len(prefix) :], safe="/:@!$&'()*+,;=-._~")
    query: bytes = scope.get("query_string", b"")
    target = base + (local or "/")
    if query:
        target += "?" + query.decode("latin-1")
    return URL(target, encoded=True)


async def _relay_websocket(
    ws: aiohttp.ClientWebSocketResponse, receive: Receive, send: Send
) -> None:
    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if message.get("text") is not None:
                    await ws.send_str(message["text"])
                elif message.get("bytes") is not None:
                    await ws.send_bytes(message["bytes"])
            elif kind == "websocket.disconnect":
                await ws.close(code=int(message.get("code", 1000)))
                return

    async def upstream_to_client() -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type is aiohttp.WSMsgType.ERROR:
                break
        code = ws.close_code or 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    tasks = [
        asyncio.create_task(client_to_upstream()),
        asyncio.create_task(upstream_to_client()),
    ]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    del pending


async def deny_websocket(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: RawHeaders | None = None,
) -> None:
    """Refuse a WebSocket handshake with an HTTP error envelope (ASGI ``websocket.http.response``
    extension) or, where the server lacks it, a close with a policy-violation code."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = error_body(code, message)
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    # RFC 6455 §7.4.1: 1008 policy violation; 1013 try again later.
    await send({"type": "websocket.close", "code": 1008 if status < 500 else 1013})


def response_headers_of(error: UpstreamFailure) -> dict[str, str]:
    """``Retry-After`` for a failure that will likely pass."""
    if error.retry_after > 0:
        return {"Retry-After": str(max(1, int(error.retry_after + 0.999)))}
    return {}
