"""Evaluations API: evaluation jobs run for real on uploaded versions; the JSON and HTML
reports, idempotent starts, roles, tenancy, bad references, pagination and filters, reports
stored by another job, and what deleting a compared version does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

CITIES = ("Paris", "Berlin", "Rome")


def csv_table(n: int, seed: int, *, first_id: int = 1) -> bytes:
    """People whose income follows age and whose city follows income."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 70, n)
    income = 800 + 40 * age + rng.normal(0, 150, n)
    city = np.where(income > 2700, 0, np.where(rng.random(n) < 0.5, 1, 2))
    rows = "".join(
        f"{first_id + i},{age[i]},{income[i]:.2f},{CITIES[city[i]]},{['yes', 'no'][i % 2]}\n"
        for i in range(n)
    )
    return ("id,age,income,city,member\n" + rows).encode()


REAL = csv_table(200, seed=1)
#: Same columns, nothing alike: old people, falling incomes, one city.
UNLIKE = b"id,age,income,city,member\n" + b"".join(
    f"{i},{90 - i % 5},{3000 - i * 3}.5,Oslo,no\n".encode() for i in range(200)
)


async def dataset(
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    content: bytes = REAL,
    *,
    org: str = "a",
    name: str = "people.csv",
) -> dict[str, Any]:
    """A dataset imported from ``content`` (its import job finished)."""
    r = await client.post(
        "/api/v1/datasets", files={"file": (name, content)}, headers=auth("member", org=org)
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
    return await client.post("/api/v1/evaluations", json=body, headers=headers)


async def evaluated(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, **body: Any
) -> dict[str, Any]:
    """Start an evaluation, wait for its job, return the evaluation (succeeded)."""
    r = await start(client, auth("member"), **body)
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "succeeded", job
    got = await client.get(
        f"/api/v1/evaluations/{r.json()['data']['evaluation']['id']}", headers=auth()
    )
    assert got.status_code == 200, got.text
    evaluation: dict[str, Any] = got.json()["data"]
    return evaluation


def versions(real: dict[str, Any], synthetic: dict[str, Any]) -> dict[str, str]:
    return {
        "real_version_id": real["latest_version_id"],
        "synthetic_version_id": synthetic["latest_version_id"],
    }


async def test_two_versions_are_evaluated_stored_and_reported(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    synthetic = await dataset(client, auth, wait_job, csv_table(200, seed=2, first_id=1000))
    holdout = await dataset(client, auth, wait_job, csv_table(100, seed=3, first_id=5000))
    r = await start(
        client,
        auth("member"),
        **versions(real, synthetic),
        holdout_version_id=holdout["latest_version_id"],
        target="city",
        seed=5,
    )
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert started["job"]["type"] == "synthex.evaluate"
    e = started["evaluation"]
    assert e["status"] in ("queued", "running", "succeeded")
    assert e["source"] == "request"
    assert (e["real_dataset_id"], e["synthetic_dataset_id"]) == (real["id"], synthetic["id"])
    assert e["holdout_version_id"] == holdout["latest_version_id"]
    assert e["report"] is None

    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["evaluation_id"] == e["id"]

    got = await client.get(f"/api/v1/evaluations/{e['id']}", headers=auth("viewer"))
    assert got.status_code == 200, got.text
    e = got.json()["data"]
    assert e["status"] == "succeeded"
    assert e["progress"] == 1.0
    assert e["completed_at"] is not None
    report = e["report"]
    assert report["rows"] == {"real": 200, "synthetic": 200, "holdout": 100}
    assert report["seed"] == 5
    assert report["read"]["real"] == {"rows": 200, "of_rows": 200}
    compared = {c["column"] for c in report["columns"]["compared"]}
    assert compared == {"age", "income", "city", "member"}  # the id is an identifier
    summary = e["summary"]
    assert summary["quality"] == report["summary"]["quality"] > 0.8
    assert summary["exact_copy_rate"] == 0.0
    assert report["ml_utility"]["target"] == "city"
    assert report["ml_utility"]["test_source"] == "holdout"
    assert report["privacy"]["membership"]["members"] == 100

    page = await client.get(f"/api/v1/evaluations/{e['id']}/report", headers=auth("viewer"))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 8
    for part in ("Column shapes", "Column-pair trends", "Detection", "ML utility", "Privacy"):
        assert part in html
    assert synthetic["latest_version_id"] in html


async def test_a_copy_of_the_real_data_is_caught(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    copy = await dataset(client, auth, wait_job, name="copy.csv")
    e = await evaluated(client, auth, wait_job, **versions(real, copy))
    assert e["summary"]["quality"] == 1.0
    assert e["summary"]["exact_copy_rate"] == 1.0
    assert e["report"]["privacy"]["dcr"]["synthetic"]["median"] == 0.0
    # No holdout: the report says what it could not measure.
    assert e["summary"]["membership_risk"] is None
    assert e["report"]["privacy"]["notes"]


async def test_the_same_idempotency_key_returns_the_same_evaluation(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    headers = {**auth("member"), "Idempotency-Key": "evaluate-once"}
    body = versions(real, real)
    first = await start(client, headers, **body)
    second = await start(client, headers, **body)
    assert first.status_code == second.status_code == 202
    one, two = first.json()["data"], second.json()["data"]
    assert one["evaluation"]["id"] == two["evaluation"]["id"]
    assert one["job"]["id"] == two["job"]["id"]
    listed = await client.get("/api/v1/evaluations", headers=auth())
    assert listed.json()["meta"]["total"] == 1
    reused = await start(client, headers, **body, seed=3)
    assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    await wait_job(one["job"]["id"])


async def test_bad_references_are_404_or_400_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    member = auth("member")
    real = await dataset(client, auth, wait_job)
    v = real["latest_version_id"]
    unknown = await start(client, member, real_version_id="dsv_nope", synthetic_version_id=v)
    assert_error(unknown, 404, "NOT_FOUND")
    assert unknown.json()["error"]["details"][0]["field"] == "real_version_id"
    unknown = await start(client, member, real_version_id=v, synthetic_version_id="dsv_nope")
    assert unknown.json()["error"]["details"][0]["field"] == "synthetic_version_id"
    unknown = await start(
        client, member, real_version_id=v, synthetic_version_id=v, holdout_version_id="dsv_x"
    )
    assert_error(unknown, 404, "NOT_FOUND")
    same = await start(
        client, member, real_version_id=v, synthetic_version_id=v, holdout_version_id=v
    )
    assert_error(same, 400, "VALIDATION_ERROR")
    assert same.json()["error"]["details"][0]["field"] == "holdout_version_id"
    for target, words in (("colour", "not a column"), ("id", "identifier")):
        bad = await start(client, member, real_version_id=v, synthetic_version_id=v, target=target)
        assert_error(bad, 400, "VALIDATION_ERROR")
        assert words in bad.json()["error"]["message"]
        assert bad.json()["error"]["details"][0]["field"] == "target"
    other = await dataset(client, auth, wait_job, b"a,b\n1,x\n2,y\n", name="other.csv")
    unrelated = await start(
        client, member, real_version_id=v, synthetic_version_id=other["latest_version_id"]
    )
    assert_error(unrelated, 400, "VALIDATION_ERROR")
    assert "No column" in unrelated.json()["error"]["message"]
    assert_error(await start(client, member, real_version_id=v), 400)
    assert_error(
        await start(client, member, real_version_id=v, synthetic_version_id=v, colour="red"), 400
    )
    assert_error(
        await start(client, member, real_version_id=v, synthetic_version_id=v, seed=-1), 400
    )
    assert_error(await client.get("/api/v1/evaluations/ev_nope", headers=member), 404)
    assert_error(await client.get("/api/v1/evaluations/ev_nope/report", headers=member), 404)
    assert_error(await client.delete("/api/v1/evaluations/ev_nope", headers=member), 404)
    listed = await client.get("/api/v1/evaluations", headers=member)
    assert listed.json()["meta"]["total"] == 0


async def test_viewers_read_evaluations_but_cannot_start_or_delete_them(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    viewer = auth("viewer")
    assert_error(await start(client, viewer, **versions(real, real)), 403, "FORBIDDEN")
    e = await evaluated(client, auth, wait_job, **versions(real, real))
    assert (await client.get(f"/api/v1/evaluations/{e['id']}", headers=viewer)).status_code == 200
    assert (await client.get("/api/v1/evaluations", headers=viewer)).status_code == 200
    assert_error(await client.delete(f"/api/v1/evaluations/{e['id']}", headers=viewer), 403)
    deleted = await client.delete(f"/api/v1/evaluations/{e['id']}", headers=auth("member"))
    assert deleted.status_code == 204
    assert_error(await client.get(f"/api/v1/evaluations/{e['id']}", headers=viewer), 404)


async def test_another_organizations_evaluations_and_versions_do_not_exist(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    e = await evaluated(client, auth, wait_job, **versions(real, real))
    stranger = auth("admin", org="b")
    assert_error(await client.get(f"/api/v1/evaluations/{e['id']}", headers=stranger), 404)
    assert_error(await client.get(f"/api/v1/evaluations/{e['id']}/report", headers=stranger), 404)
    assert_error(await client.delete(f"/api/v1/evaluations/{e['id']}", headers=stranger), 404)
    assert_error(await start(client, stranger, **versions(real, real)), 404)
    # Their own version against ours: ours does not exist for them.
    theirs = await dataset(client, auth, wait_job, org="b")
    mixed = await start(client, stranger, **versions(theirs, real))
    assert_error(mixed, 404)
    assert mixed.json()["error"]["details"][0]["field"] == "synthetic_version_id"
    listed = await client.get("/api/v1/evaluations", headers=stranger)
    assert listed.json()["meta"]["total"] == 0
    still = await client.get(f"/api/v1/evaluations/{e['id']}", headers=auth())
    assert still.status_code == 200


@pytest.mark.slow
async def test_evaluations_are_paged_and_filtered(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    fresh = await dataset(client, auth, wait_job, csv_table(200, seed=2, first_id=1000))
    noise = await dataset(client, auth, wait_job, UNLIKE, name="unlike.csv")
    done = [
        await evaluated(client, auth, wait_job, **versions(real, fresh)),
        await evaluated(client, auth, wait_job, **versions(real, noise)),
        await evaluated(client, auth, wait_job, **versions(fresh, real)),
    ]
    # An evaluation whose synthetic data vanished: its job fails, and it has no report.
    for info in await app.state.storage.list("synthex/"):
        if f"/{noise['id']}/" in info.key:
            await app.state.storage.delete(info.key)
    r = await start(client, auth("member"), **versions(real, noise))
    failed_id = r.json()["data"]["evaluation"]["id"]
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed", job

    viewer = auth("viewer")
    page = await client.get("/api/v1/evaluations?per_page=2&page=1", headers=viewer)
    assert page.json()["meta"] == {"page": 1, "per_page": 2, "total": 4}
    assert [e["id"] for e in page.json()["data"]] == [failed_id, done[2]["id"]]
    rest = await client.get("/api/v1/evaluations?per_page=2&page=2", headers=viewer)
    assert [e["id"] for e in rest.json()["data"]] == [done[1]["id"], done[0]["id"]]
    assert all(e["report"] is None for e in rest.json()["data"])  # lists stay light
    assert all(e["summary"]["quality"] is not None for e in rest.json()["data"])

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {e["id"] for e in response.json()["data"]}

    get = client.get
    by_dataset = await get(f"/api/v1/evaluations?dataset_id={fresh['id']}", headers=viewer)
    assert ids(by_dataset) == {done[0]["id"], done[2]["id"]}
    by_version = await get(
        f"/api/v1/evaluations?version_id={noise['latest_version_id']}", headers=viewer
    )
    assert ids(by_version) == {done[1]["id"], failed_id}
    by_synthetic = await get(
        f"/api/v1/evaluations?synthetic_version_id={real['latest_version_id']}", headers=viewer
    )
    assert ids(by_synthetic) == {done[2]["id"]}
    by_real = await get(
        f"/api/v1/evaluations?real_version_id={real['latest_version_id']}", headers=viewer
    )
    assert ids(by_real) == {done[0]["id"], done[1]["id"], failed_id}
    assert len(ids(await get("/api/v1/evaluations?status=succeeded", headers=viewer))) == 3
    failed = await get("/api/v1/evaluations?status=failed", headers=viewer)
    assert ids(failed) == {failed_id}
    assert failed.json()["data"][0]["error"]
    assert failed.json()["data"][0]["summary"] is None
    assert len(ids(await get("/api/v1/evaluations?source=request", headers=viewer))) == 4
    assert ids(await get("/api/v1/evaluations?source=generation", headers=viewer)) == set()
    best = await get("/api/v1/evaluations?sort=quality&order=desc&status=succeeded", headers=viewer)
    qualities = [e["summary"]["quality"] for e in best.json()["data"]]
    assert qualities == sorted(qualities, reverse=True)
    assert best.json()["data"][-1]["id"] == done[1]["id"]  # the unlike table scores lowest
    oldest = await get("/api/v1/evaluations?sort=created_at&order=asc", headers=viewer)
    assert oldest.json()["data"][0]["id"] == done[0]["id"]
    assert_error(await get("/api/v1/evaluations?status=done", headers=viewer), 400)
    assert_error(await get("/api/v1/evaluations?source=magic", headers=viewer), 400)
    assert_error(await get("/api/v1/evaluations?sort=colour", headers=viewer), 400)

    not_ready = await get(f"/api/v1/evaluations/{failed_id}/report", headers=viewer)
    assert_error(not_ready, 409, "NOT_READY")


async def test_a_report_stored_by_another_job_is_listed_with_the_others(
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    synthex_settings: Any,
    tmp_path: Path,
) -> None:
    from inwire.kit.db.engine import Database
    from inwire.kit.storage import open_object_store
    from inwire.services.synthex.data import JobData
    from inwire.services.synthex.data.versions import get_version
    from inwire.services.synthex.evaluations.engine import evaluate
    from inwire.services.synthex.evaluations.store import save_report

    real = await dataset(client, auth, wait_job)
    synthetic = await dataset(client, auth, wait_job, csv_table(200, seed=2, first_id=1000))
    # Whatever job made the synthetic version (here: its import) files the report.
    versions_out = await client.get(
        f"/api/v1/datasets/{synthetic['id']}/versions/latest", headers=auth()
    )
    job_id = versions_out.json()["data"]["job_id"]
    db = Database(synthex_settings.database_url, schema=synthex_settings.database_schema)
    store = open_object_store(synthex_settings.storage_url)
    try:
        data = JobData(
            synthex_settings,
            org_id=identity("member", "a").org_id,
            job_id=job_id,
            created_by="user-1",
            db=db,
            store=store,
            workdir=tmp_path,
        )
        async with db.session(write=False) as session:
            real_ref = await get_version(session, data.org_id, real["latest_version_id"])
            syn_ref = await get_version(session, data.org_id, synthetic["latest_version_id"])
        report = evaluate(await data.load(real_ref), await data.load(syn_ref), real_ref.schema)
        first = await save_report(
            data, report, real_version=real_ref, synthetic_version=syn_ref, holdout_share=0.2
        )
        again = await save_report(
            data, report, real_version=real_ref, synthetic_version=syn_ref, holdout_share=0.2
        )
    finally:
        await store.close()
        await db.dispose()
    assert first == again  # a retried job does not file it twice

    viewer = auth("viewer")
    found = await client.get(
        f"/api/v1/evaluations?synthetic_version_id={synthetic['latest_version_id']}",
        headers=viewer,
    )
    assert found.json()["meta"]["total"] == 1
    e = found.json()["data"][0]
    assert e["id"] == first
    assert (e["source"], e["status"], e["holdout_share"]) == ("generation", "succeeded", 0.2)
    assert e["summary"]["quality"] == report["summary"]["quality"]
    assert (await client.get("/api/v1/evaluations?source=generation", headers=viewer)).json()[
        "meta"
    ]["total"] == 1
    page = await client.get(f"/api/v1/evaluations/{first}/report", headers=viewer)
    assert page.status_code == 200
    # Deleting it never touches the job that made it.
    assert (
        await client.delete(f"/api/v1/evaluations/{first}", headers=auth("member"))
    ).status_code == 204
    job = await client.get(f"/api/v1/jobs/{job_id}", headers=viewer)
    assert job.json()["data"]["status"] == "succeeded"


async def test_deleting_compared_versions(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    real = await dataset(client, auth, wait_job)
    synthetic = await dataset(client, auth, wait_job, csv_table(100, seed=2, first_id=1000))
    e = await evaluated(client, auth, wait_job, **versions(real, synthetic))
    member = auth("member")
    # The real version is in use by the evaluation: refused unless forced...
    refused = await client.delete(f"/api/v1/datasets/{real['id']}", headers=member)
    assert_error(refused, 409, "IN_USE")
    assert e["id"] in refused.text
    forced = await client.delete(f"/api/v1/datasets/{real['id']}?force=true", headers=member)
    assert forced.status_code == 204, forced.text
    # ...which keeps the evaluation and clears its reference.
    kept = await client.get(f"/api/v1/evaluations/{e['id']}", headers=auth())
    assert kept.json()["data"]["real_version_id"] is None
    assert kept.json()["data"]["report"] is not None
    assert (
        await client.get(f"/api/v1/evaluations/{e['id']}/report", headers=auth())
    ).status_code == 200
    # The synthetic version owns its evaluations: they go with it.
    gone = await client.delete(f"/api/v1/datasets/{synthetic['id']}", headers=member)
    assert gone.status_code == 204, gone.text
    assert_error(await client.get(f"/api/v1/evaluations/{e['id']}", headers=auth()), 404)
