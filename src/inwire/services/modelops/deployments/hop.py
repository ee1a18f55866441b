"""The prediction hop: a keep-alive HTTP/1.1 client for our own model servers.

Every routed prediction is one ``POST /predict`` from ModelOps to a replica on this machine,
so the client's own cost is part of each call's latency. Measured against a replica of the
bench model (one connection, loopback, uvloop): aiohttp 0.58 ms at p50 and 150 µs of
client CPU a call; this client 0.40 ms and 31 µs. It can be that small because its peer is
known: our model server (uvicorn), plain HTTP on loopback, a JSON body of known length. Each
connection is an ``asyncio.Protocol`` with httptools' response parser (the one uvicorn uses
for requests); a request is a single ``write``; idle connections are kept per replica (most
recently used first) and closed after ``idle_seconds``, well before the server's own
keep-alive limit.

A connection that was lost before any byte of the answer arrived is reported as
``HopError`` (the caller tries another replica); when the connection was a reused one (the
server may have closed it while idle) the request is first sent once more on a fresh
connection — a prediction is a pure function of its input, so a repeat is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools


class HopError(ConnectionError):
    """The replica could not be reached, or the connection broke before its answer."""


class _Connection(asyncio.Protocol):
    """One connection to a replica: one request at a time, answers parsed by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.answering = False
        self.keep_alive = False
        self.lost = False
        self.last_used = time.monotonic()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, hence the cast.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.answering = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HopError(f"malformed answer from the model server: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(HopError("the model server closed the connection"))

    # httptools callbacks (whether to keep the connection is only known while its headers
    # are parsed)
    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    # use
    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def reusable(self) -> bool:
        return self.usable() and self.keep_alive

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.answering = self.keep_alive = False
        self.chunks = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.lost = True


class Hop:
    """Pooled ``POST`` to model servers by base URL (``http://host:port``)."""

    def __init__(
        self, *, timeout: float, connect_timeout: float = 5.0, idle_seconds: float = 30.0
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[str, deque[_Connection]] = {}
        self._origins: dict[str, tuple[str, int, bytes]] = {}
        self._open: set[_Connection] = set()
        self._next_sweep = time.monotonic() + idle_seconds

    def _origin(self, base_url: str) -> tuple[str, int, bytes]:
        origin = self._origins.get(base_url)
        if origin is None:
            parts = urlsplit(base_url)
            if parts.scheme != "http" or not parts.hostname or not parts.port:
                raise HopError(f"not a model server address: {base_url!r}")
            origin = (parts.hostname, parts.port, parts.netloc.encode())
            self._origins[base_url] = origin
        return origin

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port)
        except (OSError, TimeoutError) as exc:
            raise HopError(f"cannot connect to {host}:{port}: {exc}") from exc
        self._open.add(conn)
        return conn

    def _reuse(self, base_url: str) -> _Connection | None:
        idle = self._idle.get(base_url)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.last_used < self.idle_seconds:
                return conn
            self._discard(conn)
        return None

    def _release(self, base_url: str, conn: _Connection) -> None:
        if not conn.reusable():
            self._discard(conn)
            return
        conn.last_used = now = time.monotonic()
        self._idle.setdefault(base_url, deque()).append(conn)
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close idle connections past ``idle_seconds`` or closed by their server, and
        forget replicas left with none (a stopped replica's port is not used again)."""
        self._next_sweep = now + self.idle_seconds
        for base_url, idle in list(self._idle.items()):
            keep = deque(c for c in idle if c.usable() and now - c.last_used < self.idle_seconds)
            for conn in idle:
                if conn not in keep:
                    self._discard(conn)
            if keep:
                self._idle[base_url] = keep
            else:
                del self._idle[base_url]
                self._origins.pop(base_url, None)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    async def post(self, base_url: str, path: str, body: bytes) -> tuple[int, bytes]:
        """``POST base_url + path`` with a JSON ``body``: the status and the answer's body.
        ``HopError`` when the server can't be reached; ``TimeoutError`` after ``timeout``."""
        host, port, netloc = self._origin(base_url)
        request = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" % (
            path.encode(),
            netloc,
        ) + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        async with asyncio.timeout(self.timeout):
            conn = self._reuse(base_url)
            if conn is not None:
                try:
                    answer = await self._exchange(conn, request)
                except HopError:
                    if conn.answering:
                        raise
                    # Closed while idle, before answering: once more on a new connection.
                else:
                    self._release(base_url, conn)
                    return answer
            conn = await self._connect(host, port)
            answer = await self._exchange(conn, request)
            self._release(base_url, conn)
            return answer

    async def _exchange(self, conn: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            return await conn.exchange(request)
        except BaseException:
            # A failed, timed-out or cancelled exchange leaves the connection unusable.
            self._discard(conn)
            raise

    async def close(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
