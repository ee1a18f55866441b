"""ServiceClient: the same behaviour in process (ASGI) and over real HTTP (uvicorn)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from inwire.kit.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InwireError,
    NotFound,
    TooManyRequests,
    Unavailable,
    UpstreamTimeout,
)
from inwire.kit.observability import request_id_var
from inwire.kit.peers import ServiceClient

# -- the peer ----------------------------------------------------------------------------------

attempts: Counter[str] = Counter()


def _peer_app() -> FastAPI:
    """A small service answering in the envelope, with endpoints that fail on purpose."""
    app = FastAPI()

    @app.exception_handler(InwireError)
    async def on_inwire_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, InwireError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_crash(_: Request, exc: Exception) -> Response:
        return JSONResponse(InwireError("Internal error").body(), status_code=500)

    @app.get("/api/v1/items/{item_id}")
    async def get_item(item_id: str) -> dict[str, Any]:
        if item_id == "missing":
            raise NotFound("No such item")
        return {"data": {"id": item_id}, "meta": {}}

    @app.get("/api/v1/items")
    async def list_items(page: int = 1, per_page: int = 2) -> dict[str, Any]:
        items = [{"id": f"it_{i}"} for i in range((page - 1) * per_page, page * per_page)]
        return {"data": items, "meta": {"page": page, "per_page": per_page, "total": 5}}

    @app.api_route("/api/v1/items", methods=["POST", "PUT", "PATCH"], status_code=201)
    async def write_item(request: Request) -> dict[str, Any]:
        return {"data": {"method": request.method, "body": await request.json()}}

    @app.delete("/api/v1/items/{item_id}", status_code=204)
    async def delete_item(item_id: str) -> Response:
        return Response(status_code=204)

    @app.get("/api/v1/query")
    async def echo_query(request: Request) -> dict[str, Any]:
        return {"data": sorted(request.query_params.multi_items())}

    @app.get("/api/v1/headers")
    async def echo_headers(request: Request) -> dict[str, Any]:
        return {"data": dict(request.headers)}

    @app.get("/api/v1/fail/{kind}")
    async def fail(kind: str) -> dict[str, Any]:
        if kind == "conflict":
            raise Conflict("Name taken")
        if kind == "forbidden":
            raise Forbidden("Needs datasets:write")
        if kind == "invalid":
            raise Invalid("Bad input", details=[{"field": "name", "message": "too short"}])
        if kind == "limited":
            raise TooManyRequests(retry_after=7)
        if kind == "teapot":
            raise JSONResponseError(418, {"error": {"code": "TEAPOT", "message": "short"}})
        if kind == "crash":
            raise RuntimeError("boom")
        if kind == "bare":
            raise JSONResponseError(200, [1, 2, 3])
        raise AssertionError(kind)

    @app.api_route("/api/v1/flaky/{key}", methods=["GET", "PUT", "DELETE", "POST", "PATCH"])
    async def flaky(key: str, failures: int, status: int = 503) -> Response:
        """Fail ``failures`` times with ``status``, then succeed."""
        attempts[key] += 1
        if attempts[key] <= failures:
            body = {"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy", "details": []}}
            return JSONResponse(body, status_code=status)
        return JSONResponse({"data": {"attempts": attempts[key]}})

    @app.put("/api/v1/upload/{name}")
    async def upload(name: str, request: Request) -> dict[str, Any]:
        size, digest = 0, hashlib.sha256()
        async for chunk in request.stream():
            size += len(chunk)
            digest.update(chunk)
        kind = request.headers.get("content-type")
        return {"data": {"name": name, "size": size, "sha256": digest.hexdigest(), "type": kind}}

    @app.get("/api/v1/blob")
    async def blob() -> Response:
        return Response(bytes(range(256)) * 4096, media_type="application/octet-stream")

    @app.get("/api/v1/slow/{key}")
    async def slow(key: str) -> dict[str, Any]:
        attempts[key] += 1
        await asyncio.sleep(1.0)
        return {"data": "late"}

    @app.exception_handler(JSONResponseError)
    async def on_raw(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, JSONResponseError)
        return JSONResponse(exc.body, status_code=exc.status)

    return app


class JSONResponseError(Exception):
    """Lets an endpoint answer an arbitrary status and body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


