"""Profiles API: profiling jobs run for real on uploaded datasets; the JSON and HTML results,
idempotent starts, roles, tenancy, bad references, pagination and filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

TABLE = (
    "id,email,age,income,city,member\n"
    + "".join(
        f"{i},user{i}@example.com,{20 + i % 40},{1000 + 37 * i},"
        f"{['Paris', 'Berlin', 'Rome'][i % 3]},{['yes', 'no'][i % 2]}\n"
        for i in range(1, 81)
    )
).encode()


async def dataset(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, *, org: str = "a"
) -> dict[str, Any]:
    """A dataset imported from ``TABLE`` (its import job finished)."""
    r = await client.post(
        "/api/v1/datasets",
        files={"file": ("people.csv", TABLE)},
        headers=auth("member", org=org),
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


async def start(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/api/v1/profiles", json=body, headers=headers)


async def profiled(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, **body: Any
) -> dict[str, Any]:
    """Start a profile, wait for its job, return the profile (succeeded)."""
    r = await start(client, auth("member"), **body)
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "succeeded", job
    got = await client.get(f"/api/v1/profiles/{r.json()['data']['profile']['id']}", headers=auth())
    assert got.status_code == 200, got.text
    profile: dict[str, Any] = got.json()["data"]
    return profile


async def test_profile_of_the_latest_version_is_computed_stored_and_reported(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    r = await start(client, auth("member"), dataset_id=ds["id"])
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert started["job"]["type"] == "synthex.profile"
    assert started["profile"]["status"] in ("queued", "running", "succeeded")
    assert started["profile"]["version_id"] == ds["latest_version_id"]
    assert started["profile"]["profile"] is None

    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["profile_id"] == started["profile"]["id"]

    got = await client.get(f"/api/v1/profiles/{started['profile']['id']}", headers=auth("viewer"))
    assert got.status_code == 200, got.text
    p = got.json()["data"]
    assert p["status"] == "succeeded"
    assert p["progress"] == 1.0
    assert (p["rows"], p["columns"]) == (80, 6)
    assert p["completed_at"] is not None
    body = p["profile"]
    assert body["table"]["rows"] == 80
    assert body["table"]["duplicate_rows"] == 0
    columns = {c["name"]: c for c in body["columns"]}
    assert columns["age"]["numeric"]["min"] == 20
    assert columns["age"]["numeric"]["max"] == 59
    assert columns["city"]["distinct"] == 3
    assert columns["email"]["pii"]["semantic"] == "email"
    assert ("likely_pii", "email") in {(a["kind"], a["column"]) for a in body["alerts"]}
    assert p["alerts"] == len(body["alerts"])
    assert body["correlations"]["pearson"]["columns"] == ["age", "income"]

    report = await client.get(f"/api/v1/profiles/{p['id']}/report", headers=auth("viewer"))
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/html")
    html = report.text
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 6  # histograms, top values, heatmaps
    assert "Histogram" in html
    assert "Top values" in html
    assert "Pearson" in html
    assert "likely pii" in html


async def test_a_chosen_version_and_options_are_profiled(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    p = await profiled(
        client,
        auth,
        wait_job,
        dataset_id=ds["id"],
        version_id=ds["latest_version_id"],
        options={"bins": 5, "top_values": 2, "sample_rows": 1000},
    )
    columns = {c["name"]: c for c in p["profile"]["columns"]}
    assert len(columns["income"]["numeric"]["histogram"]["counts"]) == 5
    assert len(columns["city"]["top_values"]) == 2
    assert p["profile"]["options"]["bins"] == 5


async def test_the_same_idempotency_key_returns_the_same_profile(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    headers = {**auth("member"), "Idempotency-Key": "profile-once"}
    first = await start(client, headers, dataset_id=ds["id"])
    second = await start(client, headers, dataset_id=ds["id"])
    assert first.status_code == second.status_code == 202
    one, two = first.json()["data"], second.json()["data"]
    assert one["profile"]["id"] == two["profile"]["id"]
    assert one["job"]["id"] == two["job"]["id"]
    listed = await client.get("/api/v1/profiles", headers=auth())
    assert listed.json()["meta"]["total"] == 1
    reused = await start(client, headers, dataset_id=ds["id"], options={"bins": 4})
    assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    await wait_job(one["job"]["id"])


async def test_bad_references_are_404_or_400(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    member = auth("member")
    assert_error(await start(client, member, dataset_id="ds_nope"), 404, "NOT_FOUND")
    ds = await dataset(client, auth, wait_job)
    other = await dataset(client, auth, wait_job)
    wrong = await start(client, member, dataset_id=ds["id"], version_id=other["latest_version_id"])
    assert_error(wrong, 400, "VALIDATION_ERROR")
    assert "not a version of dataset" in wrong.json()["error"]["message"]
    missing = await start(client, member, dataset_id=ds["id"], version_id="dsv_nope")
    assert_error(missing, 400, "VALIDATION_ERROR")
    assert_error(await start(client, member), 400)
    assert_error(await start(client, member, dataset_id=ds["id"], colour="red"), 400)
    assert_error(await start(client, member, dataset_id=ds["id"], options={"bins": 1}), 400)
    assert_error(await client.get("/api/v1/profiles/prof_nope", headers=member), 404)
    assert_error(await client.get("/api/v1/profiles/prof_nope/report", headers=member), 404)
    assert_error(await client.delete("/api/v1/profiles/prof_nope", headers=member), 404)
    listed = await client.get("/api/v1/profiles", headers=member)
    assert listed.json()["meta"]["total"] == 0


async def test_viewers_read_profiles_but_cannot_start_or_delete_them(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    viewer = auth("viewer")
    assert_error(await start(client, viewer, dataset_id=ds["id"]), 403, "FORBIDDEN")
    p = await profiled(client, auth, wait_job, dataset_id=ds["id"])
    assert (await client.get(f"/api/v1/profiles/{p['id']}", headers=viewer)).status_code == 200
    assert (await client.get("/api/v1/profiles", headers=viewer)).status_code == 200
    assert_error(await client.delete(f"/api/v1/profiles/{p['id']}", headers=viewer), 403)
    deleted = await client.delete(f"/api/v1/profiles/{p['id']}", headers=auth("member"))
    assert deleted.status_code == 204
    assert_error(await client.get(f"/api/v1/profiles/{p['id']}", headers=viewer), 404)


async def test_another_organizations_profiles_and_datasets_do_not_exist(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    p = await profiled(client, auth, wait_job, dataset_id=ds["id"])
    stranger = auth("admin", org="b")
    assert_error(await client.get(f"/api/v1/profiles/{p['id']}", headers=stranger), 404)
    assert_error(await client.get(f"/api/v1/profiles/{p['id']}/report", headers=stranger), 404)
    assert_error(await client.delete(f"/api/v1/profiles/{p['id']}", headers=stranger), 404)
    assert_error(await start(client, stranger, dataset_id=ds["id"]), 404)
    listed = await client.get("/api/v1/profiles", headers=stranger)
    assert listed.json()["meta"]["total"] == 0
    still = await client.get(f"/api/v1/profiles/{p['id']}", headers=auth())
    assert still.status_code == 200


async def test_profiles_are_paged_and_filtered_by_dataset_version_and_status(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    first = await dataset(client, auth, wait_job)
    second = await dataset(client, auth, wait_job)
    done = [
        await profiled(client, auth, wait_job, dataset_id=first["id"]),
        await profiled(client, auth, wait_job, dataset_id=first["id"]),
        await profiled(client, auth, wait_job, dataset_id=second["id"]),
    ]
    # A profile whose data vanished: its job fails, and it has no result.
    for info in await app.state.storage.list("synthex/"):
        if f"/{second['id']}/" in info.key:
            await app.state.storage.delete(info.key)
    r = await start(client, auth("member"), dataset_id=second["id"])
    failed_id = r.json()["data"]["profile"]["id"]
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed", job

    viewer = auth("viewer")
    page = await client.get("/api/v1/profiles?per_page=2&page=1", headers=viewer)
    assert page.json()["meta"] == {"page": 1, "per_page": 2, "total": 4}
    assert [p["id"] for p in page.json()["data"]] == [failed_id, done[2]["id"]]
    rest = await client.get("/api/v1/profiles?per_page=2&page=2", headers=viewer)
    assert [p["id"] for p in rest.json()["data"]] == [done[1]["id"], done[0]["id"]]
    assert all(p["profile"] is None for p in rest.json()["data"])  # lists stay light

    by_dataset = await client.get(f"/api/v1/profiles?dataset_id={first['id']}", headers=viewer)
    assert {p["id"] for p in by_dataset.json()["data"]} == {done[0]["id"], done[1]["id"]}
    by_version = await client.get(
        f"/api/v1/profiles?version_id={second['latest_version_id']}", headers=viewer
    )
    assert by_version.json()["meta"]["total"] == 2
    succeeded = await client.get("/api/v1/profiles?status=succeeded", headers=viewer)
    assert succeeded.json()["meta"]["total"] == 3
    failed = await client.get("/api/v1/profiles?status=failed", headers=viewer)
    assert [p["id"] for p in failed.json()["data"]] == [failed_id]
    assert failed.json()["data"][0]["error"]
    oldest = await client.get("/api/v1/profiles?sort=created_at&order=asc", headers=viewer)
    assert oldest.json()["data"][0]["id"] == done[0]["id"]
    assert_error(await client.get("/api/v1/profiles?status=done", headers=viewer), 400)
    assert_error(await client.get("/api/v1/profiles?sort=colour", headers=viewer), 400)

    not_ready = await client.get(f"/api/v1/profiles/{failed_id}/report", headers=viewer)
    assert_error(not_ready, 409, "NOT_READY")


async def test_deleting_a_version_deletes_its_profiles(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    p = await profiled(client, auth, wait_job, dataset_id=ds["id"])
    gone = await client.delete(f"/api/v1/datasets/{ds['id']}", headers=auth("member"))
    assert gone.status_code == 204, gone.text
    assert_error(await client.get(f"/api/v1/profiles/{p['id']}", headers=auth()), 404)
