"""Upload limits: the upload route skips max_body_bytes and counts max_upload_bytes, files
stream to the store, and a failed upload leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from modelops_helpers import Auth, create_model, run_key

from inwire.kit.storage import ObjectStore
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.settings import ModelOpsSettings


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """Tight limits: 4 KiB bodies, 64 KiB uploads, 3 files per version."""
    return ModelOpsSettings(
        **inwire_settings,
        max_body_bytes=4096,
        max_upload_bytes=64 * 1024,
        max_version_files=3,
    )


def _multipart(files: dict[str, bytes], boundary: str = "b0undary") -> bytes:
    out = b""
    for path, body in files.items():
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{path}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + body
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


async def test_upload_larger_than_the_body_limit_streams_in(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    await create_model(client, auth)
    body = bytes(range(256)) * 200  # 51 200 bytes: 12x the body limit
    payload = _multipart({"weights.bin": body, "MLmodel": b"flavors:\n  onnx: {}\n"})

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1000):  # sent in small pieces, no Content-Length
            yield payload[i : i + 1000]

    r = await client.post(
        "/api/v1/models/churn/versions/upload",
        content=chunks(),
        headers={**auth("member"), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["data"]["size_bytes"], r.json()["data"]["flavor"]) == (
        len(body) + 20,
        "onnx",
    )
    got = await client.get(
        "/api/v1/models/churn/versions/1/files/weights.bin", headers=auth("viewer")
    )
    assert got.content == body
    # Other routes keep the body limit.
    r = await client.post(
        "/api/v1/models", json={"name": "x", "description": "d" * 5000}, headers=auth("member")
    )
    assert_error(r, 413)


async def test_upload_past_max_upload_bytes_is_413_and_stores_nothing(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    await create_model(client, auth)
    payload = _multipart({"a.bin": b"a" * 40_000, "b.bin": b"b" * 40_000})

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    r = await client.post(
        "/api/v1/models/churn/versions/upload",
        content=chunks(),
        headers={**auth("member"), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert await app.state.storage.list("modelops/") == []
    r = await client.post(
        "/api/v1/models/churn/versions/upload",
        content=payload,
        headers={**auth("member"), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert_error(r, 413)


async def test_too_many_files_is_400(client: httpx.AsyncClient, auth: Auth, app: FastAPI) -> None:
    await create_model(client, auth)
    files = [("file", (f"f{i}.bin", b"x")) for i in range(4)]
    r = await client.post(
        "/api/v1/models/churn/versions/upload", files=files, headers=auth("member")
    )
    assert_error(r, 400)
    assert await app.state.storage.list("modelops/") == []


async def test_a_run_artifact_with_too_many_files_is_400(
    client: httpx.AsyncClient, auth: Auth, training_store: ObjectStore
) -> None:
    await create_model(client, auth)
    for i in range(4):
        await training_store.put(run_key("run_big", f"model/f{i}.bin"), b"x")
    r = await client.post(
        "/api/v1/models/churn/versions",
        json={"source": {"run_id": "run_big", "artifact_path": "model"}},
        headers=auth("member"),
    )
    assert_error(r, 400)
    assert r.json()["error"]["details"][0]["field"] == "source.artifact_path"