PEER = _peer_app()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_base_url() -> Iterator[str]:
    """The peer served by a real uvicorn on a free port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(PEER, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


class FastRetryClient(ServiceClient):
    """Retries without making the tests wait."""

    backoff = 0.001


MakeClient = Callable[..., ServiceClient]


@pytest.fixture(params=["asgi", "http"])
async def make_client(
    request: pytest.FixtureRequest, http_base_url: str
) -> AsyncIterator[MakeClient]:
    """``make_client(**kw)``: a client of the peer, in process or over HTTP."""
    made: list[ServiceClient] = []

    def make(**kw: Any) -> ServiceClient:
        if request.param == "asgi":
            client = FastRetryClient(app=PEER, **kw)
        else:
            client = FastRetryClient(http_base_url, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def key() -> str:
    """A key of its own for the peer's attempt counters."""
    return uuid.uuid4().hex


# -- envelopes -----------------------------------------------------------------------------------


async def test_get_returns_the_envelope_data(make_client: MakeClient) -> None:
    assert await make_client().get("/api/v1/items/it_1") == {"id": "it_1"}


async def test_stream_yields_a_raw_body_in_chunks(make_client: MakeClient) -> None:
    client = make_client()
    async with client.stream("/api/v1/blob", chunk_size=65536) as body:
        chunks = [chunk async for chunk in body]
    assert b"".join(chunks) == bytes(range(256)) * 4096
    assert len(chunks) > 1
    with pytest.raises(NotFound):
        async with client.stream("/api/v1/items/missing"):
            pass


async def test_upload_streams_a_raw_body_from_bytes_or_chunks(make_client: MakeClient) -> None:
    client = make_client()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(8):
            yield bytes([i]) * 100_000

    whole = b"".join([c async for c in chunks()])
    sent = await client.upload("/api/v1/upload/a.bin", chunks())
    assert sent == {
        "name": "a.bin",
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "type": "application/octet-stream",
    }
    sent = await client.upload("/api/v1/upload/b.txt", b"hi", content_type="text/plain")
    assert (sent["size"], sent["type"]) == (2, "text/plain")


async def test_get_page_returns_data_and_meta(make_client: MakeClient) -> None:
    data, meta = await make_client().get_page("/api/v1/items", params={"page": 2})
    assert data == [{"id": "it_2"}, {"id": "it_3"}]
    assert meta == {"page": 2, "per_page": 2, "total": 5}


@pytest.mark.parametrize("method", ["post", "put", "patch"])
async def test_writes_send_json_and_return_data(make_client: MakeClient, method: str) -> None:
    client = make_client()
    data = await getattr(client, method)("/api/v1/items", json={"name": "x", "n": [1, 2]})
    assert data == {"method": method.upper(), "body": {"name": "x", "n": [1, 2]}}


async def test_delete_answered_204_returns_none(make_client: MakeClient) -> None:
    assert await make_client().delete("/api/v1/items/it_1") is None


async def test_query_params_encode_bools_lists_and_drop_none(make_client: MakeClient) -> None:
    data = await make_client().get(
        "/api/v1/query", params={"flag": True, "off": False, "tag": ["a", "b"], "gone": None}
    )
    assert data == [["flag", "true"], ["off", "false"], ["tag", "a"], ["tag", "b"]]


# -- errors --------------------------------------------------------------------------------------


async def test_404_envelope_raises_not_found(make_client: MakeClient) -> None:
    with pytest.raises(NotFound) as caught:
        await make_client().get("/api/v1/items/missing")
    assert (caught.value.status, caught.value.code) == (404, "NOT_FOUND")
    assert caught.value.message == "No such item"


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [("conflict", Conflict, 409), ("forbidden", Forbidden, 403), ("invalid", Invalid, 400)],
)
async def test_error_envelopes_raise_their_typed_error(
    make_client: MakeClient, kind: str, error: type[InwireError], status: int
) -> None:
    with pytest.raises(error) as caught:
        await make_client().get(f"/api/v1/fail/{kind}")
    assert caught.value.status == status


async def test_validation_error_keeps_its_details(make_client: MakeClient) -> None:
    with pytest.raises(Invalid) as caught:
        await make_client().get("/api/v1/fail/invalid")
    assert caught.value.details == [{"field": "name", "message": "too short"}]


async def test_rate_limited_peer_keeps_retry_after(make_client: MakeClient) -> None:
    with pytest.raises(TooManyRequests) as caught:
        await make_client().get("/api/v1/fail/limited")
    assert caught.value.retry_after == 7
    assert caught.value.headers == {"Retry-After": "7"}


