"""ModelOps' skeleton: health, migrations, jobs API, upload body-limit exemption."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI

from inwire.kit.testing.plugin import assert_error, schema_drift
from inwire.services.modelops.app import UPLOAD_ROUTES
from inwire.services.modelops.settings import ModelOpsSettings
from inwire.services.modelops.tables import metadata
from inwire.services.registry import get

Auth = Callable[..., dict[str, str]]


async def test_health_ready_checks_database_and_storage(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["service"] == "modelops"
    assert set(r.json()["checks"]) == {"database", "storage"}


async def test_migrated_schema_matches_the_models(app: FastAPI) -> None:
    changes, names = await schema_drift(app, metadata)
    assert changes == []
    assert "alembic_version_modelops" in names


async def test_jobs_api_lists_filters_and_refuses_bad_input(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await client.get("/api/v1/jobs?status=running", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["data"] == []
    assert_error(await client.get("/api/v1/jobs/job_nope", headers=auth()), 404, "NOT_FOUND")
    assert_error(await client.get("/api/v1/jobs"), 401)
    assert_error(await client.get("/api/v1/jobs?status=bogus", headers=auth()), 400)


def test_only_the_version_upload_route_is_exempt_from_the_body_limit() -> None:
    assert UPLOAD_ROUTES.fullmatch("/api/v1/models/churn/versions/upload")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/models/churn/versions")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/models")
    assert not UPLOAD_ROUTES.fullmatch("/api/v1/models/a/b/versions/upload")


def test_registered_on_its_port_and_prefix() -> None:
    spec = get("modelops")
    assert (spec.port, spec.prefix) == (18087, "/modelops")
    assert spec.load_settings_class() is ModelOpsSettings
    settings = ModelOpsSettings(storage_url="memory://")
    assert settings.port == 18087
    assert settings.training_store_url == "memory://"
    other = ModelOpsSettings(storage_url="memory://", training_storage_url="file:///x")
    assert other.training_store_url == "file:///x"
