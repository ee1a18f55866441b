"""Recipes API: create, list, versions, update, delete; previews on a real uploaded version;
apply jobs run for real and publish a new version with lineage; bad steps are a 400 naming
the step; roles and tenancy."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import polars as pl
from fastapi import FastAPI

from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

TABLE = (
    "id,email,age,income,city\n"
    + "".join(
        f"{i},user{i}@example.com,{20 + i % 40},{1000 + 37 * i},"
        f"{['Paris', 'Berlin', 'Rome'][i % 3]}\n"
        for i in range(1, 41)
    )
).encode()

STEPS: list[dict[str, Any]] = [
    {"op": "filter", "expr": "age >= 30"},
    {"op": "derive", "column": "monthly", "expr": "round(income / 12, 2)"},
    {"op": "hash", "columns": ["email"], "length": 16},
    {"op": "one_hot", "column": "city", "drop_original": False},
]


async def dataset(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, *, org: str = "a"
) -> dict[str, Any]:
    """A dataset imported from ``TABLE`` (its import finished)."""
    r = await client.post(
        "/api/v1/datasets", files={"file": ("people.csv", TABLE)}, headers=auth("member", org=org)
    )
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    job = await wait_job(started["job"]["id"], headers=auth("viewer", org=org))
    assert job["status"] == "succeeded", job
    got = await client.get(
        f"/api/v1/datasets/{started['dataset']['id']}", headers=auth("viewer", org=org)
    )
    data: dict[str, Any] = got.json()["data"]
    return data


async def create(
    client: httpx.AsyncClient, auth: Auth, *, org: str = "a", **body: Any
) -> dict[str, Any]:
    body.setdefault("name", "clean people")
    body.setdefault("steps", STEPS)
    r = await client.post("/api/v1/recipes", json=body, headers=auth("member", org=org))
    assert r.status_code == 201, r.text
    recipe: dict[str, Any] = r.json()["data"]
    return recipe


async def test_create_get_and_the_salt_is_never_shown(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    recipe = await create(client, auth, description="for analysts", tags=["pii"], seed=42)
    assert recipe["id"].startswith("rcp_")
    assert recipe["version"] == 1
    assert recipe["step_count"] == 4
    assert recipe["seed"] == 42
    assert recipe["steps"][0] == {"op": "filter", "expr": "age >= 30"}
    # Defaults are written out, so a version keeps its meaning.
    assert recipe["steps"][2] == {
        "op": "hash",
        "columns": ["email"],
        "scope": "recipe",
        "length": 16,
    }
    assert "salt" not in recipe
    got = await client.get(f"/api/v1/recipes/{recipe['id']}", headers=auth("viewer"))
    assert got.status_code == 200, got.text
    assert got.json()["data"] == recipe
    assert "salt" not in got.text


async def test_bad_steps_at_create_are_a_400_naming_each_step(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await client.post(
        "/api/v1/recipes",
        json={
            "name": "broken",
            "steps": [
                {"op": "select", "columns": ["a"]},
                {"op": "filter", "expr": "__import__('os').system('id')"},
                {"op": "explode"},
                {"op": "bin", "column": "x", "method": "edges", "edges": [3, 1]},
            ],
        },
        headers=auth("member"),
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    error = r.json()["error"]
    assert error["message"].startswith("Invalid recipe: step 1 (filter)")
    details = {d["step"]: d for d in error["details"]}
    assert sorted(details) == [1, 2, 3]
    assert details[1]["op"] == "filter"
    assert details[1]["field"] == "steps[1].expr"
    assert "only the listed functions" in details[1]["problem"]
    assert details[2]["field"] == "steps[2].op"
    assert "unknown op 'explode'" in details[2]["message"]
    assert (details[3]["op"], details[3]["field"]) == ("bin", "steps[3].edges")
    listed = await client.get("/api/v1/recipes", headers=auth("viewer"))
    assert listed.json()["meta"]["total"] == 0


async def test_create_refuses_malformed_bodies(client: httpx.AsyncClient, auth: Auth) -> None:
    for body in (
        {"steps": []},
        {"name": "x", "steps": "select"},
        {"name": "x", "steps": [], "salt": "mine"},
        {"name": "x", "steps": [{"op": "select", "columns": ["a"]}] * 201},
    ):
        r = await client.post("/api/v1/recipes", json=body, headers=auth("member"))
        assert_error(r, 400)


async def test_update_makes_versions_and_old_ones_stay_readable(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    recipe = await create(client, auth)
    url = f"/api/v1/recipes/{recipe['id']}"
    member = auth("member")
    renamed = await client.patch(url, json={"name": "renamed"}, headers=member)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["data"]["name"], renamed.json()["data"]["version"]) == ("renamed", 1)

    new_steps = [{"op": "drop", "columns": ["email"]}]
    r = await client.patch(url, json={"steps": new_steps, "note": "drop e-mail"}, headers=member)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 2
    assert r.json()["data"]["steps"] == new_steps
    same = await client.patch(url, json={"steps": new_steps}, headers=member)
    assert same.json()["data"]["version"] == 2

    versions = await client.get(f"{url}/versions", headers=auth("viewer"))
    assert versions.status_code == 200, versions.text
    body = versions.json()
    assert body["meta"]["total"] == 2
    assert [v["number"] for v in body["data"]] == [2, 1]
    assert body["data"][0]["note"] == "drop e-mail"
    one = await client.get(f"{url}/versions/1", headers=auth("viewer"))
    assert one.status_code == 200, one.text
    assert one.json()["data"]["steps"][0] == STEPS[0]
    assert_error(await client.get(f"{url}/versions/9", headers=auth("viewer")), 404, "NOT_FOUND")
    paged = await client.get(
        f"{url}/versions",
        params={"sort": "number", "order": "asc", "per_page": 1, "page": 2},
        headers=auth("viewer"),
    )
    assert [v["number"] for v in paged.json()["data"]] == [2]

    bad = await client.patch(
        url, json={"steps": [{"op": "normalize", "columns": []}]}, headers=member
    )
    assert_error(bad, 400, "VALIDATION_ERROR")
    assert bad.json()["error"]["details"][0]["step"] == 0
    assert_error(await client.patch(url, json={"note": "alone"}, headers=member), 400)
    assert_error(await client.patch(url, json={"name": None}, headers=member), 400)
    got = await client.get(url, headers=auth("viewer"))
    assert got.json()["data"]["version"] == 2


async def test_list_pages_sorts_and_filters(client: httpx.AsyncClient, auth: Auth) -> None:
    for name, tags in (("alpha", ["pii"]), ("beta", []), ("gamma", ["pii", "daily"])):
        await create(client, auth, name=name, tags=tags)
    await create(client, auth, name="other org", org="b")
    viewer = auth("viewer")
    r = await client.get(
        "/api/v1/recipes", params={"sort": "name", "order": "asc", "per_page": 2}, headers=viewer
    )
    assert r.status_code == 200, r.text
    assert [x["name"] for x in r.json()["data"]] == ["alpha", "beta"]
    assert r.json()["meta"] == {"page": 1, "per_page": 2, "total": 3}
    r = await client.get(
        "/api/v1/recipes",
        params={"sort": "name", "order": "asc", "per_page": 2, "page": 2},
        headers=viewer,
    )
    assert [x["name"] for x in r.json()["data"]] == ["gamma"]
    r = await client.get("/api/v1/recipes", params={"tag": "pii", "sort": "name"}, headers=viewer)
    assert sorted(x["name"] for x in r.json()["data"]) == ["alpha", "gamma"]
    r = await client.get("/api/v1/recipes", params={"q": "AMM"}, headers=viewer)
    assert [x["name"] for x in r.json()["data"]] == ["gamma"]
    creator = r.json()["data"][0]["created_by"]
    r = await client.get("/api/v1/recipes", params={"created_by": creator}, headers=viewer)
    assert r.json()["meta"]["total"] == 3
    r = await client.get("/api/v1/recipes", params={"created_by": "nobody"}, headers=viewer)
    assert r.json()["meta"]["total"] == 0
    assert_error(await client.get("/api/v1/recipes", params={"sort": "salt"}, headers=viewer), 400)


async def test_roles(client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob) -> None:
    recipe = await create(client, auth)
    url = f"/api/v1/recipes/{recipe['id']}"
    viewer = auth("viewer")
    assert_error(
        await client.post("/api/v1/recipes", json={"name": "x", "steps": []}, headers=viewer),
        403,
        "FORBIDDEN",
    )
    assert_error(await client.patch(url, json={"name": "x"}, headers=viewer), 403)
    assert_error(await client.delete(url, headers=viewer), 403)
    assert_error(
        await client.post(f"{url}/apply", json={"version_id": "dsv_x"}, headers=viewer), 403
    )
    assert (await client.get(url, headers=viewer)).status_code == 200
    assert (await client.get("/api/v1/recipes")).status_code == 401


async def test_another_organizations_recipe_and_version_are_not_found(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    recipe = await create(client, auth)
    url = f"/api/v1/recipes/{recipe['id']}"
    other = auth("admin", org="b")
    assert_error(await client.get(url, headers=other), 404, "NOT_FOUND")
    assert_error(await client.patch(url, json={"name": "x"}, headers=other), 404)
    assert_error(await client.delete(url, headers=other), 404)
    assert_error(await client.get(f"{url}/versions", headers=other), 404)
    assert_error(await client.get(f"{url}/versions/1", headers=other), 404)
    foreign = await dataset(client, auth, wait_job, org="b")
    for action in ("preview", "apply"):
        r = await client.post(
            f"{url}/{action}",
            json={"version_id": foreign["latest_version_id"]},
            headers=auth("member"),
        )
        assert_error(r, 404, "NOT_FOUND")
    own = await create(client, auth, org="b")
    r = await client.post(
        f"/api/v1/recipes/{own['id']}/preview",
        json={"version_id": foreign["latest_version_id"]},
        headers=auth("viewer", org="b"),
    )
    assert r.status_code == 200, r.text


async def test_preview_shows_the_first_rows_after_the_steps(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    recipe = await create(client, auth)
    r = await client.post(
        f"/api/v1/recipes/{recipe['id']}/preview",
        json={"version_id": ds["latest_version_id"], "rows": 3},
        headers=auth("viewer"),
    )
    assert r.status_code == 200, r.text
    p = r.json()["data"]
    assert p["sample_rows"] == 40
    assert p["result_rows"] == sum(1 for i in range(1, 41) if 20 + i % 40 >= 30)
    assert p["columns"] == [
        "id", "email", "age", "income", "city", "monthly",
        "city_Berlin", "city_Paris", "city_Rome",
    ]  # fmt: skip
    assert len(p["rows"]) == 3
    first = p["rows"][0]
    assert first["id"] == 10
    assert first["monthly"] == round((1000 + 370) / 12, 2)
    assert len(first["email"]) == 16
    assert "@" not in first["email"]
    assert (first["city_Paris"], first["city_Berlin"], first["city_Rome"]) == (0, 1, 0)
    schema = {c["name"]: c for c in p["schema"]}
    assert schema["email"]["type"] == "identifier"
    assert schema["monthly"]["type"] == "float"
    assert p["fitted"][0]["categories"] == ["Berlin", "Paris", "Rome"]

    # Unsaved steps can be tried; the recipe does not change.
    r = await client.post(
        f"/api/v1/recipes/{recipe['id']}/preview",
        json={
            "version_id": ds["latest_version_id"],
            "steps": [{"op": "mask", "columns": ["email"], "keep_last": 11}],
            "rows": 1,
            "sample_rows": 5,
        },
        headers=auth("viewer"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["rows"][0]["email"] == "******example.com"
    assert r.json()["data"]["sample_rows"] == 5
    got = await client.get(f"/api/v1/recipes/{recipe['id']}", headers=auth("viewer"))
    assert got.json()["data"]["version"] == 1


async def test_preview_and_apply_check_steps_against_the_real_schema(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    # Fine on its own; on this version `city` is text, so normalize fails at step 1.
    recipe = await create(
        client,
        auth,
        steps=[
            {"op": "rename", "columns": {"income": "salary"}},
            {"op": "normalize", "columns": ["city"]},
            {"op": "filter", "expr": "income > 0"},
        ],
    )
    for action in ("preview", "apply"):
        r = await client.post(
            f"/api/v1/recipes/{recipe['id']}/{action}",
            json={"version_id": ds["latest_version_id"]},
            headers=auth("member"),
        )
        assert_error(r, 400, "VALIDATION_ERROR")
        details = r.json()["error"]["details"]
        assert [(d["step"], d["op"], d["field"]) for d in details] == [
            (1, "normalize", "steps[1].columns")
        ]
        assert "needs numbers" in details[0]["problem"]
    r = await client.post(
        f"/api/v1/recipes/{recipe['id']}/preview",
        json={"version_id": ds["latest_version_id"], "recipe_version": 5},
        headers=auth("member"),
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.post(
        f"/api/v1/recipes/{recipe['id']}/preview",
        json={"version_id": "dsv_missing"},
        headers=auth("member"),
    )
    assert_error(r, 404, "NOT_FOUND")
    assert_error(
        await client.post(
            "/api/v1/recipes/rcp_missing/preview",
            json={"version_id": ds["latest_version_id"]},
            headers=auth("member"),
        ),
        404,
    )


async def test_apply_runs_a_job_publishing_a_version_with_lineage(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    recipe = await create(client, auth)
    # Version 2 of the recipe is newer; applying version 1 explicitly uses version 1.
    await client.patch(
        f"/api/v1/recipes/{recipe['id']}",
        json={"steps": [{"op": "drop", "columns": ["email"]}]},
        headers=auth("member"),
    )
    r = await client.post(
        f"/api/v1/recipes/{recipe['id']}/apply",
        json={"version_id": ds["latest_version_id"], "recipe_version": 1, "tags": ["clean"]},
        headers=auth("member"),
    )
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert started["recipe_version"] == 1
    assert started["job"]["type"] == "synthex.recipe"
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["dataset_id"] == ds["id"]
    assert result["number"] == 2

    v = await client.get(
        f"/api/v1/datasets/{ds['id']}/versions/{result['version_id']}", headers=auth("viewer")
    )
    assert v.status_code == 200, v.text
    version = v.json()["data"]
    assert version["source_kind"] == "recipe"
    assert version["recipe_id"] == recipe["id"]
    assert version["parent_version_id"] == ds["latest_version_id"]
    assert version["job_id"] == started["job"]["id"]
    assert version["source"]["recipe_version"] == 1
    assert version["source"]["recipe_name"] == "clean people"
    assert version["tags"] == ["clean"]
    assert version["rows"] == sum(1 for i in range(1, 41) if 20 + i % 40 >= 30)
    schema = {c["name"]: c for c in version["schema"]}
    assert schema["email"]["type"] == "identifier"
    assert schema["city_Rome"]["type"] == "integer"

    data = await client.get(
        f"/api/v1/datasets/{ds['id']}/versions/{result['version_id']}/download",
        params={"format": "parquet"},
        headers=auth("viewer"),
    )
    assert data.status_code == 200
    frame = pl.read_parquet(io.BytesIO(data.content))
    assert frame["age"].min() >= 30
    assert frame["email"].str.len_chars().unique().to_list() == [16]
    assert frame["monthly"].to_list() == [round(x / 12, 2) for x in frame["income"].to_list()]

    # The same recipe on the same data hashes the same way (the salt is the recipe's).
    again = await client.post(
        f"/api/v1/recipes/{recipe['id']}/preview",
        json={"version_id": ds["latest_version_id"], "recipe_version": 1, "rows": 1},
        headers=auth("viewer"),
    )
    assert again.json()["data"]["rows"][0]["email"] == frame["email"][0]


async def test_apply_into_a_new_dataset_with_the_organization_salt(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    steps = [{"op": "hash", "columns": ["email"], "scope": "organization"}]
    one = await create(client, auth, name="one", steps=steps)
    two = await create(client, auth, name="two", steps=steps)
    hashed = []
    for recipe in (one, two):
        r = await client.post(
            f"/api/v1/recipes/{recipe['id']}/apply",
            json={"version_id": ds["latest_version_id"], "new_dataset": {"name": recipe["name"]}},
            headers=auth("member"),
        )
        assert r.status_code == 202, r.text
        job = await wait_job(r.json()["data"]["job"]["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["dataset_id"] != ds["id"]
        got = await client.get(
            f"/api/v1/datasets/{job['result']['dataset_id']}", headers=auth("viewer")
        )
        assert got.json()["data"]["name"] == recipe["name"]
        preview = await client.get(
            f"/api/v1/datasets/{job['result']['dataset_id']}/versions/latest/preview",
            params={"per_page": 1},
            headers=auth("viewer"),
        )
        hashed.append(preview.json()["data"]["rows"][0]["email"])
    # Two recipes, one organization salt: the hashes join.
    assert hashed[0] == hashed[1]


async def test_delete_removes_the_recipe_and_its_versions(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    recipe = await create(client, auth)
    url = f"/api/v1/recipes/{recipe['id']}"
    r = await client.delete(url, headers=auth("member"))
    assert r.status_code == 204, r.text
    assert_error(await client.get(url, headers=auth("viewer")), 404, "NOT_FOUND")
    assert_error(await client.get(f"{url}/versions/1", headers=auth("viewer")), 404)
    assert_error(await client.delete(url, headers=auth("member")), 404)


async def test_salts_appear_in_no_answer_job_or_output(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    from inwire.services.synthex.recipes.models import OrganizationSalt, Recipe

    ds = await dataset(client, auth, wait_job)
    steps = [
        {"op": "hash", "columns": ["email"]},
        {"op": "hash", "columns": ["id"], "scope": "organization"},
        {"op": "fake", "columns": ["city"], "kind": "city"},
    ]
    recipe = await create(client, auth, steps=steps)
    url = f"/api/v1/recipes/{recipe['id']}"
    seen = [
        (await client.get(url, headers=auth())).text,
        (await client.get(f"{url}/versions", headers=auth())).text,
        (
            await client.post(
                f"{url}/preview", json={"version_id": ds["latest_version_id"]}, headers=auth()
            )
        ).text,
    ]
    r = await client.post(
        f"{url}/apply", json={"version_id": ds["latest_version_id"]}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "succeeded", job
    version = f"/api/v1/datasets/{ds['id']}/versions/{job['result']['version_id']}"
    seen += [
        r.text,
        str(job),
        (await client.get(f"/api/v1/jobs/{job['id']}/logs", headers=auth())).text,
        (await client.get(version, headers=auth())).text,
        (await client.get(f"{version}/download", headers=auth())).text,
    ]
    async with app.state.db.session(write=False) as session:
        row = await session.get(Recipe, recipe["id"])
        assert row is not None
        org_salt = (await session.execute(OrganizationSalt.__table__.select())).first()
    assert org_salt is not None
    secrets = [row.salt, org_salt.salt]
    for text in seen:
        for secret in secrets:
            assert secret not in text
            assert secret[:16] not in text
