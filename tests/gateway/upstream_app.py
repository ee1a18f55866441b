"""A real upstream for gateway tests: echo, streams both ways, SSE, WebSocket, slowness.

It is a plain Starlette app served by uvicorn on a real port (in the test's event loop, or
as ``uvicorn upstream_app:app`` in a subprocess for the memory test). Lockstep events in
``app.state`` let a test prove that bytes flow through the gateway before a body ends: the
other side waits for the first chunk to arrive before producing the rest, so a gateway
that buffered whole bodies would deadlock (and the test time out).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

CHUNK = 64 * 1024
LOCKSTEP_TIMEOUT = 10.0


class Lockstep:
    """Events a test and the upstream use to hand the turn to each other."""

    def __init__(self) -> None:
        self.upstream_got_first = asyncio.Event()
        self.client_got_first = asyncio.Event()
        self.client_acks: asyncio.Queue[int] = asyncio.Queue()


async def echo(request: Request) -> Response:
    """What the upstream received: method, path, query and headers."""
    body = await request.body()
    return JSONResponse(
        {
            "data": {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers.items()),
                "body_bytes": len(body),
                "client": request.client.host if request.client else None,
            }
        },
        headers={"Connection": "x-upstream-private", "X-Upstream-Private": "1"},
    )


async def upload(request: Request) -> Response:
    """Count and hash a streamed body; in lockstep mode, signal the first chunk."""
    lockstep: Lockstep | None = request.app.state.lockstep
    digest = hashlib.sha256()
    total = 0
    async for chunk in request.stream():
        if chunk and total == 0 and lockstep is not None:
            lockstep.upstream_got_first.set()
        total += len(chunk)
        digest.update(chunk)
    return JSONResponse({"data": {"bytes": total, "sha256": digest.hexdigest()}})


def _pattern(size: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        block = bytes(range(256)) * (CHUNK // 256)
        left = size
        while left > 0:
            piece = block[: min(CHUNK, left)]
            left -= len(piece)
            yield piece

    return chunks()


async def download(request: Request) -> Response:
    """``size`` bytes of a repeating pattern, chunked or (``length=1``) with a length."""
    size = int(request.query_params.get("size", "1048576"))
    lockstep: Lockstep | None = request.app.state.lockstep

    async def body() -> AsyncIterator[bytes]:
        first = True
        async for chunk in _pattern(size):
            yield chunk
            if first and lockstep is not None:
                first = False
                await asyncio.wait_for(lockstep.client_got_first.wait(), LOCKSTEP_TIMEOUT)

    headers = {"content-length": str(size)} if request.query_params.get("length") else {}
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


async def events(request: Request) -> Response:
    """Server-sent events; each waits for the client's acknowledgement of the previous."""
    count = int(request.query_params.get("count", "3"))
    lockstep: Lockstep | None = request.app.state.lockstep

    async def stream() -> AsyncIterator[bytes]:
        for n in range(count):
            yield f"id: {n}\nevent: tick\ndata: {n}\n\n".encode()
            if lockstep is not None and n < count - 1:
                await asyncio.wait_for(lockstep.client_acks.get(), LOCKSTEP_TIMEOUT)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def slow(request: Request) -> Response:
    """Answer after ``seconds``."""
    await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    return JSONResponse({"data": {"slept": True}})


async def status(request: Request) -> Response:
    """Answer with the status in the path."""
    code = int(request.path_params["code"])
    return JSONResponse({"data": {"status": code}}, status_code=code)


async def ready(_: Request) -> Response:
    """Always ready."""
    return JSONResponse({"status": "ready"})


async def websocket_echo(websocket: WebSocket) -> None:
    """Echo text and bytes; report the Authorization it was given first."""
    await websocket.accept(subprotocol=(websocket.scope.get("subprotocols") or [None])[0])
    await websocket.send_json({"authorization": websocket.headers.get("authorization")})
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            if message["text"] == "close":
                await websocket.close(code=4000)
                return
            await websocket.send_text("echo:" + message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"][::-1])


def create_app(lockstep: Lockstep | None = None) -> Starlette:
    """The upstream app (``lockstep`` for the streaming proofs)."""
    app = Starlette(
        routes=[
            Route("/api/v1/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            Route("/api/v1/upload", upload, methods=["POST", "PUT"]),
            Route("/api/v1/download", download),
            Route("/api/v1/events", events),
            Route("/api/v1/slow", slow),
            Route("/api/v1/status/{code:int}", status),
            Route("/health/ready", ready),
            Route("/openapi.json", lambda _: JSONResponse({"openapi": "3.1.0", "paths": {}})),
            WebSocketRoute("/api/v1/ws", websocket_echo),
        ]
    )
    app.state.lockstep = lockstep
    return app


app = create_app()