async def test_unknown_error_code_keeps_code_and_status(make_client: MakeClient) -> None:
    with pytest.raises(InwireError) as caught:
        await make_client().get("/api/v1/fail/teapot")
    assert (caught.value.status, caught.value.code) == (418, "TEAPOT")


async def test_peer_crash_is_a_500_error(make_client: MakeClient) -> None:
    with pytest.raises(InwireError) as caught:
        await make_client().get("/api/v1/fail/crash")
    assert (caught.value.status, caught.value.code) == (500, "INTERNAL_ERROR")


async def test_success_without_envelope_is_a_bad_gateway(make_client: MakeClient) -> None:
    with pytest.raises(InwireError) as caught:
        await make_client().get("/api/v1/fail/bare")
    assert (caught.value.status, caught.value.code) == (502, "BAD_GATEWAY")


# -- forwarded headers ---------------------------------------------------------------------------

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


@pytest.fixture
def current_span() -> Iterator[None]:
    """Make a sampled span current, as the app's tracing middleware would."""
    span = NonRecordingSpan(
        SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )
    token = context.attach(trace.set_span_in_context(span))
    yield
    context.detach(token)


@pytest.fixture
def current_request_id() -> Iterator[str]:
    """Set the request id of the request being served."""
    token = request_id_var.set("req_01TEST")
    yield "req_01TEST"
    request_id_var.reset(token)


@pytest.mark.usefixtures("current_span")
async def test_forwards_request_id_trace_context_and_bearer_token(
    make_client: MakeClient, current_request_id: str
) -> None:
    seen = await make_client(credentials="tok-abc").get("/api/v1/headers")
    assert seen["x-request-id"] == current_request_id
    assert seen["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
    assert seen["authorization"] == "Bearer tok-abc"


async def test_credentials_function_is_asked_on_every_call(make_client: MakeClient) -> None:
    tokens = iter(["first", "second"])

    async def credentials() -> str | None:
        return next(tokens)

    client = make_client(credentials=credentials)
    assert (await client.get("/api/v1/headers"))["authorization"] == "Bearer first"
    assert (await client.get("/api/v1/headers"))["authorization"] == "Bearer second"


async def test_nothing_to_forward_sends_no_context_headers(make_client: MakeClient) -> None:
    seen = await make_client().get("/api/v1/headers")
    assert not {"authorization", "x-request-id", "traceparent"} & set(seen)


async def test_caller_headers_override_forwarded_ones(
    make_client: MakeClient, current_request_id: str
) -> None:
    seen = await make_client(credentials="tok").get(
        "/api/v1/headers", headers={"authorization": "Bearer other", "x-request-id": "req_2"}
    )
    assert seen["authorization"] == "Bearer other"
    assert seen["x-request-id"] == "req_2"


# -- retries and failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status"), [("get", 503), ("get", 502), ("put", 504), ("delete", 503)]
)
async def test_idempotent_call_retries_gateway_errors_then_succeeds(
    make_client: MakeClient, key: str, method: str, status: int
) -> None:
    client = make_client()
    data = await getattr(client, method)(
        f"/api/v1/flaky/{key}", params={"failures": 2, "status": status}
    )
    assert data == {"attempts": 3}


async def test_get_gives_up_after_two_retries(make_client: MakeClient, key: str) -> None:
    with pytest.raises(Unavailable):
        await make_client().get(f"/api/v1/flaky/{key}", params={"failures": 10})
    assert attempts[key] == 3


@pytest.mark.parametrize("method", ["post", "patch"])
async def test_non_idempotent_call_is_never_retried(
    make_client: MakeClient, key: str, method: str
) -> None:
    with pytest.raises(Unavailable):
        await getattr(make_client(), method)(f"/api/v1/flaky/{key}", params={"failures": 1})
    assert attempts[key] == 1


async def test_slow_peer_raises_upstream_timeout_without_retry(
    make_client: MakeClient, key: str
) -> None:
    with pytest.raises(UpstreamTimeout):
        await make_client(timeout=0.1).get(f"/api/v1/slow/{key}")
    assert attempts[key] == 1


@pytest.mark.parametrize("method", ["get", "post"])
async def test_connection_refused_is_unavailable(method: str) -> None:
    async with FastRetryClient(f"http://127.0.0.1:{_free_port()}") as client:
        with pytest.raises(Unavailable, match="unreachable"):
            await getattr(client, method)("/api/v1/items/it_1")


def test_client_needs_a_base_url_or_an_app() -> None:
    with pytest.raises(ValueError, match="base_url or an app"):
        ServiceClient()
