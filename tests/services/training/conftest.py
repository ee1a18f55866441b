"""Model Training test fixtures: the service on a fresh database and object store.

``service_app`` builds Model Training from the plugin's settings, with the local executor
running worker subprocesses under a fast job policy (timings in fractions of a second), so
a job a test starts really runs. ``wait_job(job_id, until)`` polls the jobs API until
``until(job)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from inwire.kit.jobs.policy import JobPolicy
from inwire.services.training.app import create_app
from inwire.services.training.settings import TrainingSettings

#: Heartbeats, retries and grace periods in fractions of a second.
FAST_POLICY = JobPolicy(
    heartbeat_interval=0.2,
    heartbeat_timeout=3.0,
    start_timeout=60.0,
    poll_interval=0.1,
    flush_interval=0.1,
    retry_base_delay=0.2,
    retry_max_delay=1.0,
    cancel_grace=2.0,
    stop_grace=1.0,
    metrics_interval=0.5,
)

WaitJob = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def training_settings(inwire_settings: dict[str, Any]) -> TrainingSettings:
    """Model Training's settings on the test database, object store and keys."""
    return TrainingSettings(**inwire_settings, jobs_concurrency=2)


@pytest.fixture
def service_app(training_settings: TrainingSettings) -> FastAPI:
    """Model Training, built from test settings, running its jobs with a fast policy."""
    return create_app(training_settings, job_policy=FAST_POLICY)


@pytest.fixture
def wait_job(client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]) -> WaitJob:
    """``await wait_job(job_id, until=lambda j: ...)`` -> the job once ``until`` holds.

    By default waits for a final status; fails with the job and its log on timeout.
    """

    def final(job: dict[str, Any]) -> bool:
        return job["status"] in ("succeeded", "failed", "cancelled")

    async def wait(
        job_id: str,
        until: Callable[[dict[str, Any]], bool] = final,
        *,
        headers: dict[str, str] | None = None,
        wait: float = 90.0,
    ) -> dict[str, Any]:
        headers = headers or auth("viewer")
        deadline = time.monotonic() + wait
        while True:
            r = await client.get(f"/api/v1/jobs/{job_id}", headers=headers)
            assert r.status_code == 200, r.text
            job: dict[str, Any] = r.json()["data"]
            if until(job):
                return job
            if time.monotonic() > deadline:
                logs = await client.get(f"/api/v1/jobs/{job_id}/logs", headers=headers)
                raise AssertionError(f"timed out waiting for job {job}\nlogs: {logs.text}")
            await asyncio.sleep(0.05)

    return wait
