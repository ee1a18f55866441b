"""kit.jobs without an executor: submit, idempotency, the jobs router, registry and URLs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_fixtures import build_app, flaky
from sqlalchemy import update

from inwire.kit.db.base import utcnow
from inwire.kit.db.engine import Database
from inwire.kit.jobs import (
    JobContext,
    JobRegistry,
    JobService,
    UnsupportedExecutor,
    open_executor,
)
from inwire.kit.jobs.repository import JobRepository
from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]


@pytest.fixture
def service_app(inwire_settings: dict[str, Any]) -> FastAPI:
    return build_app(inwire_settings, run_executor=False)


async def post_run(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_type: str = "test.flaky",
    data: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    **extra: Any,
) -> httpx.Response:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    body = {"type": job_type, "input": data if data is not None else {"succeed_on": 1}, **extra}
    return await client.post("/api/v1/runs", json=body, headers=headers)


async def test_same_idempotency_key_returns_the_same_job_per_organization(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    first = await post_run(client, auth("member"), key="gen-42")
    assert first.status_code == 202, first.text
    job = first.json()["data"]
    assert job["status"] == "queued"
    assert job["idempotency_key"] == "gen-42"
    again = await post_run(client, auth("member"), key="gen-42")
    assert again.status_code == 202
    assert again.json()["data"]["id"] == job["id"]

    other_org = await post_run(client, auth("member", "b"), key="gen-42")
    assert other_org.json()["data"]["id"] != job["id"]

    changed = await post_run(client, auth("member"), data={"succeed_on": 2}, key="gen-42")
    assert_error(changed, 409, "IDEMPOTENCY_KEY_REUSED")
    assert_error(await post_run(client, auth("member"), key="k" * 201), 400, "VALIDATION_ERROR")

    without_key = [await post_run(client, auth("member")) for _ in range(2)]
    assert without_key[0].json()["data"]["id"] != without_key[1].json()["data"]["id"]
    listed = await client.get("/api/v1/jobs", headers=auth("viewer"))
    assert listed.json()["meta"]["total"] == 3


async def test_concurrent_submits_with_one_key_create_one_job(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    responses = await asyncio.gather(
        *(post_run(client, auth("member"), key="race") for _ in range(4))
    )
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    assert len({r.json()["data"]["id"] for r in responses}) == 1


async def test_submit_rejects_unknown_type_bad_attempts_and_viewers(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await post_run(client, auth("member"), "test.nope")
    assert_error(r, 400, "VALIDATION_ERROR")
    assert "test.nope" in r.json()["error"]["message"]
    assert_error(await post_run(client, auth("member"), max_attempts=0), 400, "VALIDATION_ERROR")
    assert_error(await post_run(client, auth("viewer")), 403, "FORBIDDEN")
    assert_error(await client.get("/api/v1/jobs"), 401, "UNAUTHORIZED")


async def test_list_filters_by_status_and_type_and_paginates(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    ids = []
    for i in range(5):
        r = await post_run(client, auth("member"), data={"succeed_on": i})
        ids.append(r.json()["data"]["id"])
    await post_run(client, auth("member"), "test.report", {"release": "/nonexistent"})
    await client.post(f"/api/v1/jobs/{ids[0]}/cancel", headers=auth("member"))
    await post_run(client, auth("member", "b"))

    async def listed(query: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/jobs?{query}", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    everything = await listed("")
    assert everything["meta"] == {"page": 1, "per_page": 20, "total": 6}
    assert [j["id"] for j in everything["data"]][1:] == ids[::-1]  # newest first
    assert (await listed("type=test.report"))["meta"]["total"] == 1
    cancelled = await listed("status=cancelled")
    assert [j["id"] for j in cancelled["data"]] == [ids[0]]
    assert (await listed("status=queued&type=test.flaky"))["meta"]["total"] == 4
    page = await listed("per_page=2&page=2&sort=created_at&order=asc")
    assert [j["id"] for j in page["data"]] == ids[2:4]
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 6}
    for bad in ("status=sideways", "sort=input", "per_page=101"):
        r = await client.get(f"/api/v1/jobs?{bad}", headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")


async def test_other_organization_gets_404_and_viewer_cannot_cancel(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    job_id = (await post_run(client, auth("member"))).json()["data"]["id"]
    for method, path in (
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("GET", f"/api/v1/jobs/{job_id}/logs"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
    ):
        r = await client.request(method, path, headers=auth("admin", "b"))
        assert_error(r, 404, "NOT_FOUND")
    assert_error(await client.get("/api/v1/jobs/job_missing", headers=auth()), 404, "NOT_FOUND")
    r = await client.get(f"/api/v1/jobs/{job_id}", headers=auth("viewer"))
    assert r.status_code == 200
    assert "worker_id" not in r.json()["data"]
    viewer = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth("viewer"))
    assert_error(viewer, 403, "FORBIDDEN")
    r = await client.get(f"/api/v1/jobs/{job_id}", headers=auth())
    assert r.json()["data"]["status"] == "queued"


async def test_cancel_queued_job_is_immediate_and_finished_job_is_a_conflict(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    job_id = (await post_run(client, auth("member"))).json()["data"]["id"]
    r = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth("member"))
    assert r.status_code == 200, r.text
    cancelled = r.json()["data"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth("member"))
    assert again.json()["data"]["status"] == "cancelled"

    done_id = (await post_run(client, auth("member"))).json()["data"]["id"]
    jobs: JobService = app.state.jobs
    async with app.state.db.session() as session:
        await session.execute(
            update(jobs.tables.jobs)
            .where(jobs.tables.jobs.c.id == done_id)
            .values(status="succeeded", result={"ok": True}, finished_at=utcnow())
        )
    r = await client.post(f"/api/v1/jobs/{done_id}/cancel", headers=auth("member"))
    assert_error(r, 409, "CONFLICT")
    r = await client.get(f"/api/v1/jobs/{done_id}", headers=auth())
    assert r.json()["data"]["result"] == {"ok": True}


async def test_logs_are_read_by_sequence_number(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    job_id = (await post_run(client, auth("member"))).json()["data"]["id"]
    jobs: JobService = app.state.jobs
    async with app.state.db.session() as session:
        repo = JobRepository.unscoped(session, jobs.tables)
        await repo.append_logs(job_id, [(utcnow(), "info", f"line {i}") for i in range(1, 4)])
        await repo.append_logs(
            job_id, [(utcnow(), "error", "line 4"), (utcnow(), "info", "x" * 5000)]
        )

    r = await client.get(f"/api/v1/jobs/{job_id}/logs?after_seq=2&limit=2", headers=auth("viewer"))
    body = r.json()
    assert [(d["seq"], d["line"], d["level"]) for d in body["data"]] == [
        (3, "line 3", "info"),
        (4, "line 4", "error"),
    ]
    assert body["meta"] == {"after_seq": 2, "limit": 2, "next_after_seq": 4, "job_status": "queued"}
    r = await client.get(f"/api/v1/jobs/{job_id}/logs?after_seq=4", headers=auth())
    (last,) = r.json()["data"]
    assert len(last["line"]) == 4000
    r = await client.get(f"/api/v1/jobs/{job_id}/logs?after_seq=5", headers=auth())
    assert r.json()["data"] == []
    assert r.json()["meta"]["next_after_seq"] == 5
    bad = await client.get(f"/api/v1/jobs/{job_id}/logs?limit=1001", headers=auth())
    assert_error(bad, 400, "VALIDATION_ERROR")


def test_registry_accepts_module_functions_and_paths_only() -> None:
    registry = JobRegistry({"test.flaky": flaky})
    assert registry.target("test.flaky") == "jobs_fixtures:flaky"
    registry.register("test.by_path", "jobs_fixtures:report")
    assert registry.types == ("test.by_path", "test.flaky")

    def local(ctx: JobContext, data: dict[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match="module level"):
        registry.register("test.local", local)
    with pytest.raises(ValueError, match="module level"):
        registry.register("test.lambda", lambda ctx, data: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("test.flaky", flaky)
    with pytest.raises(ValueError, match="job type"):
        registry.register("Bad Type", flaky)
    with pytest.raises(ValueError, match=r"package\.module:function"):
        registry.register("test.path", "not a path")


def test_installed_registry_offers_only_types_whose_module_exists() -> None:
    registry = JobRegistry.installed(
        {
            "test.flaky": "jobs_fixtures:flaky",
            "test.missing": "jobs_fixtures_not_here:run",
            "test.missing_sub": "inwire.kit.no_such_package.jobs:run",
        }
    )
    assert registry.types == ("test.flaky",)


def test_context_clamps_progress_and_buffers_lines() -> None:
    ctx = JobContext(
        job_id="job_1",
        organization_id="org_1",
        job_type="t",
        attempt=1,
        max_attempts=3,
        created_by="usr_1",
    )
    ctx.progress(1.7, "almost")
    ctx.log("two\nlines")
    progress, lines = ctx.take()
    assert progress == (1.0, "almost")
    assert [line for _, _, line in lines] == ["two", "lines"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        ctx.progress(float("nan"))
    assert not ctx.cancelled()
    ctx.request_cancel()
    assert ctx.wait_cancelled(0)
    with pytest.raises(Exception, match="cancelled"):
        ctx.raise_if_cancelled()


async def test_open_executor_names_what_it_supports(tmp_path: Any) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    from inwire.kit.db.base import new_metadata
    from inwire.kit.jobs import job_tables

    jobs = JobService(job_tables(new_metadata()), JobRegistry())
    try:
        assert open_executor("local", db=db, jobs=jobs) is not None
        assert open_executor("local://", db=db, jobs=jobs) is not None
        # Ray connects when the executor starts (tests/kit/test_ray_executor.py).
        assert open_executor("ray:auto", db=db, jobs=jobs) is not None
        with pytest.raises(UnsupportedExecutor, match="expected 'local'"):
            open_executor("celery://broker", db=db, jobs=jobs)
    finally:
        await db.dispose()
