"""Stages (MLflow's transition rules) and aliases (unique per model, moved atomically)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from modelops_helpers import Auth, create_model, upload_version

from inwire.kit.testing.plugin import assert_error


async def _versions(client: httpx.AsyncClient, auth: Auth, n: int = 3) -> None:
    await create_model(client, auth)
    for _ in range(n):
        assert (await upload_version(client, auth)).status_code == 201


async def _move(
    client: httpx.AsyncClient, auth: Auth, version: int, stage: str, archive: bool = False
) -> httpx.Response:
    return await client.post(
        f"/api/v1/models/churn/versions/{version}/stage",
        json={"stage": stage, "archive_existing_versions": archive},
        headers=auth("member"),
    )


async def _stages(client: httpx.AsyncClient, auth: Auth) -> dict[int, str]:
    r = await client.get("/api/v1/models/churn/versions", headers=auth("viewer"))
    return {v["version"]: v["stage"] for v in r.json()["data"]}


async def test_transition_moves_one_version_unless_asked_to_archive(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _versions(client, auth)
    assert (await _move(client, auth, 1, "production")).json()["data"]["stage"] == "Production"
    assert (await _move(client, auth, 2, "PRODUCTION")).status_code == 200
    assert await _stages(client, auth) == {1: "Production", 2: "Production", 3: "None"}
    r = await _move(client, auth, 3, "Production", archive=True)
    assert r.status_code == 200, r.text
    assert await _stages(client, auth) == {1: "Archived", 2: "Archived", 3: "Production"}
    # Archiving existing versions touches only the target stage.
    assert (await _move(client, auth, 1, "Staging")).status_code == 200
    assert (await _move(client, auth, 2, "Staging", archive=True)).status_code == 200
    assert await _stages(client, auth) == {1: "Archived", 2: "Staging", 3: "Production"}
    assert (await _move(client, auth, 3, "None")).status_code == 200
    assert (await _move(client, auth, 3, "None")).status_code == 200  # a no-op is fine


async def test_latest_versions_per_stage(client: httpx.AsyncClient, auth: Auth) -> None:
    await _versions(client, auth, 4)
    await _move(client, auth, 1, "Production")
    await _move(client, auth, 2, "Production")
    await _move(client, auth, 3, "Staging")
    h = auth("viewer")
    r = await client.get("/api/v1/models/churn/latest-versions", headers=h)
    assert sorted((v["stage"], v["version"]) for v in r.json()["data"]) == [
        ("None", 4),
        ("Production", 2),
        ("Staging", 3),
    ]
    r = await client.get("/api/v1/models/churn/latest-versions?stage=production", headers=h)
    assert [(v["stage"], v["version"]) for v in r.json()["data"]] == [("Production", 2)]
    r = await client.get("/api/v1/models/churn", headers=h)
    assert {v["stage"]: v["version"] for v in r.json()["data"]["latest_versions"]} == {
        "None": 4,
        "Production": 2,
        "Staging": 3,
    }
    assert_error(await client.get("/api/v1/models/churn/latest-versions?stage=x", headers=h), 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "Live"}, "stage"),
        ({"stage": "Archived", "archive_existing_versions": True}, "archive_existing_versions"),
        ({"stage": "None", "archive_existing_versions": True}, "archive_existing_versions"),
        ({}, "stage"),
        ({"stage": "Staging", "archive_existing_versions": "maybe"}, "archive_existing_versions"),
    ],
)
async def test_bad_transitions_are_400(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, object], field: str
) -> None:
    await _versions(client, auth, 1)
    r = await client.post(
        "/api/v1/models/churn/versions/1/stage", json=body, headers=auth("member")
    )
    assert_error(r, 400)
    assert any((d.get("field") or "").endswith(field) for d in r.json()["error"]["details"])
    assert await _stages(client, auth) == {1: "None"}


async def test_transitions_need_update_and_stay_in_the_organization(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _versions(client, auth, 1)
    url = "/api/v1/models/churn/versions/1/stage"
    assert_error(await client.post(url, json={"stage": "Staging"}, headers=auth("viewer")), 403)
    r = await client.post(url, json={"stage": "Staging"}, headers=auth("admin", "b"))
    assert_error(r, 404)
    r = await client.post(
        "/api/v1/models/churn/versions/5/stage", json={"stage": "Staging"}, headers=auth()
    )
    assert_error(r, 404)


async def test_an_alias_is_unique_per_model_and_moves(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _versions(client, auth)
    h = auth("member")
    r = await client.put("/api/v1/models/churn/aliases/champion", json={"version": 1}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["aliases"] == ["champion"]
    await client.put("/api/v1/models/churn/aliases/challenger", json={"version": 2}, headers=h)
    r = await client.put("/api/v1/models/churn/aliases/champion", json={"version": 2}, headers=h)
    assert r.json()["data"]["aliases"] == ["challenger", "champion"]
    r = await client.get("/api/v1/models/churn/versions/1", headers=h)
    assert r.json()["data"]["aliases"] == []
    r = await client.get("/api/v1/models/churn/aliases/champion", headers=auth("viewer"))
    assert r.json()["data"]["version"] == 2
    r = await client.get("/api/v1/models/churn", headers=h)
    assert r.json()["data"]["aliases"] == {"challenger": 2, "champion": 2}
    # Another model's alias of the same name is its own.
    await create_model(client, auth, "other")
    await upload_version(client, auth, "other")
    await client.put("/api/v1/models/other/aliases/champion", json={"version": 1}, headers=h)
    r = await client.get("/api/v1/models/churn/aliases/champion", headers=h)
    assert r.json()["data"]["version"] == 2


async def test_concurrent_moves_leave_one_alias(client: httpx.AsyncClient, auth: Auth) -> None:
    await _versions(client, auth)
    h = auth("member")
    replies = await asyncio.gather(
        *(
            client.put("/api/v1/models/churn/aliases/live", json={"version": v}, headers=h)
            for v in (1, 2, 3, 1, 2, 3)
        )
    )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    r = await client.get("/api/v1/models/churn/versions", headers=h)
    holders = [v["version"] for v in r.json()["data"] if "live" in v["aliases"]]
    assert len(holders) == 1


async def test_alias_errors(client: httpx.AsyncClient, auth: Auth) -> None:
    await _versions(client, auth, 1)
    h = auth("member")
    for bad in ("latest", "LATEST", "v3", "a.b", "x" * 256):
        r = await client.put(f"/api/v1/models/churn/aliases/{bad}", json={"version": 1}, headers=h)
        assert_error(r, 400)
    assert_error(
        await client.put("/api/v1/models/churn/aliases/ok", json={"version": 0}, headers=h), 400
    )
    assert_error(
        await client.put("/api/v1/models/churn/aliases/ok", json={"version": 7}, headers=h), 404
    )
    assert_error(
        await client.put(
            "/api/v1/models/churn/aliases/ok", json={"version": 1}, headers=auth("viewer")
        ),
        403,
    )
    assert_error(
        await client.put(
            "/api/v1/models/churn/aliases/ok", json={"version": 1}, headers=auth("admin", "b")
        ),
        404,
    )
    assert_error(await client.get("/api/v1/models/churn/aliases/ok", headers=h), 404)
    assert_error(await client.delete("/api/v1/models/churn/aliases/ok", headers=h), 404)


async def test_deleting_an_alias_or_its_version_removes_it(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await _versions(client, auth, 2)
    h = auth("member")
    await client.put("/api/v1/models/churn/aliases/a", json={"version": 1}, headers=h)
    await client.put("/api/v1/models/churn/aliases/b", json={"version": 2}, headers=h)
    assert_error(await client.delete("/api/v1/models/churn/aliases/a", headers=auth("viewer")), 403)
    assert (await client.delete("/api/v1/models/churn/aliases/a", headers=h)).status_code == 204
    assert (await client.get("/api/v1/models/churn/versions/1", headers=h)).json()["data"][
        "aliases"
    ] == []
    assert (await client.delete("/api/v1/models/churn/versions/2", headers=h)).status_code == 204
    assert_error(await client.get("/api/v1/models/churn/aliases/b", headers=h), 404)
    assert (await client.get("/api/v1/models/churn", headers=h)).json()["data"]["aliases"] == {}
