"""Imports through Core integrations: an object on a real S3 server (moto), the result of a
query on the real PostgreSQL; credentials resolved from a real Core at run time.

Core runs on a real port in the test's event loop (the import job's worker is another
process and calls it over HTTP); Synthex verifies Core's own tokens (its JWKS), so the
``auth`` headers here are tokens Core issued: its first-start owner signing in, and API
keys of lower roles exchanged for access tokens.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import polars as pl
import pytest
from sqlalchemy.engine import make_url

from inwire.kit.testing.plugin import POSTGRES_URL_ENV, assert_error
from inwire.kit.testing.serving import s3_server, serving
from inwire.services.core.app import create_app as create_core
from inwire.services.core.settings import CoreSettings
from inwire.services.synthex.settings import SynthexSettings

INTERNAL = "internal-secret-of-this-test-installation"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PG_PASSWORD = "pg-Pa55word-never-shown"

needs_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_URL_ENV), reason=f"{POSTGRES_URL_ENV} is not set"
)


@dataclass
class RunningCore:
    """Core on a real port, with tokens for organization a (owner, member, viewer) and b."""

    url: str
    tokens: dict[tuple[str, str], str]

    def headers(self, role: str = "owner", org: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(role, org)]}"}


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[RunningCore]:
    """Core on its own SQLite database, its owner signed in, keys for the other roles."""
    home = tmp_path / "core-home"
    settings = CoreSettings(
        home=home,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'core.db'}",
        events_url=f"sqlite:///{tmp_path / 'core-events.db'}",
        internal_secret=INTERNAL,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        log_json=False,
        log_level="WARNING",
    )
    async with serving(create_core(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        admin = json.loads((home / "credentials").read_text())
        login = await _ok(
            await http.post(
                "/api/v1/auth/login",
                json={"email": admin["email"], "password": admin["password"]},
            )
        )
        owner = {"Authorization": f"Bearer {login['access_token']}"}
        tokens = {("owner", "a"): login["access_token"]}
        for role in ("member", "viewer"):
            key = await _ok(
                await http.post(
                    "/api/v1/api-keys", json={"name": role, "role": role}, headers=owner
                ),
                201,
            )
            exchanged = await _ok(
                await http.post("/api/v1/auth/token", json={"api_key": key["key"]})
            )
            tokens[(role, "a")] = exchanged["access_token"]
        other = await _ok(
            await http.post("/api/v1/organizations", json={"name": "Other"}, headers=owner), 201
        )
        switched = await _ok(
            await http.post(
                "/api/v1/auth/switch-organization",
                json={"organization_id": other["id"]},
                headers=owner,
            )
        )
        tokens[("owner", "b")] = switched["access_token"]
        yield RunningCore(url, tokens)


@pytest.fixture
def token_factory(core: RunningCore) -> Callable[..., str]:
    """Tokens Core issued; ``admin`` stands for the owner."""

    def token(role: str = "admin", org: str = "a") -> str:
        return core.tokens[("owner" if role == "admin" or org == "b" else role, org)]

    return token


@pytest.fixture
def synthex_settings(inwire_settings: dict[str, Any], core: RunningCore) -> SynthexSettings:
    """Synthex trusting the running Core's keys, calling it, sharing its internal secret."""
    values = {
        **inwire_settings,
        "jwks_url": f"{core.url}/.well-known/jwks.json",
        "core_url": core.url,
        "internal_secret": INTERNAL,
        "sql_batch_rows": 1000,
        "sql_statement_timeout_seconds": 3,
    }
    return SynthexSettings(**values, jobs_concurrency=2)


async def add_integration(core: RunningCore, body: dict[str, Any], org: str = "a") -> str:
    async with httpx.AsyncClient(base_url=core.url) as http:
        data = await _ok(
            await http.post("/api/v1/integrations", json=body, headers=core.headers("owner", org)),
            201,
        )
    integration_id: str = data["id"]
    return integration_id


