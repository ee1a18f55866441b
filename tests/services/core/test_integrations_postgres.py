"""The ``postgres`` integration kind: config and credentials checked, a real connection test."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from inwire.kit.testing.plugin import POSTGRES_URL_ENV, assert_error

pytestmark = pytest.mark.usefixtures("seeded")

BASE = "/api/v1/integrations"

needs_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_URL_ENV), reason=f"{POSTGRES_URL_ENV} is not set"
)


def postgres_body(name: str = "warehouse", **changes: Any) -> dict[str, Any]:
    """An integration with the test server (``INWIRE_TEST_POSTGRES_URL``) or a stand-in."""
    url = make_url(os.environ.get(POSTGRES_URL_ENV) or "postgresql://postgres@127.0.0.1/test")
    config = {"host": url.host, "port": url.port or 5432, "database": url.database}
    credentials = {"user": url.username, **({"password": url.password} if url.password else {})}
    config.update(changes.pop("config", {}))
    credentials.update(changes.pop("credentials", {}))
    return {"name": name, "kind": "postgres", "config": config, "credentials": credentials}


async def create_and_test(client, auth, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post(BASE, json=body, headers=auth())
    assert created.status_code == 201, created.text
    tested = await client.post(f"{BASE}/{created.json()['data']['id']}/test", headers=auth())
    assert tested.status_code == 200, tested.text
    result: dict[str, Any] = tested.json()["data"]
    return result


async def test_postgres_config_and_credentials_are_checked(client, auth) -> None:
    kinds = (await client.get(f"{BASE}/kinds", headers=auth("viewer"))).json()["data"]
    schema = next(k for k in kinds if k["kind"] == "postgres")
    assert schema["config_schema"]["required"] == ["host", "database"]
    assert schema["config_schema"]["properties"]["sslmode"]["default"] == "prefer"
    assert set(schema["credentials_schema"]["properties"]) == {"user", "password"}

    bad = postgres_body(
        config={"port": 70000, "sslmode": "sometimes", "host": "db host"},
        credentials={"token": "x"},
    )
    r = await client.post(BASE, json=bad, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"config.port", "config.sslmode", "config.host", "credentials.token"}
    created = await client.post(BASE, json=postgres_body(), headers=auth())
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["config"]["sslmode"] == "prefer"
    assert "password" not in data["config"]


@needs_postgres
async def test_postgres_connection_test_against_the_real_server(client, auth) -> None:
    ok = await create_and_test(client, auth, postgres_body(config={"sslmode": "disable"}))
    assert ok["ok"] is True, ok
    database = postgres_body()["config"]["database"]
    assert ok["message"].startswith(f"connected to database {database!r}")
    assert "(PostgreSQL " in ok["message"]

    missing = await create_and_test(
        client, auth, postgres_body("gone", config={"database": "no_such_database_here"})
    )
    assert missing == {
        "ok": False,
        "message": "database 'no_such_database_here' does not exist",
        "latency_ms": missing["latency_ms"],
    }
    stranger = await create_and_test(
        client, auth, postgres_body("stranger", credentials={"user": "no_such_role_here"})
    )
    assert stranger["ok"] is False
    assert stranger["message"] == "the user was rejected (28000)"


async def test_postgres_connection_test_reports_an_unreachable_server(client, auth) -> None:
    down = await create_and_test(
        client, auth, postgres_body("down", config={"host": "127.0.0.1", "port": 9})
    )
    assert down["ok"] is False
    assert down["message"].startswith("could not reach PostgreSQL at 127.0.0.1:9")
