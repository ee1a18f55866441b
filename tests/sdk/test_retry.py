"""Retries on 429 and 503 honour Retry-After, within bounds; other errors are not retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from core_server import free_socket, serve_in_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inwire.sdk import AsyncClient, RetryPolicy
from inwire.sdk.errors import Invalid, TooManyRequests, Unavailable, Unreachable
from inwire.sdk.retry import parse_retry_after


class Script:
    """A tiny service answering a scripted series of statuses, then 200."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str]]] = []
        self.arrivals: list[float] = []
        self.methods: list[str] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/api/v1/auth/me", methods=["GET", "POST"])
        async def answer(request: Request) -> JSONResponse:
            self.arrivals.append(time.monotonic())
            self.methods.append(request.method)
            if self.plan:
                status, headers = self.plan.pop(0)
                code = {429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE", 400: "VALIDATION_ERROR"}
                body = {"error": {"code": code[status], "message": "not now", "details": []}}
                return JSONResponse(body, status_code=status, headers=headers)
            me = {"id": "usr_1", "kind": "user", "name": "n", "organization_id": "o", "role": "r"}
            return JSONResponse({"data": me})

        return app


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture(params=["asgi", "http"])
def target(request: pytest.FixtureRequest, script: Script) -> Iterator[dict[str, Any]]:
    app = script.app()
    if request.param == "asgi":
        yield {"services": {"core": app}}
        return
    with serve_in_thread(app) as (url, _):
        yield {"core_url": url}


async def test_429_is_retried_after_the_seconds_retry_after_asks_for(
    script: Script, target: dict[str, Any]
) -> None:
    script.plan = [(429, {"Retry-After": "1"})]
    async with AsyncClient(**target, api_key="iwk_x") as client:
        me = await client.core.me()

    assert me.id == "usr_1"
    assert len(script.arrivals) == 2
    # A lower bound only: the client waited at least as long as it was asked to.
    assert script.arrivals[1] - script.arrivals[0] >= 0.95


async def test_retry_after_as_an_http_date_is_honoured(
    script: Script, target: dict[str, Any]
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    script.plan = [(503, {"Retry-After": format_datetime(when, usegmt=True)})]
    async with AsyncClient(**target, api_key="iwk_x") as client:
        await client.core.me()

    assert len(script.arrivals) == 2
    assert script.arrivals[1] - script.arrivals[0] >= 0.5


async def test_a_post_is_retried_after_429_and_503_because_neither_did_the_work(
    script: Script, target: dict[str, Any]
) -> None:
    script.plan = [(429, {"Retry-After": "0"}), (503, {})]
    policy = RetryPolicy(backoff=0.01)
    async with AsyncClient(**target, api_key="iwk_x", retry=policy) as client:
        await client.core.api.post("/api/v1/auth/me", json={})

    assert script.methods == ["POST", "POST", "POST"]


async def test_retries_stop_after_max_retries_with_the_last_error(
    script: Script, target: dict[str, Any]
) -> None:
    script.plan = [(503, {"Retry-After": "0"})] * 3
    async with AsyncClient(**target, api_key="iwk_x", retry=RetryPolicy(max_retries=2)) as client:
        with pytest.raises(Unavailable) as caught:
            await client.core.me()

    assert not isinstance(caught.value, Unreachable)
    assert caught.value.headers["Retry-After"] == "0"
    assert len(script.arrivals) == 3


async def test_a_retry_after_beyond_max_wait_raises_at_once(
    script: Script, target: dict[str, Any]
) -> None:
    script.plan = [(429, {"Retry-After": "3600"})]
    async with AsyncClient(**target, api_key="iwk_x", retry=RetryPolicy(max_wait=5)) as client:
        with pytest.raises(TooManyRequests) as caught:
            await client.core.me()

    assert caught.value.retry_after == 3600
    assert len(script.arrivals) == 1


async def test_other_errors_are_not_retried(script: Script, target: dict[str, Any]) -> None:
    script.plan = [(400, {"Retry-After": "0"})]
    async with AsyncClient(**target, api_key="iwk_x") as client:
        with pytest.raises(Invalid):
            await client.core.me()

    assert len(script.arrivals) == 1


@pytest.fixture
def slamming_door() -> Iterator[tuple[str, list[int]]]:
    """An address that accepts connections and closes them unanswered; counts them."""
    sock = free_socket()
    sock.listen()
    sock.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    sock.close()


async def test_a_lost_connection_is_retried_for_get_but_not_for_post(
    slamming_door: tuple[str, list[int]],
) -> None:
    url, accepted = slamming_door
    policy = RetryPolicy(max_retries=2, backoff=0.001)
    async with AsyncClient(core_url=url, api_key="iwk_x", retry=policy) as client:
        with pytest.raises(Unreachable):
            await client.core.api.get("/api/v1/auth/me")
        gets = len(accepted)
        with pytest.raises(Unreachable):
            await client.core.api.post("/api/v1/auth/me", json={})

    # Three attempts of the GET (aiohttp itself also resends an idempotent request once
    # when a connection drops, so each attempt may take two connections); one POST.
    assert gets in (3, 6)
    assert len(accepted) - gets == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("0", 0.0),
        ("7", 7.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_values_are_read_as_seconds_or_http_dates(
    value: str | None, seconds: float | None
) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


def test_a_negative_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_retries=-1)
