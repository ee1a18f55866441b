"""Helpers of the build tests: a READY sklearn version, waiting for a build, tar contents,
and a fake Docker Engine API (tests only: no Docker engine runs here)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from modelops_helpers import SKLEARN_MLMODEL, Auth, create_model, upload_version

FINAL = ("succeeded", "failed", "cancelled")


async def sklearn_version(
    client: httpx.AsyncClient, auth: Auth, name: str = "churn", *, requirements: bool = True
) -> dict[str, Any]:
    """Model ``name`` with one READY uploaded sklearn version (MLmodel, pickle, maybe a
    requirements.txt); the version's wire form."""
    await create_model(client, auth, name)
    files = {"MLmodel": SKLEARN_MLMODEL, "model.pkl": b"\x80\x04pickle" * 50}
    if requirements:
        files["requirements.txt"] = b"scikit-learn==1.5.2\nnumpy\n# a comment\n"
    r = await upload_version(client, auth, name, files=files)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def wait_build(
    client: httpx.AsyncClient, auth: Auth, build_id: str, limit: float = 90
) -> dict[str, Any]:
    """Poll the build until it and its job have ended; the build's wire form.

    The build's row reaches its final status inside the job, a moment before the job
    runner records the job's end (which the log endpoint reports), so both are awaited.
    """
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        r = await client.get(f"/api/v1/builds/{build_id}", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        if data["status"] in FINAL:
            logs = await client.get(f"/api/v1/builds/{build_id}/logs", headers=auth("viewer"))
            assert logs.status_code == 200, logs.text
            if logs.json()["meta"]["job_status"] in FINAL:  # the build as the ended job has it
                r = await client.get(f"/api/v1/builds/{build_id}", headers=auth("viewer"))
                assert r.status_code == 200, r.text
                final: dict[str, Any] = r.json()["data"]
                return final
        assert asyncio.get_running_loop().time() < deadline, data
        await asyncio.sleep(0.1)


def tar_members(data: bytes) -> dict[str, bytes]:
    """Name -> content of a tar.gz's files."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member)
            if f is not None:
                out[member.name] = f.read()
    return out


class FakeEngine:
    """What the fake Docker Engine received."""

    def __init__(self) -> None:
        self.builds: list[dict[str, Any]] = []
        self.pushes: list[dict[str, Any]] = []
        self.fail_build = False


@contextmanager
def fake_docker_engine() -> Iterator[tuple[str, FakeEngine]]:
    """A Docker Engine API stand-in on a free port: ``POST /v1.41/build`` reads the tar
    context and answers build output lines; ``POST /v1.41/images/<name>/push`` checks the
    registry auth header and answers a digest."""
    seen = FakeEngine()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _lines(self, messages: list[dict[str, Any]]) -> None:
            body = "".join(json.dumps(m) + "\r\n" for m in messages).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            body = self._body()
            if path == "/v1.41/build":
                names = list(tar_members(body))
                seen.builds.append({"params": params, "names": names})
                if seen.fail_build:
                    self._lines(
                        [
                            {"stream": "Step 1/9 : FROM python:3.11-slim\n"},
                            {"errorDetail": {"message": "pip failed"}, "error": "pip failed"},
                        ]
                    )
                    return
                self._lines(
                    [
                        {"stream": "Step 1/9 : FROM python:3.11-slim\n"},
                        {"stream": " ---> 1234\n"},
                        {"aux": {"ID": "sha256:" + "ab" * 32}},
                        {"stream": "Successfully built abab\n"},
                    ]
                )
            elif path.startswith("/v1.41/images/") and path.endswith("/push"):
                auth = json.loads(base64.urlsafe_b64decode(self.headers["X-Registry-Auth"]))
                seen.pushes.append({"path": path, "params": params, "auth": auth})
                self._lines(
                    [
                        {"status": "Preparing", "id": "abc"},
                        {"status": "v1: digest: sha256:cd size: 1"},
                        {"aux": {"Tag": params.get("tag"), "Digest": "sha256:" + "cd" * 32}},
                    ]
                )
            else:
                self.send_response(404)
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
