"""One proxied request: what goes upstream, what comes back, and the error envelope.

Both transports (HTTP to a service's port, or an in-process ASGI app) share this: the
request body as a counted stream, the headers sent upstream, and a writer that cleans the
response headers (RFC 9110 §7.6.1 hop-by-hop fields) before they reach the client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from starlette.types import Message, Receive, Send

#: Connection-specific fields that a proxy must not forward (RFC 9110 §7.6.1), plus the
#: obsolete ``Keep-Alive``/``Proxy-Connection`` that RFC 9112 §9.6 names.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

RawHeaders = list[tuple[bytes, bytes]]


class BodyTooLarge(Exception):
    """The request body grew past the gateway's limit while it was streamed."""


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def connection_listed(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Hop-by-hop fields plus the ones a ``Connection`` header names (RFC 9110 §7.6.1)."""
    extra = [
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    ]
    return HOP_BY_HOP.union(extra) if extra else HOP_BY_HOP


def error_body(code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The error envelope as JSON bytes."""
    envelope = {"error": {"code": code, "message": message, "details": list(details)}}
    return json.dumps(envelope, separators=(",", ":")).encode()


class RequestBody:
    """The client's request body as an async stream, counted against ``limit`` (0: none).

    ``started`` tells whether any of it was read (after which a retry cannot replay it).
    """

    __slots__ = ("done", "gone", "limit", "receive", "seen", "started", "too_large")

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.seen = 0
        self.started = False
        self.done = False
        self.too_large = False
        self.gone = False

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield body chunks as they arrive; raises ``BodyTooLarge`` or ``ClientGone``."""
        while not self.done:
            message = await self.receive()
            self.started = True
            if message["type"] == "http.disconnect":
                self.gone = True
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self.done = True
            if chunk:
                self.seen += len(chunk)
                if self.limit and self.seen > self.limit:
                    self.too_large = True
                    raise BodyTooLarge
                yield chunk

    async def receive_counted(self) -> Message:
        """An ASGI ``receive`` for an in-process app, with the same limit."""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.gone = True
        elif message["type"] == "http.request":
            self.started = True
            self.seen += len(message.get("body", b""))
            if self.limit and self.seen > self.limit:
                self.too_large = True
                raise BodyTooLarge
        return message


class ResponseWriter:
    """Sends the response to the client: upstream headers cleaned, the gateway's added."""

    __slots__ = ("added", "send", "started", "status")

    def __init__(self, send: Send, added: RawHeaders) -> None:
        self.send = send
        #: Headers the gateway adds to every response (request id, rate limit).
        self.added = added
        self.started = False
        self.status = 0

    async def start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Send the status line and headers, minus hop-by-hop ones and the upstream's id."""
        headers = list(headers)
        dropped = connection_listed(headers)
        kept = [
            (name, value)
            for name, value in headers
            if (lower := name.lower()) not in dropped and lower != b"x-request-id"
        ]
        kept.extend(self.added)
        self.started = True
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": kept})

    async def body(self, chunk: bytes, *, more: bool) -> None:
        """Send a piece of the body (``more=False`` ends the response)."""
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def error(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with the error envelope (only before the response has started)."""
        body = error_body(code, message, details)
        raw: RawHeaders = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        raw.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        )
        await self.start(status, raw)
        await self.body(body, more=False)

    async def json(self, status: int, payload: Any, headers: RawHeaders | None = None) -> None:
        """Answer with a JSON document."""
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        raw: RawHeaders = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ]
        await self.start(status, raw)
        await self.body(body, more=False)

    async def bytes(self, status: int, body: bytes, content_type: bytes) -> None:
        """Answer with a body of this content type."""
        raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await self.start(status, raw)
        await self.body(body, more=False)
