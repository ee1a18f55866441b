"""``inwire up --one-process``: every service app under its prefix in one ASGI app."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inwire.allinone.composition import MountedService, _settings, compose, mount_services
from inwire.services.registry import ServiceSpec

HERE = Path(__file__).parent
BASE_URL = "http://127.0.0.1:8080"


def spec(name: str, settings: str) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        package="fake_service",
        port=0,
        prefix=f"/{name}",
        app_factory="fake_service:create_app",
        settings_class=f"fake_service:{settings}",
    )


@pytest.fixture
def fake_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[ServiceSpec]:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("INWIRE_HOME", str(tmp_path))
    for var in ("INWIRE_JWKS_URL", "INWIRE_FAKE_JWKS_URL", "INWIRE_CORE_JWKS_URL"):
        monkeypatch.delenv(var, raising=False)
    return [spec("fake", "FakeSettings"), spec("other", "OtherSettings")]


@pytest.fixture
async def composed(
    fake_services: list[ServiceSpec],
) -> AsyncIterator[tuple[httpx.AsyncClient, list[MountedService]]]:
    mounted = mount_services(fake_services, base_url=BASE_URL)
    app = compose(mounted)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        yield client, mounted


async def test_each_service_answers_under_its_prefix(
    composed: tuple[httpx.AsyncClient, list[MountedService]],
) -> None:
    client, _ = composed

    fake = await client.get("/fake/api/v1/whoami")
    other = await client.get("/other/api/v1/whoami")

    assert fake.status_code == 200
    assert fake.json()["data"]["service"] == "fake"
    assert other.json()["data"]["service"] == "other"
    # Both lifespans ran, in this one process.
    assert fake.json()["data"]["started"] is True
    assert other.json()["data"]["started"] is True
    assert fake.json()["data"]["pid"] == other.json()["data"]["pid"] == os.getpid()


async def test_ready_only_when_every_service_is(
    composed: tuple[httpx.AsyncClient, list[MountedService]],
) -> None:
    client, _ = composed

    parent = await client.get("/health/ready")
    own = await client.get("/other/health/ready")

    assert parent.status_code == 200
    assert parent.json()["checks"] == {"fake": "ready", "other": "ready"}
    assert own.status_code == 200


async def test_unknown_paths_answer_in_the_error_envelope(
    composed: tuple[httpx.AsyncClient, list[MountedService]],
) -> None:
    client, _ = composed

    outside = await client.get("/nowhere")
    inside = await client.get("/fake/api/v1/nowhere")

    assert outside.status_code == 404
    assert outside.json()["error"]["code"] == "NOT_FOUND"
    assert inside.status_code == 404
    assert inside.json()["error"]["code"] == "NOT_FOUND"


async def test_leaving_the_lifespan_stops_every_service(
    fake_services: list[ServiceSpec], tmp_path: Path
) -> None:
    app = compose(mount_services(fake_services, base_url=BASE_URL))

    async with app.router.lifespan_context(app):
        assert not (tmp_path / "fake.stopped").exists()

    assert (tmp_path / "fake.stopped").read_text() == str(os.getpid())
    assert (tmp_path / "other.stopped").read_text() == str(os.getpid())


def test_services_find_core_keys_on_the_shared_port_unless_told_otherwise(
    fake_services: list[ServiceSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_core = [spec("core", "FakeSettings"), fake_services[1]]

    mounted = mount_services(with_core, base_url=BASE_URL)
    assert {m.settings.jwks_url for m in mounted} == {f"{BASE_URL}/core/.well-known/jwks.json"}

    monkeypatch.setenv("INWIRE_JWKS_URL", "https://idp.example/jwks.json")
    mounted = mount_services(with_core, base_url=BASE_URL)
    assert {m.settings.jwks_url for m in mounted} == {"https://idp.example/jwks.json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("inwire.services.core.app") is None, reason="Core not written yet"
)
def test_inwire_up_one_process_serves_the_registry_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "INWIRE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "inwire.cli", "up", "--one-process", "--port", str(port)]
    log = (tmp_path / "up.log").open("w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", trust_env=False)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        log.seek(0)
        assert ready is not None, log.read()
        assert ready.status_code == 200, log.read()
        core = httpx.get(f"http://127.0.0.1:{port}/core/health/ready", trust_env=False)
        assert core.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0


def test_one_process_services_reach_their_peers_on_the_shared_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from inwire.services.registry import SERVICES
    from inwire.services.training.settings import TrainingSettings

    for key in list(os.environ):
        if key.startswith("INWIRE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INWIRE_HOME", str(tmp_path))
    training = next(s for s in SERVICES if s.name == "training")
    settings = _settings(training, BASE_URL, has_core=True)
    assert isinstance(settings, TrainingSettings)
    assert settings.core_url == f"{BASE_URL}/core"
    assert settings.modelops_url == f"{BASE_URL}/modelops"
    assert settings.synthex_url == f"{BASE_URL}/synthex"