async def start_import(client, auth, body: dict[str, Any], role: str = "member", **kw: Any) -> Any:
    path = kw.get("path", "/api/v1/datasets/import")
    return await _ok(await client.post(path, json=body, headers=auth(role)), 202)


async def job_text(client, auth, job_id: str) -> str:
    """Everything the API says about a job: the job and its log."""
    job = await client.get(f"/api/v1/jobs/{job_id}", headers=auth())
    logs = await client.get(f"/api/v1/jobs/{job_id}/logs", headers=auth())
    return job.text + logs.text


# -- S3 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto) on a free local port."""
    with s3_server() as url:
        yield url


SALES = b"id,region,amount,sold_on\n" + b"".join(
    b"%d,%s,%d.%02d,2024-0%d-1%d\n"
    % (i, [b"north", b"south"][i % 2], i * 3, i % 100, 1 + i % 9, i % 10)
    for i in range(1, 2001)
)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket holding a CSV and a Parquet file under ``exports/``."""
    name = f"inwire-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=s3_endpoint,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key=S3_SECRET,
    )
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="exports/sales.csv", Body=SALES)
    more = io.BytesIO()
    pl.DataFrame({"id": [1, 2, 3], "region": ["east", "west", "east"]}).write_parquet(more)
    s3.put_object(Bucket=name, Key="exports/more.parquet", Body=more.getvalue())
    return name


def s3_integration(endpoint: str, bucket: str, **config: Any) -> dict[str, Any]:
    return {
        "name": "lake",
        "kind": "s3",
        "config": {"bucket": bucket, "endpoint_url": endpoint, **config},
        "credentials": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": S3_SECRET},
    }


async def test_an_s3_object_behind_an_integration_becomes_a_dataset(
    client, auth, wait_job, core, s3_endpoint, bucket
) -> None:
    integration_id = await add_integration(core, s3_integration(s3_endpoint, bucket))
    started = await start_import(
        client,
        auth,
        {
            "source": {
                "kind": "s3",
                "integration_id": integration_id,
                "url": f"s3://{bucket}/exports/sales.csv",
            },
            "tags": ["finance"],
        },
    )
    dataset = started["dataset"]
    assert dataset["name"] == "sales"
    assert started["job"]["input"]["source"] == {
        "kind": "s3",
        "integration_id": integration_id,
        "bucket": bucket,
        "key": "exports/sales.csv",
    }
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", await job_text(client, auth, job["id"])
    assert job["result"]["rows"] == 2000
    version = await _ok(
        await client.get(f"/api/v1/datasets/{dataset['id']}/versions/latest", headers=auth())
    )
    assert version["source_kind"] == "s3"
    assert version["source"]["url"] == f"s3://{bucket}/exports/sales.csv"
    assert version["source"]["integration_id"] == integration_id
    assert version["source"]["bytes"] == len(SALES)
    storage = {c["name"]: c["storage"] for c in version["schema"]}
    assert storage["id"] == "Int64"
    assert storage["amount"] == "Float64"
    assert storage["sold_on"] == "Date"

    # The next version by key, in another format.
    more = await start_import(
        client,
        auth,
        {"source": {"kind": "s3", "integration_id": integration_id, "key": "exports/more.parquet"}},
        path=f"/api/v1/datasets/{dataset['id']}/versions/import",
    )
    job2 = await wait_job(more["job"]["id"])
    assert job2["status"] == "succeeded", await job_text(client, auth, job2["id"])
    assert job2["result"]["number"] == 2
    assert job2["result"]["rows"] == 3

    said = (
        await job_text(client, auth, job["id"])
        + await job_text(client, auth, job2["id"])
        + (await client.get(f"/api/v1/datasets/{dataset['id']}/versions", headers=auth())).text
    )
    assert S3_SECRET not in said
    assert "AKIAEXAMPLE" not in said


async def test_imports_through_integrations_are_checked_before_a_job_starts(
    client, auth, core, s3_endpoint, bucket
) -> None:
    lake = await add_integration(core, s3_integration(s3_endpoint, bucket, prefix="exports/"))
    theirs = await add_integration(core, s3_integration(s3_endpoint, bucket), org="b")
    warehouse = await add_integration(
        core,
        {
            "name": "warehouse",
            "kind": "postgres",
            "config": {"host": "127.0.0.1", "database": "test"},
            "credentials": {"user": "postgres"},
        },
    )
    url = "/api/v1/datasets/import"

    def s3(integration_id: str, **where: str) -> dict[str, Any]:
        return {"source": {"kind": "s3", "integration_id": integration_id, **where}}

    async def refused(body: dict[str, Any], status: int, field: str | None = None) -> None:
        r = await client.post(url, json=body, headers=auth("member"))
        assert_error(r, status)
        if field is not None:
            fields = {d.get("field", "") for d in r.json()["error"]["details"]}
            assert any(f.startswith(field) for f in fields), r.text

    await refused(s3("int_nothing", key="exports/sales.csv"), 404, "source.integration_id")
    # Organization b's integration does not exist for organization a.
    await refused(s3(theirs, key="exports/sales.csv"), 404, "source.integration_id")
    await refused(s3(warehouse, key="exports/sales.csv"), 400, "source.integration_id")
    await refused(s3(lake, url="s3://another-bucket/exports/sales.csv"), 400, "source.url")
    await refused(s3(lake, key="elsewhere/sales.csv"), 400, "source.key")
    await refused(s3(lake, url="https://example.com/sales.csv"), 400, "source")
    await refused(s3(lake, url=f"s3://{bucket}/a.csv", key="a.csv"), 400, "source")
    await refused({"source": {"kind": "sql", "integration_id": lake, "query": "select 1"}}, 400)
    await refused({"source": {"kind": "sql", "integration_id": warehouse, "query": " ; "}}, 400)
    await refused(
        {
            "source": {"kind": "sql", "integration_id": warehouse, "query": "select 1"},
            "format": "csv",
        },
        400,
    )
    await refused({"source": {"kind": "ftp", "integration_id": lake}}, 400)
    viewer = await client.post(url, json=s3(lake, key="exports/sales.csv"), headers=auth("viewer"))
    assert_error(viewer, 403)
    assert_error(await client.post(url, json=s3(lake, key="exports/sales.csv")), 401)
    listed = await client.get("/api/v1/datasets", headers=auth())
    assert listed.json()["meta"]["total"] == 0


async def test_a_missing_object_fails_the_job_at_once_naming_it(
    client, auth, wait_job, core, s3_endpoint, bucket
) -> None:
    integration_id = await add_integration(core, s3_integration(s3_endpoint, bucket))
    started = await start_import(
        client,
        auth,
        {"source": {"kind": "s3", "integration_id": integration_id, "key": "exports/gone.csv"}},
    )
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"] == f"s3://{bucket}/exports/gone.csv does not exist"


# -- SQL -----------------------------------------------------------------------------------------


async def pg_connect() -> Any:
    """A connection to the test server (``INWIRE_TEST_POSTGRES_URL``)."""
    import asyncpg

    url = os.environ[POSTGRES_URL_ENV]
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))


@pytest.fixture
async def pg_table() -> AsyncIterator[tuple[dict[str, Any], str]]:
    """A table of 2,500 rows in a schema of its own on the test server: (integration, name)."""
    url = make_url(os.environ[POSTGRES_URL_ENV])
    schema = f"sx_sql_{uuid.uuid4().hex[:8]}"
    conn = await pg_connect()
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, customer text, price numeric(10,2),"
            " placed date, shipped timestamptz, paid boolean, tags text[], code uuid)"
        )
        await conn.execute(
            f"INSERT INTO {schema}.orders SELECT i, 'c' || (i % 40), (i % 500) / 4.0,"
            " date '2024-01-01' + (i % 300),"
            " timestamptz '2024-01-01 12:00+00' + i * interval '1 hour',"
            " i % 3 = 0, ARRAY['a', 'b'], md5(i::text)::uuid"
            " FROM generate_series(1, 2500) AS i"
        )
        await conn.execute(f"UPDATE {schema}.orders SET customer = NULL WHERE id % 100 = 0")
        integration = {
            "name": "warehouse",
            "kind": "postgres",
            "config": {
                "host": url.host,
                "port": url.port or 5432,
                "database": url.database,
                "sslmode": "disable",
            },
            # The test server trusts local connections: the password is never asked for,
            # but it is stored and resolved like any other.
            "credentials": {"user": url.username, "password": PG_PASSWORD},
        }
        yield integration, f"{schema}.orders"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@needs_postgres
async def test_a_query_result_streams_from_postgres_into_a_typed_dataset(
    client, auth, wait_job, core, pg_table
) -> None:
    integration, table = pg_table
    integration_id = await add_integration(core, integration)
    query = f"SELECT * FROM {table} ORDER BY id"
    started = await start_import(
        client,
        auth,
        {
            "name": "orders",
            "source": {"kind": "sql", "integration_id": integration_id, "query": query},
        },
    )
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", await job_text(client, auth, job["id"])
    assert job["result"]["rows"] == 2500
    dataset_id = started["dataset"]["id"]
    version = await _ok(
        await client.get(f"/api/v1/datasets/{dataset_id}/versions/latest", headers=auth())
    )
    assert version["source_kind"] == "sql"
    assert version["source"]["query"] == query
    assert version["source"]["rows"] == 2500
    storage = {c["name"]: c["storage"] for c in version["schema"]}
    assert storage["id"] == "Int64"
    assert storage["paid"] == "Boolean"
    assert storage["placed"] == "Date"
    assert storage["shipped"].startswith("Datetime")
    assert storage["price"] == "Float64"  # exact decimals typed as numbers by the import
    assert storage["tags"] == "String"
    download = await client.get(
        f"/api/v1/datasets/{dataset_id}/versions/latest/download",
        params={"format": "parquet"},
        headers=auth(),
    )
    frame = pl.read_parquet(io.BytesIO(download.content))
    assert frame.height == 2500
    assert frame["id"].to_list() == list(range(1, 2501))
    assert frame["customer"].null_count() == 25
    assert frame.filter(pl.col("id") == 7)["price"].item() == 1.75
    assert frame["tags"][0] == '["a", "b"]'
    said = await job_text(client, auth, job["id"]) + json.dumps(version)
    assert PG_PASSWORD not in said


@needs_postgres
async def test_a_query_that_writes_times_out_or_fails_fails_the_job_at_once(
    client, auth, wait_job, core, pg_table, synthex_settings
) -> None:

    integration, table = pg_table
    integration_id = await add_integration(core, integration)
    cases = {
        f"DELETE FROM {table} RETURNING id": "Imports only read; PostgreSQL refused a write",
        f"SELECT * FROM {table}; DROP TABLE {table}": "PostgreSQL refused the query",
        "SELECT * FROM no_such_table_here": "PostgreSQL refused the query: UndefinedTableError",
        f"SELECT * FROM {table} WHERE false": "The query returned no rows",
        "SELECT 1 AS a, 2 AS a": "two columns of the same name",
    }
    jobs = {}
    for query in cases:
        started = await start_import(
            client,
            auth,
            {"source": {"kind": "sql", "integration_id": integration_id, "query": query}},
        )
        jobs[query] = started["job"]["id"]
    for query, expected in cases.items():
        job = await wait_job(jobs[query])
        assert job["status"] == "failed", job
        assert job["attempts"] == 1, job
        assert expected in job["error"], job["error"]
        assert PG_PASSWORD not in job["error"]
    conn = await pg_connect()
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 2500
    finally:
        await conn.close()


@needs_postgres
async def test_a_query_longer_than_the_statement_timeout_is_stopped(
    client, auth, wait_job, core, pg_table
) -> None:
    integration, _ = pg_table
    integration_id = await add_integration(core, integration)
    query = "SELECT pg_sleep(30) AS slept"
    started = await start_import(
        client, auth, {"source": {"kind": "sql", "integration_id": integration_id, "query": query}}
    )
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "failed"
    assert job["error"] == "The query ran longer than sql_statement_timeout_seconds (3 s)"
