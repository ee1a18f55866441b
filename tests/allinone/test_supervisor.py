"""The ``inwire up`` supervisor, on a fake service started as a real child process."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from inwire.allinone.supervisor import (
    Backoff,
    PortInUse,
    ServiceState,
    Supervisor,
    port_is_free,
)
from inwire.services.registry import ServiceSpec

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_spec(name: str = "fake", port: int | None = None) -> ServiceSpec:
    settings = {"fake": "FakeSettings", "other": "OtherSettings"}[name]
    return ServiceSpec(
        name=name,
        package="fake_service",
        port=port or free_port(),
        prefix=f"/{name}",
        app_factory="fake_service:create_app",
        settings_class=f"fake_service:{settings}",
    )


def child_env(**extra: str) -> dict[str, str]:
    """Children find ``fake_service`` next to this file."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, **extra}


def make_supervisor(
    tmp_path: Path, *specs: ServiceSpec, console: Console | None = None, **env: str
) -> Supervisor:
    return Supervisor(
        specs or (fake_spec(),),
        home=tmp_path,
        backoff=Backoff(initial=0.1, maximum=0.5),
        ready_timeout=90,
        stop_timeout=15,
        env=child_env(**env),
        console=console,
    )


async def whoami(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        response = await client.get(f"{url}/api/v1/whoami")
    response.raise_for_status()
    data: dict[str, object] = response.json()["data"]
    return data


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` for up to 60 s: the supervisor exposes states, not events, for it."""
    async with asyncio.timeout(60):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async with make_supervisor(tmp_path) as sup:
        yield sup


def test_backoff_doubles_from_initial_up_to_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=4)

    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


async def test_start_waits_until_every_service_answers_ready(supervisor: Supervisor) -> None:
    svc = supervisor.services["fake"]

    assert svc.state is ServiceState.READY
    body = await whoami(svc.url)
    assert body["pid"] == svc.pid
    assert body["started"] is True
    assert svc.log_path.is_file()


async def test_a_killed_service_is_restarted_and_ready_again(supervisor: Supervisor) -> None:
    svc = supervisor.services["fake"]
    first = svc.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)
    await until(lambda: svc.pid not in (None, first) and svc.state is ServiceState.READY)

    assert svc.restarts == 1
    assert svc.last_exit == -signal.SIGKILL
    assert (await whoami(svc.url))["pid"] == svc.pid


async def test_stop_shuts_every_child_down_gracefully(tmp_path: Path) -> None:
    specs = (fake_spec("fake"), fake_spec("other"))
    async with make_supervisor(tmp_path, *specs) as sup:
        processes = {name: svc.process for name, svc in sup.services.items()}
        pids = {name: svc.pid for name, svc in sup.services.items()}

    for name, process in processes.items():
        assert process is not None
        # 0, not -SIGTERM or -SIGKILL: uvicorn shut down and ran the app's lifespan exit.
        assert process.returncode == 0
        assert (tmp_path / f"{name}.stopped").read_text() == str(pids[name])
    assert all(port_is_free("127.0.0.1", spec.port) for spec in specs)
    assert all(svc.state is ServiceState.STOPPED for svc in sup.services.values())


async def test_a_taken_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        spec = fake_spec(port=taken.getsockname()[1])
        sup = make_supervisor(tmp_path, spec)

        with pytest.raises(PortInUse, match="fake"):
            await sup.start()

    assert sup.services["fake"].process is None


@pytest.mark.slow
async def test_a_service_failing_at_start_is_retried_with_backoff(tmp_path: Path) -> None:
    sup = make_supervisor(tmp_path, INWIRE_FAKE_FAIL_ON_START="true")
    sup.ready_timeout = 0.5
    svc = sup.services["fake"]
    try:
        assert await sup.start() is False
        await until(lambda: svc.restarts >= 2)

        assert svc.failures >= 2
        assert svc.last_exit not in (None, 0)
        assert svc.state in (ServiceState.STARTING, ServiceState.RESTARTING)
        assert not svc.ready.is_set()
        assert "configured to fail on start" in svc.log_path.read_text()
    finally:
        await sup.stop()


async def test_run_prints_the_table_and_stops_on_sigterm(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    sup = make_supervisor(tmp_path, console=console)
    svc = sup.services["fake"]
    running = asyncio.create_task(sup.run())
    await until(lambda: "Press Ctrl-C" in out.getvalue() or running.done())
    assert not running.done()
    process = svc.process

    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(running, 30)

    assert code == 0
    assert process is not None
    assert process.returncode == 0
    text = out.getvalue()
    assert "fake" in text
    assert svc.url in text
    assert "ready" in text
    assert "Stopped." in text


def test_services_are_told_where_core_serves_its_keys(tmp_path: Path) -> None:
    core = ServiceSpec(
        name="core",
        package="fake_service",
        port=28000,
        prefix="/core",
        app_factory="fake_service:create_app",
        settings_class="fake_service:FakeSettings",
    )
    moved = Supervisor([core, fake_spec()], home=tmp_path, env={"INWIRE_CORE_PORT": "28111"})
    assert moved._env["INWIRE_JWKS_URL"] == "http://127.0.0.1:28111/.well-known/jwks.json"
    given = "http://keys.example/jwks.json"
    kept = Supervisor([core], home=tmp_path, env={"INWIRE_JWKS_URL": given})
    assert kept._env["INWIRE_JWKS_URL"] == given
    assert "INWIRE_JWKS_URL" not in Supervisor([fake_spec()], home=tmp_path, env={})._env or (
        os.environ.get("INWIRE_JWKS_URL")
    )


def test_services_are_told_where_their_peers_listen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inwire.services.registry import SERVICES
    from inwire.services.training.settings import TrainingSettings

    for key in list(os.environ):
        if key.startswith("INWIRE_"):
            monkeypatch.delenv(key)
    env = {
        "INWIRE_CORE_PORT": "28100",
        "INWIRE_SYNTHEX_PORT": "28190",
        "INWIRE_MODELOPS_URL": "http://modelops.example",
    }
    supervisor = Supervisor(list(SERVICES), home=tmp_path, env=env)
    assert supervisor._env["INWIRE_SYNTHEX_URL"] == "http://127.0.0.1:28190"
    assert supervisor._env["INWIRE_MODELOPS_URL"] == "http://modelops.example"
    assert "INWIRE_GATEWAY_URL" not in supervisor._env

    # What a Model Training process started with that environment reads.
    for key, value in supervisor._env.items():
        if key.startswith("INWIRE_"):
            monkeypatch.setenv(key, value)
    child = TrainingSettings()
    assert child.synthex_url == "http://127.0.0.1:28190"
    assert child.modelops_url == "http://modelops.example"
    assert child.core_url == supervisor._env["INWIRE_CORE_URL"] == "http://127.0.0.1:28100"
