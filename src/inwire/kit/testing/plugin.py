"""Pytest plugin (entry point ``inwire``): app, client, db and principal fixtures.

A service's ``conftest.py`` defines one fixture, ``service_app(inwire_settings)``, that
builds its app from settings overrides; this plugin then provides ``app`` (started, on a
fresh database), ``client`` (httpx over ASGI) and ``auth(role, org)`` headers, all
parametrised over SQLite and, when ``INWIRE_TEST_POSTGRES_URL`` is set, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from inwire.kit.auth.tokens import public_jwk, sign_token
from inwire.kit.testing.identities import identity

POSTGRES_URL_ENV = "INWIRE_TEST_POSTGRES_URL"
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get(POSTGRES_URL_ENV) else [])


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow`` runs tests marked slow (CI=true does too)."""
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip slow tests unless asked for or in CI."""
    if config.getoption("--run-slow") or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason="slow: runs in CI or with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# -- databases ------------------------------------------------------------------------------


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A PostgreSQL database made for this test session and dropped after it."""
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        yield None
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"inwire_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _asyncpg_url(base)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url(url))
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 "
            "AND tablename NOT LIKE 'alembic_version%'",
            schema,
        )
        if rows:
            tables = ", ".join(f'"{schema}"."{r["tablename"]}"' for r in rows)
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: every test using a database runs on each."""
    return str(request.param)


@pytest.fixture
def db_url(
    db_backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, str]]:
    """(database URL, schema) of a database that is empty when the test starts."""
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'db' / 'service.db'}", ""
        return
    url: str = request.getfixturevalue("postgres_database")
    # One schema per test module: modules test different services (different tables), and
    # a table one leaves behind must not show up in another's schema.
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    schema = f"t_{module}"[:63]
    yield url, schema
    asyncio.run(_truncate_schema(url, schema))


# -- keys and principals ---------------------------------------------------------------------


class TestKeys:
    """An Ed25519 key pair standing in for Core's signing key in service tests."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self.jwks = {"keys": [public_jwk(self.private_key.public_key(), self.kid)]}
        self.jwks_path = directory / "jwks.json"
        self.jwks_path.write_text(json.dumps(self.jwks))

    @property
    def jwks_url(self) -> str:
        """A ``file://`` URL of the JWKS, which the kit's key source reads."""
        return f"file://{self.jwks_path}"

    def token(self, role: str = "admin", org: str = "a", *, ttl: int = 600, **claims: Any) -> str:
        """A valid access token for the test identity ``role``@``org``."""
        who = identity(role, org)
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": "inwire",
            "aud": "inwire",
            "sub": who.user_id,
            "org": who.org_id,
            "roles": [role],
            "kind": "user",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "name": who.email,
        }
        body.update(claims)
        return sign_token(self.private_key, self.kid, body)


@pytest.fixture(scope="session")
def test_keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    """The session's signing key and its JWKS file."""
    return TestKeys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def token_factory(test_keys: TestKeys) -> Callable[..., str]:
    """``token_factory(role, org)`` -> bearer token. Core overrides this with real logins."""
    return test_keys.token


@pytest.fixture
def auth(token_factory: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """``auth("viewer", org="b")`` -> headers authenticating that test identity."""

    def headers(role: str = "admin", org: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {token_factory(role, org)}"}

    return headers


# -- app and client ---------------------------------------------------------------------------


@pytest.fixture
def inwire_settings(
    tmp_path: Path,
    db_url: tuple[str, str],
    test_keys: TestKeys,
) -> dict[str, Any]:
    """Settings overrides that put a service on the test database, home and keys."""
    url, schema = db_url
    return {
        "home": tmp_path / "home",
        "database_url": url,
        "database_schema": schema,
        "storage_url": f"file://{tmp_path / 'objects'}",
        "events_url": f"sqlite:///{tmp_path / 'events.db'}",
        "jwks_url": test_keys.jwks_url,
        "log_json": False,
        "log_level": "WARNING",
    }


@pytest.fixture
async def app(service_app: FastAPI) -> AsyncIterator[FastAPI]:
    """The service app, started (lifespan run, migrations applied) for one test."""
    async with service_app.router.lifespan_context(service_app):
        yield service_app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in process."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """Assert an error envelope with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    if code is not None:
        assert body["error"]["code"] == code, body


async def schema_drift(app: FastAPI, metadata: Any) -> tuple[list[Any], list[str]]:
    """What the started ``app``'s migrated database lacks against ``metadata`` (Alembic's
    autogenerate diff, empty when migrations and models agree), and its table names."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: (
                    not (kind == "table" and str(name).startswith("alembic_version"))
                ),
            },
        )
        return list(compare_metadata(context, metadata))

    async with app.state.db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return changes, list(names)
