"""Run artifacts: streamed upload past the body limit, download, folder listing, delete,
path traversal refused, roles and organizations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error
from inwire.services.training.settings import TrainingSettings

BODY_LIMIT = 64 * 1024
ARTIFACT_LIMIT = 1024 * 1024


@pytest.fixture
def training_settings(inwire_settings: dict[str, Any]) -> TrainingSettings:
    """Small limits, so a test can cross them."""
    return TrainingSettings(
        **inwire_settings, max_body_bytes=BODY_LIMIT, max_artifact_bytes=ARTIFACT_LIMIT
    )


async def _run_id(client: httpx.AsyncClient, auth: Auth, org: str = "a") -> str:
    return str((await run(client, auth, await experiment(client, auth, org=org), org=org))["id"])


async def _chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes([sent % 251]) * n
        sent += n


async def test_upload_streams_past_the_body_limit_and_downloads_back(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    size = 4 * BODY_LIMIT + 123
    r = await client.put(
        f"/api/v1/runs/{rid}/artifacts/model/weights.bin",
        content=_chunks(size),
        headers={**auth("member"), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    stored = r.json()["data"]
    assert stored["path"] == "model/weights.bin"
    assert stored["size"] == size
    # The same through the top-level route (run and path in the query).
    top = await client.post(
        "/api/v1/artifacts",
        params={"run_id": rid, "path": "model/copy.bin"},
        content=_chunks(size),
        headers={**auth("member"), "Content-Type": "application/octet-stream"},
    )
    assert top.status_code == 201, top.text
    assert top.json()["data"]["size"] == size
    expected = b"".join([c async for c in _chunks(size)])
    async with client.stream(
        "GET", f"/api/v1/runs/{rid}/artifacts/model/weights.bin", headers=auth("viewer")
    ) as got:
        assert got.status_code == 200
        assert got.headers["content-length"] == str(size)
        assert "weights.bin" in got.headers["content-disposition"]
        body = b"".join([c async for c in got.aiter_bytes()])
    assert body == expected
    # Other routes keep the body limit.
    big = await client.post(
        f"/api/v1/runs/{rid}/params",
        content=b'{"params": {"a": "' + b"x" * BODY_LIMIT + b'"}}',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert_error(big, 413)


async def test_upload_over_the_artifact_limit_is_413_and_leaves_nothing(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    r = await client.put(
        f"/api/v1/runs/{rid}/artifacts/huge.bin",
        content=_chunks(ARTIFACT_LIMIT + 1),
        headers=auth(),
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    listed = await client.get(f"/api/v1/runs/{rid}/artifacts", headers=auth())
    assert listed.json()["data"] == []


async def test_list_by_folder_and_delete_files_and_folders(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    base = f"/api/v1/runs/{rid}/artifacts"
    for path in ("model/model.pkl", "model/conda.yaml", "plots/roc.png", "README.md"):
        r = await client.put(f"{base}/{path}", content=path.encode(), headers=auth())
        assert r.status_code == 201, r.text
    root = (await client.get(base, headers=auth("viewer"))).json()["data"]
    assert [(e["path"], e["is_dir"]) for e in root] == [
        ("model", True),
        ("plots", True),
        ("README.md", False),
    ]
    assert root[2]["size"] == len(b"README.md")
    model = (await client.get(f"{base}?path=model/", headers=auth())).json()["data"]
    assert [e["path"] for e in model] == ["model/conda.yaml", "model/model.pkl"]
    png = await client.get(f"{base}/plots/roc.png", headers=auth())
    assert png.headers["content-type"] == "image/png"
    one = (await client.get(f"{base}?path=README.md", headers=auth())).json()["data"]
    assert [e["path"] for e in one] == ["README.md"]
    assert (await client.get(f"{base}?path=nothing", headers=auth())).json()["data"] == []
    assert_error(await client.delete(f"{base}/model", headers=auth("viewer")), 403)
    gone = await client.delete(f"{base}/model", headers=auth("member"))
    assert gone.status_code == 200
    assert gone.json()["data"]["files"] == 2
    assert_error(await client.get(f"{base}/model/model.pkl", headers=auth()), 404)
    assert_error(await client.delete(f"{base}/model", headers=auth()), 404)
    assert (await client.delete(f"{base}/README.md", headers=auth())).json()["data"]["files"] == 1


@pytest.mark.parametrize(
    "path",
    ["../other/x", "a/../../x", "a//b", "%2e/x", "a/%2e%2e/%2e%2e/x", "a\\..\\x", "x%00y"],
)
async def test_path_traversal_and_bad_paths_are_refused(
    client: httpx.AsyncClient, auth: Auth, path: str
) -> None:
    rid = await _run_id(client, auth)
    r = await client.put(f"/api/v1/runs/{rid}/artifacts/{path}", content=b"x", headers=auth())
    assert r.status_code in (400, 404), r.text
    listed = await client.get(f"/api/v1/runs/{rid}/artifacts", headers=auth())
    assert listed.json()["data"] == []
    app = client._transport.app  # type: ignore[attr-defined]
    assert [i.key for i in await app.state.storage.list("")] == []


async def test_roles_and_other_organizations(client: httpx.AsyncClient, auth: Auth) -> None:
    rid = await _run_id(client, auth)
    base = f"/api/v1/runs/{rid}/artifacts"
    assert_error(await client.put(f"{base}/a.txt", content=b"x", headers=auth("viewer")), 403)
    await client.put(f"{base}/a.txt", content=b"x", headers=auth())
    b = auth(org="b")
    assert_error(await client.get(base, headers=b), 404)
    assert_error(await client.get(f"{base}/a.txt", headers=b), 404)
    assert_error(await client.put(f"{base}/a.txt", content=b"y", headers=b), 404)
    assert_error(await client.delete(f"{base}/a.txt", headers=b), 404)
    assert_error(await client.get(f"{base}/missing.txt", headers=auth()), 404)
    assert_error(await client.get(base), 401)
    assert (await client.get(f"{base}/a.txt", headers=auth())).content == b"x"


def test_clean_path_refuses_every_escape() -> None:
    from inwire.kit.errors import Invalid
    from inwire.services.training.artifacts.service import artifact_key, clean_path

    assert clean_path("/model/m.pkl/") == "model/m.pkl"
    assert clean_path("", folder=True) == ""
    assert artifact_key("org1", "run_1", "a/b") == "training/org1/run_1/artifacts/a/b"
    for bad in ("", "..", "a/../b", "a//b", ".", "a\\b", "a\x00b", "x" * 1000):
        with pytest.raises(Invalid):
            clean_path(bad)
