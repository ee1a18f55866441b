"""create_service_app: envelopes for every outcome, health, metrics, auth and pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.api import APIRouter, ListQuery, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import Base, RepositoryBase, SessionDep, TenantMixin, TimestampMixin
from inwire.kit.db.base import new_metadata
from inwire.kit.errors import Conflict
from inwire.kit.ids import new_id
from inwire.kit.settings import ServiceSettings
from inwire.kit.storage import StorageDep
from inwire.kit.testing.plugin import assert_error


class DemoBase(Base):
    __abstract__ = True
    metadata = new_metadata()


class Widget(DemoBase, TenantMixin, TimestampMixin):
    __tablename__ = "widgets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(20), default="red")


class WidgetRepository(RepositoryBase[Widget]):
    model = Widget
    noun = "Widget"


class WidgetIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    color: str = "red"


class DemoSettings(ServiceSettings):
    service = "demo"
    default_port = 18999
    model_config = {"env_prefix": "INWIRE_DEMO_"}  # noqa: RUF012


router = APIRouter()
Listing = Annotated[
    ListQuery,
    __import__("fastapi").Depends(list_params(("created_at", "name"), filters={"color": str})),
]


@router.post("/widgets", status_code=201)
async def create_widget(
    body: WidgetIn, session: SessionDep, who: Annotated[Principal, require("widgets:create")]
) -> dict[str, Any]:
    """Create a widget."""
    repo = WidgetRepository(session, who.org)
    if await repo.find(Widget.name == body.name):
        raise Conflict("name taken")
    w = await repo.add(Widget(id=new_id("wid"), name=body.name, color=body.color))
    return {"data": {"id": w.id, "name": w.name, "color": w.color}}


@router.get("/widgets")
async def list_widgets(
    q: Listing, session: SessionDep, who: Annotated[Principal, require("widgets:read")]
) -> dict[str, Any]:
    """List widgets."""
    rows, total = await WidgetRepository(session, who.org).page(q)
    return q.page_of([{"id": w.id, "name": w.name} for w in rows], total)


@router.get("/widgets/{widget_id}")
async def get_widget(
    widget_id: str, session: SessionDep, who: Annotated[Principal, require("widgets:read")]
) -> dict[str, Any]:
    """One widget."""
    w = await WidgetRepository(session, who.org).get(widget_id)
    return {"data": {"id": w.id, "name": w.name}}


@router.get("/boom")
async def boom() -> None:
    """Always fails."""
    raise RuntimeError("secret internals")


@pytest.fixture
def service_app(inwire_settings: dict[str, Any]) -> FastAPI:
    from inwire.kit.app import create_service_app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.db.engine.begin() as conn:
            await conn.run_sync(DemoBase.metadata.create_all)
        yield

    settings = DemoSettings(**inwire_settings, max_body_bytes=1000)
    return create_service_app(settings, title="Demo", routers=[router], lifespan=lifespan)


async def test_create_and_get_return_data_envelope(client, auth) -> None:
    r = await client.post("/api/v1/widgets", json={"name": "a"}, headers=auth("member"))
    assert r.status_code == 201, r.text
    wid = r.json()["data"]["id"]
    r = await client.get(f"/api/v1/widgets/{wid}", headers=auth("viewer"))
    assert r.json() == {"data": {"id": wid, "name": "a"}}
    assert r.headers["x-request-id"]


async def test_other_organization_gets_404_and_viewer_gets_403(client, auth) -> None:
    r = await client.post("/api/v1/widgets", json={"name": "a"}, headers=auth("admin"))
    wid = r.json()["data"]["id"]
    assert_error(
        await client.get(f"/api/v1/widgets/{wid}", headers=auth("admin", "b")), 404, "NOT_FOUND"
    )
    assert_error(
        await client.post("/api/v1/widgets", json={"name": "b"}, headers=auth("viewer")),
        403,
        "FORBIDDEN",
    )


async def test_missing_tampered_and_none_tokens_are_401(client, auth, test_keys) -> None:
    assert_error(await client.get("/api/v1/widgets"), 401, "UNAUTHORIZED")
    token = auth()["Authorization"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_error(await client.get("/api/v1/widgets", headers={"Authorization": tampered}), 401)
    import base64
    import json

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    payload = token.split(" ")[1].split(".")[1]
    none_token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    assert_error(
        await client.get("/api/v1/widgets", headers={"Authorization": f"Bearer {none_token}"}), 401
    )
    expired = test_keys.token("admin", ttl=-120)
    r = await client.get("/api/v1/widgets", headers={"Authorization": f"Bearer {expired}"})
    assert_error(r, 401, "TOKEN_EXPIRED")
    wrong_aud = test_keys.token("admin", aud="someone-else")
    assert_error(
        await client.get("/api/v1/widgets", headers={"Authorization": f"Bearer {wrong_aud}"}), 401
    )


async def test_unknown_route_wrong_method_and_validation_use_error_envelope(client, auth) -> None:
    assert_error(await client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert_error(await client.delete("/api/v1/widgets", headers=auth()), 405, "METHOD_NOT_ALLOWED")
    r = await client.post("/api/v1/widgets", json={"name": ""}, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    assert r.json()["error"]["details"][0]["field"] == "name"
    r = await client.post(
        "/api/v1/widgets",
        content=b"{not json",
        headers={**auth(), "content-type": "application/json"},
    )
    assert_error(r, 400, "VALIDATION_ERROR")


async def test_wrong_content_type_is_415_and_large_body_413(client, auth) -> None:
    r = await client.post(
        "/api/v1/widgets", content=b"name=a", headers={**auth(), "content-type": "text/plain"}
    )
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.post("/api/v1/widgets", json={"name": "x" * 2000}, headers=auth())
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    r = await client.post(
        "/api/v1/widgets", content=chunks(), headers={**auth(), "content-type": "application/json"}
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


async def test_unexpected_error_is_500_without_internals(client) -> None:
    r = await client.get("/api/v1/boom")
    assert_error(r, 500, "INTERNAL_ERROR")
    assert "secret" not in r.text
    assert r.json()["error"]["details"][0]["request_id"] == r.headers["x-request-id"]


async def test_pagination_sort_and_filter(client, auth) -> None:
    for i in range(25):
        await client.post(
            "/api/v1/widgets",
            json={"name": f"w{i:02}", "color": "blue" if i % 5 == 0 else "red"},
            headers=auth(),
        )
    r = await client.get("/api/v1/widgets?page=2&per_page=10&sort=name&order=asc", headers=auth())
    body = r.json()
    assert body["meta"] == {"page": 2, "per_page": 10, "total": 25}
    assert [w["name"] for w in body["data"]] == [f"w{i:02}" for i in range(10, 20)]
    r = await client.get("/api/v1/widgets?color=blue", headers=auth())
    assert r.json()["meta"]["total"] == 5
    for bad in (
        "per_page=101",
        "page=0",
        "page=10000001",
        "sort=secret",
        "order=sideways",
        "page=x",
    ):
        r = await client.get(f"/api/v1/widgets?{bad}", headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")
        assert r.json()["error"]["details"][0]["field"] == bad.split("=")[0]


async def test_health_ready_metrics_and_docs(client) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    assert (await client.get("/health/live")).status_code == 200
    r = await client.get("/health/ready")
    assert r.json()["checks"] == {"database": "ok"}
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    assert "/api/v1/widgets" in (await client.get("/openapi.json")).json()["paths"]
    await client.get("/health")
    text = (await client.get("/metrics")).text
    assert "inwire_http_requests_total" in text


async def test_ready_is_503_naming_the_failing_check(app, client) -> None:
    await app.state.db.engine.dispose()
    app.state.db.engine.url  # noqa: B018
    from sqlalchemy.ext.asyncio import create_async_engine

    app.state.db.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/x")
    r = await client.get("/health/ready")
    assert_error(r, 503, "NOT_READY")
    assert r.json()["error"]["details"][0]["field"] == "database"


async def test_trace_context_and_request_id_reach_the_json_access_log(client, auth) -> None:
    import io
    import json
    import logging

    from inwire.kit.observability import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo"))
    logger = logging.getLogger("inwire.http")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    try:
        r = await client.get(
            "/api/v1/widgets",
            headers={
                **auth(),
                "traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
                "X-Request-ID": "req-from-client",
            },
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert r.headers["x-request-id"] == "req-from-client"
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["trace_id"] == trace_id
    assert line["request_id"] == "req-from-client"
    assert line["status"] == 200
    assert line["service"] == "demo"


async def test_storage_is_opened_for_services_that_ask_and_checked_for_readiness(
    inwire_settings,
) -> None:
    import httpx

    from inwire.kit.app import create_service_app

    files = APIRouter()

    @files.put("/files/{name}", status_code=204)
    async def put_file(name: str, store: StorageDep) -> None:
        """Store a file."""
        await store.put(name, b"hello")

    app = create_service_app(
        DemoSettings(**inwire_settings), title="Demo", routers=[files], storage=True
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.put("/api/v1/files/a.txt")).status_code == 204
            ready = (await c.get("/health/ready")).json()
            assert ready["checks"] == {"database": "ok", "storage": "ok"}
        assert await app.state.storage.get_bytes("a.txt") == b"hello"


@router.post("/widgets-then-fail")
async def create_then_fail(
    session: SessionDep, who: Annotated[Principal, require("widgets:create")]
) -> None:
    """Writes a widget, then fails: nothing may persist."""
    await WidgetRepository(session, who.org).add(Widget(id=new_id("wid"), name="ghost"))
    raise Conflict("changed my mind")


async def test_request_session_rolls_back_when_the_handler_fails(client, auth) -> None:
    assert_error(await client.post("/api/v1/widgets-then-fail", headers=auth()), 409)
    listing = (await client.get("/api/v1/widgets", headers=auth())).json()
    assert listing["meta"]["total"] == 0


async def test_tenant_repository_cannot_be_built_without_an_organization(app) -> None:
    async with app.state.db.session() as session:
        with pytest.raises(TypeError, match="org_id"):
            WidgetRepository(session)
        everyone = WidgetRepository.unscoped(session)
        assert everyone.org_id is None


async def test_sqlite_runs_with_wal_foreign_keys_and_busy_timeout(app, db_backend) -> None:
    if db_backend != "sqlite":
        pytest.skip("SQLite pragmas")
    from sqlalchemy import text

    async with app.state.db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000


async def test_a_read_only_sqlite_transaction_refuses_writes_every_time(app, db_backend) -> None:
    # Without query_only such a write works until another connection writes first, then
    # fails with "database is locked": a bug that only shows under load.
    if db_backend != "sqlite":
        pytest.skip("SQLite pragmas")
    import sqlalchemy.exc

    db = app.state.db
    with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"):
        async with db.session(write=False) as session:
            session.add(Widget(id=new_id("wid"), organization_id="org_a", name="w"))
    async with db.session() as session:  # the same pooled connection writes again
        session.add(Widget(id=new_id("wid"), organization_id="org_a", name="w"))
    async with db.session(write=False) as session:
        assert len(await WidgetRepository(session, "org_a").all()) == 1


def test_opening_a_sqlite_database_that_answers_locked_is_retried(monkeypatch) -> None:
    import sqlite3

    from inwire.kit.db import engine

    monkeypatch.setattr(engine, "_OPEN_RETRY_PAUSES", (0.0, 0.0))
    ran: list[str] = []

    class Cursor:
        def __init__(self, failures: int) -> None:
            self.failures = failures

        def execute(self, sql: str) -> None:
            if "journal_mode" in sql and self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            ran.append(sql)

        def close(self) -> None:
            pass

    class Connection:
        isolation_level: str | None = ""

        def __init__(self, failures: int) -> None:
            self.cur = Cursor(failures)

        def cursor(self) -> Cursor:
            return self.cur

    engine._sqlite_pragmas(Connection(2), None)
    assert ran[0].startswith("PRAGMA busy_timeout")  # first, so the others wait for locks
    assert "PRAGMA journal_mode=WAL" in ran
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # three tries in all
        engine._sqlite_pragmas(Connection(3), None)


async def test_nul_characters_are_refused_before_reaching_the_database(client, auth) -> None:
    assert_error(await client.get("/api/v1/widgets/a%00b", headers=auth()), 400, "VALIDATION_ERROR")
    assert_error(await client.get("/api/v1/widgets?color=a%00", headers=auth()), 400)
    r = await client.post(
        "/api/v1/widgets",
        content=b'{"name": "a\\u0000b"}',
        headers={**auth(), "content-type": "application/json"},
    )
    assert_error(r, 400, "VALIDATION_ERROR")
