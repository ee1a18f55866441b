"""Registered models: create, list (search, filters, sort, pages), get, update, tags, delete."""

from __future__ import annotations

import httpx
import pytest
from modelops_helpers import Auth, create_model, upload_version

from inwire.kit.testing.plugin import assert_error


async def test_create_returns_the_model_and_get_finds_it_by_id_and_name(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    created = await create_model(
        client, auth, "churn", description="Who leaves", model_card="# Churn", tags={"team": "x"}
    )
    assert created["id"].startswith("mdl_")
    assert created["last_version"] == 0
    assert created["aliases"] == {}
    assert created["latest_versions"] == []
    for ref in (created["id"], "churn"):
        r = await client.get(f"/api/v1/models/{ref}", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        assert r.json()["data"]["model_card"] == "# Churn"
        assert r.json()["data"]["created_by"] == created["created_by"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": "mdl_01J0000000000000000000000Z"}, "name"),
        ({"name": "x\u0007y"}, "name"),
        ({"name": "x" * 251}, "name"),
        ({"name": "ok", "tags": {"bad key!": "v"}}, "tags"),
        ({"name": "ok", "surprise": 1}, "surprise"),
    ],
)
async def test_create_refuses_bad_input_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, object], field: str
) -> None:
    r = await client.post("/api/v1/models", json=body, headers=auth("member"))
    assert_error(r, 400, "VALIDATION_ERROR")
    assert any(field in (d.get("field") or "") for d in r.json()["error"]["details"]), r.text


async def test_names_are_unique_per_organization_only(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth, "churn")
    r = await client.post("/api/v1/models", json={"name": "churn"}, headers=auth("member"))
    assert_error(r, 409, "NAME_TAKEN")
    r = await client.post("/api/v1/models", json={"name": "churn"}, headers=auth("member", "b"))
    assert r.status_code == 201, r.text


async def test_viewers_read_and_members_write(client: httpx.AsyncClient, auth: Auth) -> None:
    assert_error(
        await client.post("/api/v1/models", json={"name": "m"}, headers=auth("viewer")), 403
    )
    await create_model(client, auth, "m")
    viewer = auth("viewer")
    assert_error(
        await client.patch("/api/v1/models/m", json={"description": "d"}, headers=viewer), 403
    )
    assert_error(await client.delete("/api/v1/models/m", headers=viewer), 403)
    assert_error(
        await client.put("/api/v1/models/m/tags/k", json={"value": "v"}, headers=viewer), 403
    )
    assert (await client.get("/api/v1/models", headers=viewer)).status_code == 200
    assert_error(await client.get("/api/v1/models"), 401)


