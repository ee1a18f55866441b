"""Runs API: create with source and nesting, lifecycle transitions, params, tags, notes,
archive/restore, delete, listing, compare, and permissions."""

from __future__ import annotations

import httpx
import pytest
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error


async def test_create_records_source_params_tags_and_parent(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    parent = await run(client, auth, exp, name="study")
    child = await run(
        client,
        auth,
        exp,
        name="trial-1",
        parent_run_id=parent["id"],
        params={"lr": "0.1", "model": "rf"},
        tags={"team": "risk"},
        notes="first try",
        source={
            "dataset_version_id": "dsv_01",
            "git_commit": "abc123f",
            "entry_point": "train.py",
            "user": "ana",
        },
    )
    assert child["id"].startswith("run_")
    assert child["status"] == "running"
    assert child["start_time"] is not None
    assert child["end_time"] is None
    assert child["params"] == {"lr": "0.1", "model": "rf"}
    assert child["tags"] == {"team": "risk"}
    assert child["notes"] == "first try"
    assert child["parent_run_id"] == parent["id"]
    assert child["source"] == {
        "dataset_version_id": "dsv_01",
        "git_commit": "abc123f",
        "entry_point": "train.py",
        "user": "ana",
    }
    assert child["artifact_prefix"].endswith(f"/{child['id']}/artifacts/")
    kids = await client.get(f"/api/v1/runs?parent_run_id={parent['id']}", headers=auth("viewer"))
    assert [r["id"] for r in kids.json()["data"]] == [child["id"]]


async def test_create_rejects_bad_input_wrong_role_and_foreign_references(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    other_exp = await experiment(client, auth, "b-exp", org="b")
    other_run = await run(client, auth, other_exp, org="b")
    bad = [
        {},
        {"experiment_id": exp, "status": "finished"},
        {"experiment_id": exp, "params": {"a b!": "x"}},
        {"experiment_id": exp, "source": {"git_commit": "not-hex"}},
        {"experiment_id": exp, "unknown": 1},
    ]
    for body in bad:
        assert_error(await client.post("/api/v1/runs", json=body, headers=auth()), 400)
    assert_error(
        await client.post("/api/v1/runs", json={"experiment_id": exp}, headers=auth("viewer")),
        403,
    )
    assert_error(
        await client.post("/api/v1/runs", json={"experiment_id": other_exp}, headers=auth()), 404
    )
    assert_error(
        await client.post(
            "/api/v1/runs",
            json={"experiment_id": exp, "parent_run_id": other_run["id"]},
            headers=auth(),
        ),
        404,
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["running", "finished"], True),
        (["running", "failed"], True),
        (["running", "killed"], True),
        (["finished"], True),
        (["killed"], True),
        (["running", "finished", "running", "finished"], True),
        (["running", "scheduled"], False),
        (["running", "finished", "failed"], False),
    ],
)
async def test_status_follows_the_lifecycle(
    client: httpx.AsyncClient, auth: Auth, path: list[str], allowed: bool
) -> None:
    exp = await experiment(client, auth)
    r0 = await run(client, auth, exp, status="scheduled")
    assert r0["start_time"] is None
    last = None
    for i, status in enumerate(path):
        last = await client.patch(
            f"/api/v1/runs/{r0['id']}", json={"status": status}, headers=auth("member")
        )
        if i < len(path) - 1:
            assert last.status_code == 200, last.text
    assert last is not None
    if not allowed:
        assert_error(last, 409, "INVALID_TRANSITION")
        return
    assert last.status_code == 200, last.text
    data = last.json()["data"]
    assert data["status"] == path[-1]
    assert data["start_time"] is not None
    if path[-1] in ("finished", "failed", "killed"):
        assert data["end_time"] is not None
        assert data["end_time"] >= data["start_time"]


