"""``/api/v1/artifacts``: a run's artifacts listed, uploaded and downloaded by query."""

from __future__ import annotations

import httpx
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error

URL = "/api/v1/artifacts"


async def _run_id(client: httpx.AsyncClient, auth: Auth, org: str = "a") -> str:
    return str((await run(client, auth, await experiment(client, auth, org=org), org=org))["id"])


async def test_upload_list_and_download_match_the_per_run_routes(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    up = await client.post(
        URL,
        params={"run_id": rid, "path": "model/weights.bin"},
        content=b"\x00\x01weights",
        headers={**auth("member"), "Content-Type": "application/octet-stream"},
    )
    assert up.status_code == 201, up.text
    assert up.json()["data"]["path"] == "model/weights.bin"
    assert up.json()["data"]["size"] == 9
    # Uploaded through the per-run route, listed through this one (one store, one service).
    other = await client.put(
        f"/api/v1/runs/{rid}/artifacts/notes.txt", content=b"hello", headers=auth()
    )
    assert other.status_code == 201, other.text

    root = await client.get(URL, params={"run_id": rid}, headers=auth("viewer"))
    assert root.status_code == 200, root.text
    assert {(e["path"], e["is_dir"]) for e in root.json()["data"]} == {
        ("model", True),
        ("notes.txt", False),
    }
    same = await client.get(f"/api/v1/runs/{rid}/artifacts", headers=auth())
    assert same.json() == root.json()
    folder = await client.get(URL, params={"run_id": rid, "path": "model"}, headers=auth())
    assert [(e["path"], e["size"]) for e in folder.json()["data"]] == [("model/weights.bin", 9)]

    got = await client.get(
        f"{URL}/content",
        params={"run_id": rid, "path": "model/weights.bin"},
        headers=auth("viewer"),
    )
    assert got.status_code == 200
    assert got.content == b"\x00\x01weights"
    assert "weights.bin" in got.headers["content-disposition"]
    notes = await client.get(
        f"{URL}/content", params={"run_id": rid, "path": "notes.txt"}, headers=auth()
    )
    assert notes.content == b"hello"


async def test_invalid_paths_and_missing_parameters(client: httpx.AsyncClient, auth: Auth) -> None:
    rid = await _run_id(client, auth)
    for params in ({}, {"path": "a.txt"}, {"run_id": rid}, {"run_id": rid, "path": "../x"}):
        r = await client.post(URL, params=params, content=b"x", headers=auth())
        assert_error(r, 400)
    assert_error(await client.get(URL, headers=auth()), 400)
    assert_error(
        await client.get(URL, params={"run_id": rid, "path": "../.."}, headers=auth()), 400
    )
    assert_error(await client.get(f"{URL}/content", params={"run_id": rid}, headers=auth()), 400)
    assert_error(
        await client.get(
            f"{URL}/content", params={"run_id": rid, "path": "none.txt"}, headers=auth()
        ),
        404,
    )
    assert_error(await client.get(URL, params={"run_id": "nope"}, headers=auth()), 404)


async def test_roles_and_organizations(client: httpx.AsyncClient, auth: Auth) -> None:
    rid = await _run_id(client, auth)
    params = {"run_id": rid, "path": "a.txt"}
    assert (await client.post(URL, params=params, content=b"a", headers=auth())).status_code == 201
    assert_error(await client.post(URL, params=params, content=b"b", headers=auth("viewer")), 403)
    assert_error(await client.post(URL, params=params, content=b"b", headers=auth(org="b")), 404)
    assert_error(await client.get(URL, params={"run_id": rid}, headers=auth(org="b")), 404)
    assert_error(await client.get(f"{URL}/content", params=params, headers=auth(org="b")), 404)
    # Nothing was overwritten by the refused uploads.
    got = await client.get(f"{URL}/content", params=params, headers=auth())
    assert got.content == b"a"
