"""Model Training's skeleton: health, migrations, jobs API, upload body-limit exemption."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import inspect

from inwire.kit.testing.plugin import assert_error
from inwire.services.training.app import UPLOAD_ROUTES, job_registry
from inwire.services.training.models import metadata

Auth = Callable[..., dict[str, str]]


async def test_health_ready_checks_database_and_storage(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["service"] == "training"
    assert set(r.json()["checks"]) == {"database", "storage"}


async def test_migrated_schema_matches_the_models(app: FastAPI) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: (
                    not (kind == "table" and str(name).startswith("alembic_version"))
                ),
            },
        )
        return compare_metadata(context, metadata)

    async with app.state.db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert changes == []
    assert "alembic_version_training" in names


async def test_jobs_api_lists_filters_and_hides_other_organizations(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await client.get("/api/v1/jobs?status=running&type=training.train", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["data"] == []
    assert_error(await client.get("/api/v1/jobs/job_nope", headers=auth()), 404, "NOT_FOUND")
    assert_error(await client.get("/api/v1/jobs"), 401)
    assert_error(await client.get("/api/v1/jobs?status=bogus", headers=auth()), 400)


def test_upload_routes_are_exactly_the_artifact_upload_routes() -> None:
    assert UPLOAD_ROUTES.fullmatch("/api/v1/runs/run_1/artifacts/model/model.pkl")
    assert UPLOAD_ROUTES.fullmatch("/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/x.bin")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/runs/run_1/artifacts")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/runs/run_1")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/runs/search")


def test_only_job_types_whose_module_exists_are_registered() -> None:
    registry = job_registry()
    assert set(registry.types) <= {"training.train", "training.tune"}


async def test_openapi_document_resolves_every_reference(client: httpx.AsyncClient) -> None:
    import json
    import re

    doc = (await client.get("/openapi.json")).json()
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc)))
    assert {r.rpartition("/")[2] for r in refs} <= set(doc["components"]["schemas"])
    assert "/api/v1/runs/{run_id}/metrics" in doc["paths"]
    body = doc["paths"]["/api/v1/runs/{run_id}/metrics"]["post"]["requestBody"]
    assert "application/json" in body["content"]