async def test_update_name_notes_end_time_and_refusals(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    r0 = await run(client, auth, exp)
    url = f"/api/v1/runs/{r0['id']}"
    r = await client.patch(url, json={"name": "renamed", "notes": "n"}, headers=auth())
    assert r.json()["data"]["name"] == "renamed"
    assert r.json()["data"]["notes"] == "n"
    assert_error(
        await client.patch(url, json={"end_time": "2030-01-01T00:00:00Z"}, headers=auth()), 400
    )
    assert_error(await client.patch(url, json={"status": "done"}, headers=auth()), 400)
    assert_error(
        await client.patch(
            url, json={"status": "finished", "end_time": "2000-01-01T00:00:00Z"}, headers=auth()
        ),
        400,
    )
    assert_error(await client.patch(url, json={"name": "x"}, headers=auth("viewer")), 403)
    assert_error(await client.patch(url, json={"name": "x"}, headers=auth(org="b")), 404)


async def test_params_are_immutable_and_tags_mutable(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    r0 = await run(client, auth, exp, params={"lr": "0.1"})
    url = f"/api/v1/runs/{r0['id']}"
    same = await client.post(
        f"{url}/params", json={"params": {"lr": "0.1", "depth": "3"}}, headers=auth()
    )
    assert same.status_code == 200, same.text
    assert same.json()["data"]["params"] == 1
    changed = await client.post(f"{url}/params", json={"params": {"lr": "0.2"}}, headers=auth())
    assert_error(changed, 409, "PARAM_CHANGED")
    assert "lr" in changed.json()["error"]["message"]
    assert_error(await client.post(f"{url}/params", json={"params": {}}, headers=auth()), 400)
    assert_error(
        await client.post(f"{url}/params", json={"params": {"a": "b"}}, headers=auth("viewer")),
        403,
    )
    assert_error(
        await client.post(f"{url}/params", json={"params": {"a": "b"}}, headers=auth(org="b")),
        404,
    )
    r = await client.put(
        f"{url}/tags", json={"tags": {"t": "1", "mlflow.note": "x"}}, headers=auth()
    )
    assert r.status_code == 200
    await client.put(f"{url}/tags", json={"tags": {"t": "2"}}, headers=auth())
    got = (await client.get(url, headers=auth("viewer"))).json()["data"]
    assert got["params"] == {"lr": "0.1", "depth": "3"}
    assert got["tags"] == {"t": "2", "mlflow.note": "x"}
    assert (await client.delete(f"{url}/tags/mlflow.note", headers=auth())).status_code == 204
    assert_error(await client.delete(f"{url}/tags/mlflow.note", headers=auth()), 404)
    assert_error(await client.delete(f"{url}/tags/t", headers=auth("viewer")), 403)


async def test_archived_run_leaves_lists_and_refuses_logging_until_restored(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    r0 = await run(client, auth, exp)
    url = f"/api/v1/runs/{r0['id']}"
    assert (await client.post(f"{url}/archive", headers=auth())).json()["data"][
        "lifecycle"
    ] == "archived"
    listed = await client.get(f"/api/v1/runs?experiment_id={exp}", headers=auth())
    assert listed.json()["data"] == []
    listed = await client.get(f"/api/v1/runs?experiment_id={exp}&lifecycle=all", headers=auth())
    assert len(listed.json()["data"]) == 1
    logged = await client.post(f"{url}/metrics", json={"key": "a", "value": 1}, headers=auth())
    assert_error(logged, 409, "RUN_ARCHIVED")
    assert (await client.post(f"{url}/restore", headers=auth())).status_code == 200
    logged = await client.post(f"{url}/metrics", json={"key": "a", "value": 1}, headers=auth())
    assert logged.status_code == 201


async def test_delete_run_and_children_keep_living(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    parent = await run(client, auth, exp)
    child = await run(client, auth, exp, parent_run_id=parent["id"])
    assert_error(await client.delete(f"/api/v1/runs/{parent['id']}", headers=auth("viewer")), 403)
    assert_error(await client.delete(f"/api/v1/runs/{parent['id']}", headers=auth(org="b")), 404)
    assert (await client.delete(f"/api/v1/runs/{parent['id']}", headers=auth())).status_code == 204
    assert_error(await client.get(f"/api/v1/runs/{parent['id']}", headers=auth()), 404)
    got = await client.get(f"/api/v1/runs/{child['id']}", headers=auth())
    assert got.json()["data"]["parent_run_id"] is None


async def test_list_paginates_sorts_and_filters(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    other = await experiment(client, auth, "other")
    for name in ("c", "a", "b"):
        await run(client, auth, exp, name=name)
    done = await run(client, auth, other, name="z")
    await client.patch(f"/api/v1/runs/{done['id']}", json={"status": "finished"}, headers=auth())
    r = await client.get(
        f"/api/v1/runs?experiment_id={exp}&sort=name&order=asc&per_page=2", headers=auth("viewer")
    )
    body = r.json()
    assert [x["name"] for x in body["data"]] == ["a", "b"]
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 3}
    page2 = await client.get(
        f"/api/v1/runs?experiment_id={exp}&sort=name&order=asc&per_page=2&page=2", headers=auth()
    )
    assert [x["name"] for x in page2.json()["data"]] == ["c"]
    finished = await client.get("/api/v1/runs?status=finished", headers=auth())
    assert [x["id"] for x in finished.json()["data"]] == [done["id"]]
    assert_error(await client.get("/api/v1/runs?status=bogus", headers=auth()), 400)
    assert_error(await client.get("/api/v1/runs?filter=metrics.a ~ 1", headers=auth()), 400)
    assert (await client.get("/api/v1/runs", headers=auth(org="b"))).json()["data"] == []
    assert_error(await client.get("/api/v1/runs?experiment_id=exp_nope", headers=auth()), 404)


async def test_compare_marks_differences_side_by_side(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    a = await run(client, auth, exp, params={"model": "rf", "depth": "3"}, tags={"t": "x"})
    b = await run(client, auth, exp, params={"model": "rf", "depth": "5"}, tags={"t": "x"})
    for rid, rmse in ((a["id"], 0.5), (b["id"], 0.3)):
        await client.post(
            f"/api/v1/runs/{rid}/metrics",
            json={"metrics": [{"key": "rmse", "value": rmse, "step": 1}]},
            headers=auth(),
        )
    await client.post(
        f"/api/v1/runs/{a['id']}/metrics", json={"key": "acc", "value": 0.9}, headers=auth()
    )
    r = await client.get(f"/api/v1/runs/compare?ids={a['id']},{b['id']}", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [x["id"] for x in data["runs"]] == [a["id"], b["id"]]
    params = {p["key"]: p for p in data["params"]}
    assert params["model"]["differs"] is False
    assert params["depth"]["differs"] is True
    assert params["depth"]["values"] == {a["id"]: "3", b["id"]: "5"}
    metrics = {m["key"]: m for m in data["metrics"]}
    assert metrics["rmse"]["differs"] is True
    assert metrics["rmse"]["min_run_id"] == b["id"]
    assert metrics["rmse"]["max_run_id"] == a["id"]
    assert metrics["acc"]["differs"] is True  # b lacks it
    assert metrics["acc"]["values"] == {a["id"]: 0.9}
    assert {t["key"]: t["differs"] for t in data["tags"]} == {"t": False}
    assert_error(await client.get("/api/v1/runs/compare?ids=", headers=auth()), 400)
    assert_error(
        await client.get(f"/api/v1/runs/compare?ids={a['id']}", headers=auth(org="b")), 404
    )
    assert_error(await client.get(f"/api/v1/runs/compare?ids={a['id']}"), 401)
