"""Job functions for the kit.jobs tests; worker subprocesses import them by path."""

import time
from pathlib import Path
from typing import Any

from inwire.kit.jobs.context import JobContext
from inwire.kit.jobs.policy import JobPolicy

#: Heartbeats, retries and grace periods in fractions of a second.
FAST_POLICY = JobPolicy(
    heartbeat_interval=0.2,
    heartbeat_timeout=2.0,
    start_timeout=30.0,
    poll_interval=0.1,
    flush_interval=0.1,
    retry_base_delay=0.4,
    retry_max_delay=2.0,
    cancel_grace=1.0,
    stop_grace=1.0,
    metrics_interval=0.2,
)


def report(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Log and report progress for ``steps`` steps, then wait for the ``release`` file."""
    steps = int(data.get("steps", 3))
    for i in range(1, steps + 1):
        ctx.log(f"step {i} of {steps}")
        ctx.progress(i / (steps + 1), f"step {i}")
    release = Path(data["release"])
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    ctx.log("released")
    return {"steps": steps, "attempt": ctx.attempt, "jobs_url": ctx.settings.get("jobs_url")}


def flaky(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Raise until attempt ``succeed_on``, then succeed."""
    if ctx.attempt < int(data["succeed_on"]):
        ctx.log(f"attempt {ctx.attempt} about to fail")
        raise ValueError(f"boom on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def refuses(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Fail for good: input that no retry can fix."""
    from inwire.kit.jobs.context import JobFailed

    raise JobFailed("the input cannot work")


def cooperative(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Work until cancelled, then return a partial result that must be discarded."""
    n = 0
    while not ctx.wait_cancelled(0.05):
        n += 1
        ctx.progress(min(0.9, n / 1000), "working")
    ctx.log("noticed the cancel request")
    return {"partial": True, "iterations": n}


def stubborn(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Ignore cancel requests (and everything else) for a long time."""
    ctx.log("ignoring cancel requests")
    time.sleep(60)
    return {"finished": True}


def slow_first_attempt(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Hang on the first attempt (to be killed or frozen by the test); finish on retries."""
    if ctx.attempt == 1:
        ctx.log("first attempt: waiting to be killed")
        ctx.progress(0.5, "half way")
        time.sleep(60)
    return {"attempt": ctx.attempt}


async def quick_async(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """An ``async def`` job function."""
    ctx.log("async job ran")
    return {"doubled": int(data.get("n", 1)) * 2}


def not_json(ctx: JobContext, data: dict[str, Any]) -> Any:
    """Return a result that cannot be stored."""
    return {"when": object()}


# -- the test service (built inside functions, so worker processes never run this) ----------


def build_app(
    inwire_settings: dict[str, Any], *, run_executor: bool, policy: JobPolicy = FAST_POLICY
) -> Any:
    """A small service with job tables, a job-starting endpoint and the jobs router."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Annotated

    from fastapi import FastAPI
    from pydantic import BaseModel, Field

    from inwire.kit.api import APIRouter, Item
    from inwire.kit.app import create_service_app
    from inwire.kit.auth import Principal, require
    from inwire.kit.db import SessionDep
    from inwire.kit.db.base import new_metadata
    from inwire.kit.jobs import (
        IdempotencyKeyDep,
        JobOut,
        JobRegistry,
        JobsDep,
        JobService,
        job_item,
        job_tables,
        jobs_router,
        run_jobs,
    )
    from inwire.kit.settings import ServiceSettings

    class JobsDemoSettings(ServiceSettings):
        service = "jobsdemo"
        model_config = {"env_prefix": "INWIRE_JOBSDEMO_"}  # noqa: RUF012

    class RunIn(BaseModel):
        type: str
        input: dict[str, Any] = Field(default_factory=dict)
        max_attempts: int = 3

    router = APIRouter()

    @router.post("/runs", status_code=202)
    async def start_run(
        body: RunIn,
        session: SessionDep,
        jobs: JobsDep,
        key: IdempotencyKeyDep,
        who: Annotated[Principal, require("jobs:create")],
    ) -> Item[JobOut]:
        """Start a job."""
        job = await jobs.submit(
            session,
            who.org,
            body.type,
            body.input,
            who.subject,
            idempotency_key=key,
            max_attempts=body.max_attempts,
        )
        return job_item(job)

    metadata = new_metadata()
    tables = job_tables(metadata)
    registry = JobRegistry(
        {
            "test.report": report,
            "test.flaky": flaky,
            "test.refuses": refuses,
            "test.cooperative": cooperative,
            "test.stubborn": stubborn,
            "test.slow_first": slow_first_attempt,
            "test.async": quick_async,
            "test.not_json": not_json,
        }
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        if not run_executor:
            yield
            return
        async with run_jobs(app, policy=policy):
            yield

    settings = JobsDemoSettings(**inwire_settings, jobs_concurrency=2)
    app = create_service_app(
        settings, title="Jobs demo", routers=[router, jobs_router()], lifespan=lifespan
    )
    app.state.jobs = JobService(tables, registry)
    return app


async def wait_job(
    client: Any,
    headers: dict[str, str],
    job_id: str,
    until: Any,
    *,
    wait: float = 180.0,
) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until ``until(job)`` holds; fail with the last state.

    The wait is long because a loaded machine can take 30 s to start a Ray worker, and a
    retried job starts two.
    """
    import asyncio

    deadline = time.monotonic() + wait
    while True:
        r = await client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()["data"]
        if until(job):
            return job
        if time.monotonic() > deadline:
            lines = await log_lines(client, headers, job_id)
            raise AssertionError(f"timed out waiting for job: {job}\nlogs: {lines}")
        await asyncio.sleep(0.05)


async def log_lines(client: Any, headers: dict[str, str], job_id: str) -> list[str]:
    """Every log line of a job, as text."""
    r = await client.get(f"/api/v1/jobs/{job_id}/logs", headers=headers)
    assert r.status_code == 200, r.text
    return [entry["line"] for entry in r.json()["data"]]


async def wait_log(
    client: Any, headers: dict[str, str], job_id: str, fragment: str, *, wait: float = 60.0
) -> list[str]:
    """Poll a job's log until a line contains ``fragment``."""
    import asyncio

    deadline = time.monotonic() + wait
    while True:
        lines = await log_lines(client, headers, job_id)
        if any(fragment in line for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {fragment!r}: {lines}")
        await asyncio.sleep(0.05)


async def start(client: Any, auth: Any, job_type: str, data: dict[str, Any], **extra: Any) -> str:
    """Start a job of ``job_type`` through the demo service's ``POST /runs``; its id."""
    r = await client.post(
        "/api/v1/runs", json={"type": job_type, "input": data, **extra}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    return str(r.json()["data"]["id"])


def gone(pid: int) -> bool:
    """Whether no process has this id any more."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def worker_pid(lines: list[str]) -> int:
    """The pid a worker wrote in its 'attempt … started' line (the latest one)."""
    import re

    pids = [int(m.group(1)) for line in lines if (m := re.search(r"\(pid (\d+)\)", line))]
    assert pids, lines
    return pids[-1]


# -- scenarios every executor must pass ----------------------------------------------------------


async def retry_scenario(client: Any, auth: Any) -> None:
    """Failures are retried with backoff, then fail the job; JobFailed and unstorable
    results fail at once; no traceback reaches the API."""
    from datetime import datetime, timedelta

    doomed = await start(client, auth, "test.flaky", {"succeed_on": 99}, max_attempts=2)
    recovers = await start(client, auth, "test.flaky", {"succeed_on": 2}, max_attempts=3)
    refused = await start(client, auth, "test.refuses", {}, max_attempts=3)
    unstorable = await start(client, auth, "test.not_json", {}, max_attempts=1)

    failed = await wait_job(client, auth(), doomed, lambda j: j["status"] == "failed")
    assert failed["attempts"] == 2
    assert failed["error"] == "ValueError: boom on attempt 2"
    assert failed["result"] is None
    r = await client.get(f"/api/v1/jobs/{doomed}/logs", headers=auth())
    entries = r.json()["data"]
    lines = [e["line"] for e in entries]
    assert "Traceback" not in r.text
    retry = next(
        e for e in entries if "attempt 1 failed: ValueError: boom on attempt 1" in e["line"]
    )
    assert "retrying in" in retry["line"]
    second = next(e for e in entries if e["line"].startswith("attempt 2 of 2 started"))
    waited = datetime.fromisoformat(second["at"]) - datetime.fromisoformat(retry["at"])
    # The first retry waits the base delay (0.4 s) less at most 10 % jitter.
    assert waited >= timedelta(seconds=0.35), lines
    assert lines[-1] == "failed after 2 attempts: ValueError: boom on attempt 2"

    ok = await wait_job(client, auth(), recovers, lambda j: j["status"] == "succeeded")
    assert ok["attempts"] == 2
    assert ok["result"] == {"attempt": 2}
    assert ok["error"] is None

    # JobFailed ends the job at once, its message as the error, with attempts left.
    final = await wait_job(client, auth(), refused, lambda j: j["status"] == "failed")
    assert final["attempts"] == 1
    assert final["error"] == "the input cannot work"

    # A result that cannot be stored fails the job rather than being half-stored.
    bad = await wait_job(client, auth(), unstorable, lambda j: j["status"] == "failed")
    assert bad["result"] is None
    assert bad["error"].startswith("TypeError: job result is not JSON serializable")


async def cancel_scenario(client: Any, auth: Any) -> None:
    """A cooperative job stops by itself; a stubborn one's worker is ended after the grace."""
    import asyncio

    polite = await start(client, auth, "test.cooperative", {})
    stubborn = await start(client, auth, "test.stubborn", {})
    await wait_job(client, auth(), polite, lambda j: j["progress"] > 0)
    pid = worker_pid(await wait_log(client, auth(), stubborn, "ignoring cancel requests"))

    for job_id in (polite, stubborn):
        r = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth("member"))
        assert r.status_code == 200, r.text
        assert r.json()["data"]["cancel_requested"] is True

    stopped = await wait_job(client, auth(), polite, lambda j: j["status"] == "cancelled")
    assert stopped["result"] is None  # the partial result it returned is dropped
    assert "noticed the cancel request" in await log_lines(client, auth(), polite)

    killed = await wait_job(client, auth(), stubborn, lambda j: j["status"] == "cancelled")
    assert killed["result"] is None
    lines = await log_lines(client, auth(), stubborn)
    assert any("did not stop within 1 s of the cancel request" in line for line in lines)
    deadline = time.monotonic() + 10
    while not gone(pid):
        assert time.monotonic() < deadline, f"worker {pid} still alive"
        await asyncio.sleep(0.05)


async def killed_worker_scenario(client: Any, auth: Any) -> str:
    """A worker killed mid-job loses the attempt; a new one finishes the job. Returns the
    'attempt 1 lost' log line, whose reason depends on the executor."""
    import os
    import signal

    job_id = await start(client, auth, "test.slow_first", {})
    pid = worker_pid(await wait_log(client, auth(), job_id, "waiting to be killed"))
    os.kill(pid, signal.SIGKILL)

    done = await wait_job(client, auth(), job_id, lambda j: j["status"] == "succeeded")
    assert done["attempts"] == 2
    assert done["result"] == {"attempt": 2}
    lines = await log_lines(client, auth(), job_id)
    lost = next(line for line in lines if line.startswith("attempt 1 lost"))
    assert "retrying in" in lost
    assert worker_pid(lines) != pid
    return lost
