"""Experiments API: create, unique names, list/filter/sort, update, archive/restore, delete."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]


async def _create(client: httpx.AsyncClient, auth: Auth, name: str, **extra: object) -> dict:
    r = await client.post("/api/v1/experiments", json={"name": name, **extra}, headers=auth())
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def test_create_get_and_name_unique_per_organization(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await _create(client, auth, "churn", description="d", tags={"team": "risk"})
    assert exp["id"].startswith("exp_")
    assert exp["lifecycle"] == "active"
    assert exp["tags"] == {"team": "risk"}
    r = await client.get(f"/api/v1/experiments/{exp['id']}", headers=auth("viewer"))
    assert r.status_code == 200
    assert r.json()["data"]["name"] == "churn"
    dup = await client.post("/api/v1/experiments", json={"name": "churn"}, headers=auth())
    assert_error(dup, 409, "NAME_TAKEN")
    other = await client.post("/api/v1/experiments", json={"name": "churn"}, headers=auth(org="b"))
    assert other.status_code == 201


async def test_create_rejects_bad_input_and_viewers(client: httpx.AsyncClient, auth: Auth) -> None:
    for body in ({}, {"name": ""}, {"name": "x" * 251}, {"name": "a", "tags": {"bad key!": "v"}}):
        assert_error(await client.post("/api/v1/experiments", json=body, headers=auth()), 400)
    assert_error(
        await client.post("/api/v1/experiments", json={"name": "x"}, headers=auth("viewer")),
        403,
    )
    assert_error(await client.post("/api/v1/experiments", json={"name": "x"}), 401)


async def test_other_organization_sees_404(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await _create(client, auth, "mine")
    b = auth(org="b")
    assert_error(await client.get(f"/api/v1/experiments/{exp['id']}", headers=b), 404)
    assert_error(
        await client.patch(f"/api/v1/experiments/{exp['id']}", json={"name": "x"}, headers=b),
        404,
    )
    assert_error(await client.post(f"/api/v1/experiments/{exp['id']}/archive", headers=b), 404)
    assert_error(await client.delete(f"/api/v1/experiments/{exp['id']}", headers=b), 404)
    r = await client.get("/api/v1/experiments", headers=b)
    assert r.json()["data"] == []


async def test_list_paginates_sorts_and_filters(client: httpx.AsyncClient, auth: Auth) -> None:
    for name in ("b-exp", "a-exp", "c-other"):
        await _create(client, auth, name, tags={"team": name[0]})
    r = await client.get(
        "/api/v1/experiments?sort=name&order=asc&per_page=2", headers=auth("viewer")
    )
    body = r.json()
    assert [e["name"] for e in body["data"]] == ["a-exp", "b-exp"]
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 3}
    r = await client.get("/api/v1/experiments?q=EXP", headers=auth())
    assert {e["name"] for e in r.json()["data"]} == {"a-exp", "b-exp"}
    r = await client.get("/api/v1/experiments?tag=team=c", headers=auth())
    assert [e["name"] for e in r.json()["data"]] == ["c-other"]
    r = await client.get("/api/v1/experiments?name=a-exp", headers=auth())
    assert [e["name"] for e in r.json()["data"]] == ["a-exp"]
    assert_error(await client.get("/api/v1/experiments?sort=bogus", headers=auth()), 400)
    assert_error(await client.get("/api/v1/experiments?tag==x", headers=auth()), 400)


async def test_update_renames_and_refuses_a_taken_name(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    one = await _create(client, auth, "one")
    await _create(client, auth, "two")
    r = await client.patch(
        f"/api/v1/experiments/{one['id']}",
        json={"name": "uno", "tags": {"k": "v"}},
        headers=auth("member"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["name"] == "uno"
    assert r.json()["data"]["tags"] == {"k": "v"}
    taken = await client.patch(
        f"/api/v1/experiments/{one['id']}", json={"name": "two"}, headers=auth()
    )
    assert_error(taken, 409, "NAME_TAKEN")
    assert_error(
        await client.patch(f"/api/v1/experiments/{one['id']}", json={"name": None}, headers=auth()),
        400,
    )
    assert_error(
        await client.patch(
            f"/api/v1/experiments/{one['id']}", json={"name": "z"}, headers=auth("viewer")
        ),
        403,
    )


async def test_archive_hides_from_list_blocks_new_runs_and_restore_brings_back(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await _create(client, auth, "arch")
    r = await client.post(f"/api/v1/experiments/{exp['id']}/archive", headers=auth())
    assert r.json()["data"]["lifecycle"] == "archived"
    assert r.json()["data"]["archived_at"] is not None
    listed = await client.get("/api/v1/experiments", headers=auth())
    assert listed.json()["data"] == []
    archived = await client.get("/api/v1/experiments?lifecycle=archived", headers=auth())
    assert [e["id"] for e in archived.json()["data"]] == [exp["id"]]
    run = await client.post("/api/v1/runs", json={"experiment_id": exp["id"]}, headers=auth())
    assert_error(run, 409, "EXPERIMENT_ARCHIVED")
    assert_error(
        await client.post(f"/api/v1/experiments/{exp['id']}/restore", headers=auth("viewer")),
        403,
    )
    r = await client.post(f"/api/v1/experiments/{exp['id']}/restore", headers=auth())
    assert r.json()["data"]["lifecycle"] == "active"
    assert r.json()["data"]["archived_at"] is None


async def test_delete_removes_runs_and_their_artifacts(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await _create(client, auth, "gone")
    run = (
        await client.post("/api/v1/runs", json={"experiment_id": exp["id"]}, headers=auth())
    ).json()["data"]
    put = await client.put(
        f"/api/v1/runs/{run['id']}/artifacts/model.bin", content=b"abc", headers=auth()
    )
    assert put.status_code == 201, put.text
    assert_error(
        await client.delete(f"/api/v1/experiments/{exp['id']}", headers=auth("viewer")), 403
    )
    r = await client.delete(f"/api/v1/experiments/{exp['id']}", headers=auth())
    assert r.status_code == 204
    assert_error(await client.get(f"/api/v1/runs/{run['id']}", headers=auth()), 404)
    assert_error(await client.get(f"/api/v1/experiments/{exp['id']}", headers=auth()), 404)
    app = client._transport.app  # type: ignore[attr-defined]
    assert await app.state.storage.list(f"training/{_org(auth)}/{run['id']}/") == []


def _org(auth: Auth) -> str:
    from inwire.kit.testing.identities import identity

    return identity("admin", "a").org_id
