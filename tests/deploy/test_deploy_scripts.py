"""The helper scripts the image carries: the health check and the bucket creator.

Both run against real servers: a local HTTP server standing in for a service's health
endpoint, and moto's S3 protocol server for the bucket.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from moto.server import ThreadedMotoServer

from inwire.kit.storage import open_object_store

DEPLOY = Path(__file__).parents[2] / "deploy"


def load(name: str) -> ModuleType:
    """Import ``deploy/<name>.py`` (the scripts are files in the image, not a package)."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load("healthcheck")
create_bucket = load("create_bucket")


class Health(BaseHTTPRequestHandler):
    """Answers 200 on /health/live and 503 on /health/ready, like a service still starting."""

    def do_GET(self) -> None:
        self.send_response({"/health/live": 200, "/health/ready": 503}.get(self.path, 404))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def health_port() -> Iterator[int]:
    """A local server with the health endpoints of a service that is live but not ready."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_served_reads_service_host_and_port_from_the_command_line() -> None:
    argv = ["/app/.venv/bin/python", "/app/.venv/bin/inwire", "serve", "core"]
    assert healthcheck.served(argv) == ("core", None, None)
    assert healthcheck.served([*argv, "--port", "9000"]) == ("core", None, 9000)
    assert healthcheck.served(["inwire", "serve", "--host=10.0.0.5", "gateway"]) == (
        "gateway",
        "10.0.0.5",
        None,
    )
    gateway = ["/app/.venv/bin/inwire", "gateway", "serve", "--port", "8081"]
    assert healthcheck.served(gateway) == ("gateway", None, 8081)
    with pytest.raises(ValueError, match="not an 'inwire serve'"):
        healthcheck.served(["inwire", "migrate", "all"])


def test_default_port_is_the_registered_one_unless_the_environment_moves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INWIRE_CORE_PORT", raising=False)
    monkeypatch.delenv("INWIRE_GATEWAY_PORT", raising=False)
    assert healthcheck.default_port("core") == 18000
    assert healthcheck.default_port("gateway") == 8080
    monkeypatch.setenv("INWIRE_CORE_PORT", "18500")
    assert healthcheck.default_port("core") == 18500


def test_health_check_passes_on_200_and_fails_otherwise(health_port: int) -> None:
    assert healthcheck.main(["--port", str(health_port)]) == 0
    assert healthcheck.main(["--port", str(health_port), "--path", "/health/ready"]) == 1


def test_health_check_finds_the_port_in_the_main_process_command_line(
    health_port: int, tmp_path: Path
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"\0".join([b"inwire", b"serve", b"core", b"--port", b"%d" % health_port]))
    assert healthcheck.main(["--cmdline", str(cmdline)]) == 0
    cmdline.write_bytes(b"inwire\0migrate\0all\0")
    assert healthcheck.main(["--cmdline", str(cmdline)]) == 1


def test_health_check_fails_when_nothing_listens(health_port: int) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert healthcheck.main(["--port", str(free), "--timeout", "1"]) == 1


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto) on a free local port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for boto3's normal chain, and nothing else it could find."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "inwire")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3secret0123456789")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


async def test_create_bucket_makes_a_bucket_the_services_can_use(
    s3_endpoint: str, aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://compose-test?endpoint_url={s3_endpoint}&region=us-east-1&addressing_style=path"
    assert create_bucket.main(["--url", url, "--wait", "5"]) == 0
    assert "created" in capsys.readouterr().out
    # Again: an existing bucket is fine (compose re-runs storage-init on every `up`).
    assert create_bucket.main(["--url", url, "--wait", "5"]) == 0
    assert "already there" in capsys.readouterr().out
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket="compose-test")["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    store = open_object_store(url)
    await store.put("probe/hello.txt", b"hello")
    assert await store.get_bytes("probe/hello.txt") == b"hello"
    await store.close()


def test_create_bucket_honours_a_region_other_than_us_east_1(
    s3_endpoint: str, aws_env: None
) -> None:
    url = f"s3://compose-eu?endpoint_url={s3_endpoint}&region=eu-west-1"
    assert create_bucket.main(["--url", url, "--wait", "5"]) == 0
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket="compose-eu")["LocationConstraint"] == "eu-west-1"


def test_create_bucket_refuses_a_url_that_is_not_s3(
    aws_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create_bucket.main(["--url", "file:///tmp/objects"]) == 1
    assert "not an s3:// URL" in capsys.readouterr().err
    assert create_bucket.main(["--url", "s3://b?colour=blue"]) == 1
    assert "Unknown S3 store option" in capsys.readouterr().err
    monkeypatch.delenv("INWIRE_STORAGE_URL", raising=False)
    assert create_bucket.main([]) == 2


def test_create_bucket_gives_up_when_the_server_never_answers(
    aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    url = f"s3://b?endpoint_url=http://127.0.0.1:{free}&region=us-east-1"
    assert create_bucket.main(["--url", url, "--wait", "0"]) == 1
    assert "create_bucket:" in capsys.readouterr().err
