"""kit.jobs with the local executor: real worker subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_fixtures import (
    build_app,
    cancel_scenario,
    gone,
    killed_worker_scenario,
    log_lines,
    retry_scenario,
    start,
    wait_job,
    wait_log,
    worker_pid,
)
from sqlalchemy import update

from inwire.kit.db.base import utcnow
from inwire.kit.jobs import JobService
from inwire.kit.testing import identity

Auth = Callable[..., dict[str, str]]


@pytest.fixture
def service_app(inwire_settings: dict[str, Any]) -> FastAPI:
    return build_app(inwire_settings, run_executor=True)


async def test_progress_and_logs_are_readable_while_running_then_result_on_success(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job_id = await start(client, auth, "test.report", {"steps": 3, "release": str(release)})

    running = await wait_job(client, auth(), job_id, lambda j: j["progress"] >= 0.75)
    assert running["status"] == "running"
    assert running["progress_message"] == "step 3"
    assert running["result"] is None
    r = await client.get(f"/api/v1/jobs/{job_id}/logs", headers=auth("viewer"))
    seen = r.json()
    assert [d["line"] for d in seen["data"]][1:] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    assert seen["data"][0]["line"].startswith("attempt 1 of 3 started")
    assert seen["meta"]["job_status"] == "running"

    release.touch()
    done = await wait_job(client, auth(), job_id, lambda j: j["status"] == "succeeded")
    # The job function saw its service's settings (ctx.settings).
    assert done["result"] == {"steps": 3, "attempt": 1, "jobs_url": "local"}
    assert done["progress"] == 1.0
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["finished_at"] is not None
    assert done["created_by"] == identity("member").user_id
    after = seen["meta"]["next_after_seq"]
    r = await client.get(f"/api/v1/jobs/{job_id}/logs?after_seq={after}", headers=auth())
    rest = r.json()
    assert [d["line"] for d in rest["data"]] == ["released", "succeeded"]
    assert [d["seq"] for d in rest["data"]] == [after + 1, after + 2]
    assert rest["meta"]["job_status"] == "succeeded"

    deadline = time.monotonic() + 10
    wanted = 'inwire_jobs{service="jobsdemo",status="succeeded",type="test.report"} 1.0'
    while wanted not in (text := (await client.get("/metrics")).text):
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.05)


async def test_failing_job_is_retried_with_backoff_then_failed_without_traceback(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await retry_scenario(client, auth)


async def test_cancel_running_job_cooperatively_and_by_terminating_its_worker(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await cancel_scenario(client, auth)


async def test_worker_killed_with_sigkill_is_requeued_and_finished_by_a_new_worker(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    lost = await killed_worker_scenario(client, auth)
    assert "killed by SIGKILL" in lost


@pytest.mark.slow
async def test_hung_worker_is_reaped_after_heartbeat_timeout_and_job_finished_by_a_new_worker(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    job_id = await start(client, auth, "test.slow_first", {})
    pid = worker_pid(await wait_log(client, auth(), job_id, "waiting to be killed"))
    os.kill(pid, signal.SIGSTOP)  # alive, but silent: only the heartbeat can tell

    done = await wait_job(client, auth(), job_id, lambda j: j["status"] == "succeeded")
    assert done["attempts"] == 2
    lines = await log_lines(client, auth(), job_id)
    assert any("worker stopped heartbeating" in line for line in lines), lines
    deadline = time.monotonic() + 10
    while not gone(pid):
        assert time.monotonic() < deadline, f"frozen worker {pid} still alive"
        await asyncio.sleep(0.05)


async def test_jobs_left_running_by_a_dead_executor_are_requeued_or_failed(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    """After a restart nobody runs the old workers: their jobs' heartbeats go stale."""
    jobs: JobService = app.state.jobs
    who = identity("member")
    long_ago = utcnow() - timedelta(hours=1)
    async with app.state.db.session() as session:
        retry = await jobs.submit(
            session, who.org_id, "test.async", {"n": 2}, who.user_id, max_attempts=2
        )
        spent = await jobs.submit(
            session, who.org_id, "test.async", {"n": 3}, who.user_id, max_attempts=2
        )
        for job, attempts in ((retry, 1), (spent, 2)):
            await session.execute(
                update(jobs.tables.jobs)
                .where(jobs.tables.jobs.c.id == job.id)
                .values(
                    status="running",
                    worker_id="wrk_from_before_restart",
                    attempts=attempts,
                    started_at=long_ago - timedelta(minutes=1),
                    heartbeat_at=long_ago,
                )
            )

    failed = await wait_job(client, auth(), spent.id, lambda j: j["status"] == "failed")
    assert failed["error"].startswith("worker stopped heartbeating (no heartbeat for 36")
    lines = await log_lines(client, auth(), spent.id)
    assert lines[-1].startswith("failed after 2 attempts: worker stopped heartbeating")

    done = await wait_job(client, auth(), retry.id, lambda j: j["status"] == "succeeded")
    assert done["attempts"] == 2
    assert done["result"] == {"doubled": 4}
    assert "async job ran" in await log_lines(client, auth(), retry.id)
