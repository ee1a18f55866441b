"""kit.jobs with the Ray executor, against a real Ray instance started for the session.

The instance (``ray start --head`` in its own process group, private temp dir and ports)
starts once, takes about 20 s, and is stopped by its process group at the end. The job
functions are the local executor's (``jobs_fixtures``), run as Ray tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_fixtures import (
    FAST_POLICY,
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

from inwire.kit.db.base import new_metadata
from inwire.kit.db.engine import Database
from inwire.kit.jobs import JobRegistry, JobService, UnsupportedExecutor, job_tables, open_executor
from inwire.kit.jobs.ray_executor import RayExecutor, RayTarget, ray_target

Auth = Callable[..., dict[str, str]]

# Ray worker processes start slowly on a loaded machine (over 30 s seen in CI): an attempt
# whose worker is still starting must not be called lost, nor a live one whose heartbeats
# are held up.
RAY_POLICY = replace(FAST_POLICY, heartbeat_timeout=15.0, start_timeout=180.0)


# -- jobs_url parsing (fast) --------------------------------------------------------------------


def test_ray_urls_name_the_cluster_and_what_each_attempt_reserves() -> None:
    assert ray_target("ray:auto") == RayTarget("auto")
    assert ray_target("ray:10.0.0.5:6379?num_cpus=2&num_gpus=0.5") == RayTarget(
        "10.0.0.5:6379", {"num_cpus": 2.0, "num_gpus": 0.5}
    )
    for bad, message in [
        ("ray:", "expected"),
        ("ray://head:10001/path", "expected ray://host:port"),
        ("ray:auto?memory=1", "unknown option 'memory'"),
        ("ray:auto?num_cpus=-1", "num_cpus must be a number >= 0"),
        ("ray:auto?num_gpus=many", "num_gpus must be a number >= 0"),
    ]:
        with pytest.raises(UnsupportedExecutor, match=message):
            ray_target(bad)


def test_ray_client_url_needs_the_client_extra_unless_installed() -> None:
    try:
        import grpc  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedExecutor, match=r"pip install 'ray\[client\]'"):
            ray_target("ray://head:10001")
    else:
        assert ray_target("ray://head:10001") == RayTarget("ray://head:10001")


async def test_ray_url_without_ray_installed_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    jobs = JobService(job_tables(new_metadata()), JobRegistry())
    try:
        with pytest.raises(UnsupportedExecutor, match=r"pip install 'inwire\[ray\]'"):
            open_executor("ray://10.0.0.1:10001", db=db, jobs=jobs)
        with pytest.raises(UnsupportedExecutor, match=r"pip install 'inwire\[ray\]'"):
            open_executor("ray:auto", db=db, jobs=jobs)
        monkeypatch.delitem(sys.modules, "ray")
        assert isinstance(open_executor("ray:auto", db=db, jobs=jobs), RayExecutor)
    finally:
        await db.dispose()


# -- a real Ray instance ------------------------------------------------------------------------


@dataclass
class RayCluster:
    """A Ray head started for the test session."""

    #: Its GCS address (``ray:<address>`` attaches to it as a node of the cluster).
    address: str
    #: Its Ray Client address, when Ray's client extra is installed.
    client_address: str | None
    #: The process group of every process of this instance (and only of it).
    pgid: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pgid: int) -> None:
    """End this Ray instance's processes (its own process group), politely then not.

    Some of them outlive SIGTERM for good (CI's session teardown waited out a 15 s grace
    each time), so the grace is short."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _group_alive(pgid):
            return