async def test_another_organizations_model_is_not_found(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    created = await create_model(client, auth, "secret")
    other = auth("admin", "b")
    for ref in ("secret", created["id"]):
        assert_error(await client.get(f"/api/v1/models/{ref}", headers=other), 404, "NOT_FOUND")
        r = await client.patch(f"/api/v1/models/{ref}", json={"description": "x"}, headers=other)
        assert_error(r, 404)
        assert_error(await client.delete(f"/api/v1/models/{ref}", headers=other), 404)
    r = await client.get("/api/v1/models", headers=other)
    assert r.json()["meta"]["total"] == 0


async def test_list_searches_filters_sorts_and_pages(client: httpx.AsyncClient, auth: Auth) -> None:
    for name, tags in [
        ("alpha", {"team": "risk", "tier": "1"}),
        ("beta2", {"team": "risk"}),
        ("gamma_x", {"team": "growth"}),
        ("gammaxx", {}),
    ]:
        await create_model(client, auth, name, tags=tags)
    h = auth("viewer")

    async def names(query: str) -> list[str]:
        r = await client.get(f"/api/v1/models?{query}", headers=h)
        assert r.status_code == 200, r.text
        return [m["name"] for m in r.json()["data"]]

    assert await names("") == ["alpha", "beta2", "gamma_x", "gammaxx"]
    assert await names("order=desc") == ["gammaxx", "gamma_x", "beta2", "alpha"]
    assert await names("q=BET") == ["beta2"]
    assert await names("name=alpha") == ["alpha"]
    assert await names("name_like=gamma%25") == ["gamma_x", "gammaxx"]
    assert await names("name_like=gamma\\_%25") == ["gamma_x"]
    assert await names("name_like=gamma_x") == ["gamma_x", "gammaxx"]
    assert await names("name_like=BETA%25") == []
    assert await names("name_ilike=BETA%25") == ["beta2"]
    assert await names("tag=team=risk") == ["alpha", "beta2"]
    assert await names("tag=team=risk&tag=tier") == ["alpha"]
    assert await names("tag=team=ris") == []
    assert await names("tag=TEAM=risk") == []
    assert await names("tag=tier") == ["alpha"]
    r = await client.get("/api/v1/models?per_page=3&page=2&sort=created_at&order=asc", headers=h)
    assert [m["name"] for m in r.json()["data"]] == ["gammaxx"]
    assert r.json()["meta"] == {"page": 2, "per_page": 3, "total": 4}
    assert_error(await client.get("/api/v1/models?sort=bogus", headers=h), 400)
    assert_error(await client.get("/api/v1/models?per_page=1000", headers=h), 400)
    assert_error(await client.get("/api/v1/models?tag==x", headers=h), 400)


async def test_update_renames_describes_and_replaces_tags(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth, "old", tags={"a": "1"})
    await create_model(client, auth, "taken")
    h = auth("member")
    r = await client.patch(
        "/api/v1/models/old",
        json={"name": "new", "description": "d", "model_card": "## Use", "tags": {"b": "2"}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["name"], data["description"], data["model_card"], data["tags"]) == (
        "new",
        "d",
        "## Use",
        {"b": "2"},
    )
    assert_error(await client.get("/api/v1/models/old", headers=h), 404)
    assert_error(
        await client.patch("/api/v1/models/new", json={"name": "taken"}, headers=h),
        409,
        "NAME_TAKEN",
    )
    assert_error(await client.patch("/api/v1/models/new", json={"name": None}, headers=h), 400)
    assert_error(await client.patch("/api/v1/models/new", json={"x": 1}, headers=h), 400)


async def test_model_tags_are_set_and_deleted_one_by_one(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth, "m", tags={"keep": "1"})
    h = auth("member")
    r = await client.put("/api/v1/models/m/tags/env:prod/x", json={"value": "yes"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["tags"] == {"keep": "1", "env:prod/x": "yes"}
    r = await client.delete("/api/v1/models/m/tags/env:prod/x", headers=h)
    assert r.json()["data"]["tags"] == {"keep": "1"}
    assert_error(await client.delete("/api/v1/models/m/tags/env:prod/x", headers=h), 404)
    assert_error(await client.put("/api/v1/models/m/tags/k", json={}, headers=h), 400)
    assert_error(
        await client.put("/api/v1/models/m/tags/b%21d", json={"value": "v"}, headers=h), 400
    )


async def test_delete_removes_the_model_its_versions_and_files(
    client: httpx.AsyncClient, auth: Auth, app: object
) -> None:
    await create_model(client, auth, "gone")
    r = await upload_version(client, auth, "gone", {"model.onnx": b"onnx"})
    assert r.status_code == 201, r.text
    prefix = r.json()["data"]["model_id"]
    r = await client.delete("/api/v1/models/gone", headers=auth("member"))
    assert r.status_code == 204
    assert_error(await client.get("/api/v1/models/gone", headers=auth()), 404)
    store = app.state.storage  # type: ignore[attr-defined]
    assert [i.key for i in await store.list("modelops/") if prefix in i.key] == []
    # The name is free again.
    await create_model(client, auth, "gone")
