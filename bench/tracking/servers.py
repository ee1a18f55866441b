"""Tracking servers for the benchmarks, each a real process: Inwire's Model Training
(uvicorn, one worker) and ``mlflow server`` (its own virtualenv), on SQLite or a fresh
PostgreSQL database; and the resident memory of a server's whole process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: ``mlflow server``'s own virtualenv (gitignored): ``uv venv bench/.venvs/mlflow`` then
#: ``uv pip install -p bench/.venvs/mlflow mlflow==3.17.2 psycopg2-binary``.
MLFLOW_VENV = ROOT / "bench" / ".venvs" / "mlflow"


@dataclass(frozen=True)
class Server:
    """A running tracking server: its base URL, a bearer token (or none) and its pid."""

    name: str
    url: str
    token: str | None
    pid: int


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url}: the server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and its workers (it runs in its own process group)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@contextmanager
def postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh database ``<prefix>_<random>`` on the server of ``admin_url``
    (``postgresql://user@host:port/db``), dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    base = admin_url.rsplit("/", 1)[0]

    def psql(sql: str) -> None:
        subprocess.run(["psql", admin_url, "-q", "-c", sql], check=True)

    psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def inwire_server(tmp: Path, database_url: str = "", schema: str = "") -> Iterator[Server]:
    """Model Training under uvicorn (one worker): SQLite in ``tmp`` unless
    ``database_url`` (``postgresql+asyncpg://…``, in ``schema`` when given); an admin JWT
    for organization ``a``."""
    from inwire.kit.testing.plugin import TestKeys

    keys = TestKeys(tmp)
    port = free_port()
    env = {
        **os.environ,
        "INWIRE_TRAINING_HOME": str(tmp),
        "INWIRE_TRAINING_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp}/training.db",
        "INWIRE_TRAINING_DATABASE_SCHEMA": schema,
        "INWIRE_TRAINING_STORAGE_URL": f"file://{tmp}/objects",
        "INWIRE_TRAINING_JWKS_URL": keys.jwks_url,
        "INWIRE_TRAINING_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "--factory",
            "inwire.services.training.app:create_app",
            "--port", str(port), "--log-level", "warning", "--no-access-log",
        ],
        env=env,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{url}/health/ready", proc)
        yield Server("Inwire", url, keys.token("admin", ttl=6 * 3600), proc.pid)
    finally:
        _stop(proc)


@contextmanager
def mlflow_server(tmp: Path, database_url: str = "", workers: int = 2) -> Iterator[Server]:
    """``mlflow server`` from its own virtualenv with ``workers`` workers: SQLite in ``tmp``
    unless ``database_url`` (``postgresql://…``, psycopg2)."""
    exe = MLFLOW_VENV / "bin" / "mlflow"
    if not exe.exists():
        raise SystemExit(
            f"{exe} is missing: uv venv {MLFLOW_VENV} && "
            f"uv pip install -p {MLFLOW_VENV} mlflow==3.17.2 psycopg2-binary"
        )
    port = free_port()
    store = database_url or f"sqlite:///{tmp}/mlflow.db"
    (tmp / "mlartifacts").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            str(exe), "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--backend-store-uri", store,
            "--artifacts-destination", str(tmp / "mlartifacts"),
            # uvicorn kills a worker that misses a 5 s health check: on a busy machine that
            # restarts MLflow's workers mid-request, which is not what is measured here.
            "--uvicorn-opts", "--timeout-worker-healthcheck 600",
        ],
        cwd=tmp,
        env={**os.environ, "PATH": f"{MLFLOW_VENV}/bin:{os.environ.get('PATH', '')}"},
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "mlflow.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_ready(f"{url}/health", proc, timeout=300)
        except SystemExit:
            print((tmp / "mlflow.log").read_text()[-3000:], file=sys.stderr)
            raise
        yield Server("MLflow", url, None, proc.pid)
    finally:
        _stop(proc)