def _start_head() -> tuple[RayCluster, str, str]:
    """``ray start --head`` once, on fresh ports and a fresh temp dir: the cluster, its temp
    dir, and ``""`` or why it did not start (its processes are stopped then)."""
    # Short: Ray's unix sockets live under it.
    temp_dir = tempfile.mkdtemp(prefix="inwray", dir="/tmp")
    client_port = _free_port() if _has_grpc() else None
    gcs_port = _free_port()
    ports = {
        "--port": gcs_port,
        "--node-manager-port": _free_port(),
        "--object-manager-port": _free_port(),
        "--dashboard-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
        "--metrics-export-port": _free_port(),
    }
    if client_port is not None:
        ports["--ray-client-server-port"] = client_port
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--object-store-memory=100000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    env = {
        **os.environ,
        # A throwaway instance on localhost: no token (Ray 2.60 would use ~/.ray/auth_token).
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    }
    # Its own session: every process of this instance shares one process group, which is
    # how it is stopped (``ray stop`` would stop every Ray on the machine).
    started = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cluster = RayCluster(
        address=f"127.0.0.1:{gcs_port}",
        client_address=None if client_port is None else f"127.0.0.1:{client_port}",
        pgid=started.pid,
    )
    try:
        output, _ = started.communicate(timeout=180)
        failure = "" if started.returncode == 0 else f"exit {started.returncode}:\n{output[-3000:]}"
    except subprocess.TimeoutExpired:
        failure = "no answer in 180 s"
    if failure:
        if started.poll() is None:
            started.kill()
            started.wait()
        _stop_group(cluster.pgid)
        shutil.rmtree(temp_dir, ignore_errors=True)
    return cluster, temp_dir, failure


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A Ray head with 2 CPUs, a private temp dir and free ports; stopped after.

    Started a second time if the first fails: a port picked free can be taken by another
    process before Ray binds it, and a loaded machine can miss Ray's own start deadlines.
    """
    pytest.importorskip("ray")
    failures: list[str] = []
    for _ in range(2):
        cluster, temp_dir, failure = _start_head()
        if not failure:
            break
        failures.append(failure)
    else:
        pytest.fail("ray start failed twice:\n" + "\n---\n".join(failures))
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved
        _stop_group(cluster.pgid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _has_grpc() -> bool:
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def service_app(inwire_settings: dict[str, Any], ray_cluster: RayCluster) -> FastAPI:
    # Heartbeats come from Ray worker processes, which a loaded machine can hold up for
    # seconds: a 2 s timeout would call a live attempt lost.
    return build_app(
        {**inwire_settings, "jobs_url": f"ray:{ray_cluster.address}"},
        run_executor=True,
        policy=RAY_POLICY,
    )


async def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 20
    while not gone(pid):
        assert time.monotonic() < deadline, f"Ray worker {pid} still alive"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_job_runs_as_a_ray_task_with_live_logs_and_progress_then_its_result(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, tmp_path: Path, ray_cluster: RayCluster
) -> None:
    assert isinstance(app.state.jobs.executor, RayExecutor)
    release = tmp_path / "release"
    job_id = await start(client, auth, "test.report", {"steps": 3, "release": str(release)})

    running = await wait_job(client, auth(), job_id, lambda j: j["progress"] >= 0.75)
    assert running["status"] == "running"
    assert running["progress_message"] == "step 3"
    lines = await log_lines(client, auth(), job_id)
    assert lines[0].startswith("attempt 1 of 3 started on")
    assert lines[1:] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    # A Ray worker process runs it, not this process and not a local worker subprocess.
    pid = worker_pid(lines)
    assert pid != os.getpid()
    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert title == "ray::inwire-job:test.report"

    release.touch()
    done = await wait_job(client, auth(), job_id, lambda j: j["status"] == "succeeded")
    assert done["result"] == {"steps": 3, "attempt": 1, "jobs_url": f"ray:{ray_cluster.address}"}
    assert done["progress"] == 1.0
    assert done["attempts"] == 1
    assert (await log_lines(client, auth(), job_id))[-2:] == ["released", "succeeded"]
    await wait_gone(pid)  # one Ray worker process per attempt


@pytest.mark.slow
async def test_failing_ray_task_is_retried_with_backoff_then_failed_and_job_failed_is_final(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await retry_scenario(client, auth)


@pytest.mark.slow
async def test_cancel_reaches_the_ray_task_through_the_job_row_then_ray_cancel_force(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await cancel_scenario(client, auth)


@pytest.mark.slow
async def test_ray_worker_killed_mid_job_loses_the_attempt_and_the_job_is_retried(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    lost = await killed_worker_scenario(client, auth)
    assert "Ray task failed: WorkerCrashedError" in lost, lost


@pytest.mark.slow
async def test_shutdown_stops_the_ray_task_and_requeues_its_job(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    job_id = await start(
        client, auth, "test.report", {"steps": 1, "release": str(tmp_path / "never")}
    )
    pid = worker_pid(await wait_log(client, auth(), job_id, "step 1 of 1"))
    executor = app.state.jobs.executor
    await executor.stop()

    r = await client.get(f"/api/v1/jobs/{job_id}", headers=auth())
    job = r.json()["data"]
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert (await log_lines(client, auth(), job_id))[-1] == "interrupted by shutdown; requeued"
    await wait_gone(pid)


@pytest.mark.slow
async def test_ray_client_url_runs_jobs_the_same_way(
    inwire_settings: dict[str, Any], ray_cluster: RayCluster, auth: Auth, tmp_path: Path
) -> None:
    """``ray://`` goes through Ray Client (only where Ray's client extra is installed)."""
    if ray_cluster.client_address is None:
        pytest.skip("Ray Client needs Ray's client extra (grpcio): pip install 'ray[client]'")
    url = f"ray://{ray_cluster.client_address}"
    app = build_app({**inwire_settings, "jobs_url": url}, run_executor=True, policy=RAY_POLICY)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            release = tmp_path / "release"
            job_id = await start(client, auth, "test.report", {"steps": 2, "release": str(release)})
            await wait_log(client, auth(), job_id, "step 2 of 2")
            release.touch()
            done = await wait_job(client, auth(), job_id, lambda j: j["status"] == "succeeded")
            assert done["result"] == {"steps": 2, "attempt": 1, "jobs_url": url}
            lost = await killed_worker_scenario(client, auth)
            assert "Ray task failed" in lost, lost


@pytest.mark.slow
def test_start_gives_up_on_an_unreachable_cluster_and_the_process_still_exits(
    tmp_path: Path,
) -> None:
    """``ray.init`` retries an unreachable cluster for minutes; ``start`` does not wait."""
    pytest.importorskip("ray")
    script = f"""
import asyncio
from inwire.kit.db.base import new_metadata
from inwire.kit.db.engine import Database
from inwire.kit.jobs import JobRegistry, JobService, job_tables, open_executor, ray_executor

ray_executor.CONNECT_TIMEOUT = 2.0

async def main():
    db = Database("sqlite+aiosqlite:///{tmp_path / "x.db"}")
    jobs = JobService(job_tables(new_metadata()), JobRegistry())
    executor = open_executor("ray:127.0.0.1:{_free_port()}", db=db, jobs=jobs)
    try:
        await executor.start()
    except RuntimeError as exc:
        print("refused:", exc)
    finally:
        await db.dispose()

asyncio.run(main())
"""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert "refused: cannot connect to the Ray cluster at 127.0.0.1:" in done.stdout, done
    assert "within 2 s" in done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
