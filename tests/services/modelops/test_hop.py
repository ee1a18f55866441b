"""The prediction hop's client against real sockets: servers written here answer as a model
server would, or close, stall and garble on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from inwire.services.modelops.deployments.hop import Hop, HopError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's body (None when the client closed the connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def _answer(body: bytes, status: int = 200, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        status,
        len(body),
        extra,
        body,
    )


class Server:
    """A TCP server on a free port; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answers every request with its own body."""
    while (body := await _request(reader)) is not None:
        writer.write(_answer(body))
        await writer.drain()


@pytest.fixture
async def hop() -> AsyncIterator[Hop]:
    client = Hop(timeout=2.0, connect_timeout=1.0)
    try:
        yield client
    finally:
        await client.close()


async def test_keeps_connections_alive_and_runs_requests_concurrently(hop: Hop) -> None:
    server = Server(echo)
    async with server as url:
        for i in range(20):
            assert await hop.post(url, "/predict", b'{"i":%d}' % i) == (200, b'{"i":%d}' % i)
        assert server.connections == 1
        answers = await asyncio.gather(*(hop.post(url, "/predict", b"%d" % i) for i in range(8)))
        assert [a[1] for a in answers] == [b"%d" % i for i in range(8)]
        assert server.connections <= 8


async def test_a_connection_closed_while_idle_is_replaced_without_an_error(hop: Hop) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _request(reader)
        assert body is not None
        writer.write(_answer(body))
        await writer.drain()
        # then closes the kept-alive connection, as a server does after its idle timeout

    server = Server(once)
    async with server as url:
        assert await hop.post(url, "/predict", b"1") == (200, b"1")
        await asyncio.sleep(0.05)
        assert await hop.post(url, "/predict", b"2") == (200, b"2")
        assert server.connections == 2


async def test_connection_close_and_chunked_answers(hop: Hop) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
        )
        await writer.drain()

    server = Server(chunked)
    async with server as url:
        assert await hop.post(url, "/predict", b"x") == (400, b'{"a": 1}')
        assert await hop.post(url, "/predict", b"x") == (400, b'{"a": 1}')
        assert server.connections == 2


async def test_failures_are_hop_errors_or_timeouts(hop: Hop) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await asyncio.sleep(10)

    async with Server(garbage) as url:
        with pytest.raises(HopError, match="malformed"):
            await hop.post(url, "/predict", b"x")
    async with Server(hangs_up) as url:
        with pytest.raises(HopError, match="closed"):
            await hop.post(url, "/predict", b"x")
    quick = Hop(timeout=0.3)
    try:
        async with Server(stalls) as url:
            with pytest.raises(TimeoutError):
                await quick.post(url, "/predict", b"x")
            assert not quick._open  # the stalled connection is not kept
    finally:
        await quick.close()
    # nothing listens there any more
    with pytest.raises(HopError, match="cannot connect"):
        await hop.post(url, "/predict", b"x")
    with pytest.raises(HopError, match="not a model server"):
        await hop.post("https://example.test", "/predict", b"x")


async def test_idle_connections_of_a_gone_replica_are_forgotten() -> None:
    hop = Hop(timeout=2.0, idle_seconds=0.2)
    try:
        gone, alive = Server(echo), Server(echo)
        async with alive as alive_url:
            async with gone as gone_url:
                await asyncio.gather(*(hop.post(gone_url, "/predict", b"1") for _ in range(3)))
            await hop.post(alive_url, "/predict", b"1")
            assert gone_url in hop._idle
            await asyncio.sleep(0.3)
            # the next release past idle_seconds sweeps: the gone replica is forgotten
            await hop.post(alive_url, "/predict", b"2")
            assert gone_url not in hop._idle
            assert gone_url not in hop._origins
            assert len(hop._idle[alive_url]) == 1
            assert len(hop._open) == 1
    finally:
        await hop.close()
