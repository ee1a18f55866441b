"""Generators API and the ``synthex.generate`` job, run for real on uploaded datasets.

Pinned: configurations are validated against their method and source (400 naming the
field), roles (403) and tenancy (404), list pagination, filters and sorting, updates and
deletes; a generation publishes a new version with lineage whose rows keep the source's
types, identifiers fresh, conditions and constraints; it is reproducible with a seed,
idempotent with a key, listed by the jobs API, cancellable, and a worker killed in the
middle leaves no half-written version and is retried into exactly one.
"""

from __future__ import annotations

import io
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import httpx
import polars as pl
import pytest

from inwire.kit.testing.plugin import assert_error

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

TABLE = (
    "customer,age,income,city,country,start,end\n"
    + "".join(
        f"C-{1000 + i},{20 + i % 50},{1000 * (20 + i % 50) + 37 * (i % 11)},"
        f"{['Paris', 'Lyon', 'Oslo'][i % 3]},{['FR', 'FR', 'NO'][i % 3]},"
        f"2024-01-{1 + i % 20:02d},2024-02-{1 + i % 27:02d}\n"
        for i in range(300)
    )
).encode()


async def dataset(
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    *,
    org: str = "a",
    name: str = "customers.csv",
    content: bytes = TABLE,
) -> dict[str, Any]:
    """A dataset imported from ``content`` (``TABLE``; its import job finished)."""
    r = await client.post(
        "/api/v1/datasets",
        files={"file": (name, content)},
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


async def new_generator(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post("/api/v1/generators", json={"name": "g", **body}, headers=headers)


async def generated(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, generator_id: str, **body: Any
) -> dict[str, Any]:
    """Run a generation to its end; the finished run."""
    r = await client.post(
        f"/api/v1/generators/{generator_id}/generate", json=body, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"], wait=120)
    assert job["status"] == "succeeded", job
    run_id = r.json()["data"]["generation"]["id"]
    got = await client.get(
        f"/api/v1/generators/{generator_id}/generations/{run_id}", headers=auth()
    )
    assert got.status_code == 200, got.text
    run: dict[str, Any] = got.json()["data"]
    return run


async def rows_of(
    client: httpx.AsyncClient, auth: Auth, dataset_id: str, version_id: str
) -> pl.DataFrame:
    r = await client.get(
        f"/api/v1/datasets/{dataset_id}/versions/{version_id}/download?format=parquet",
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    return pl.read_parquet(io.BytesIO(r.content))


async def test_configuration_is_created_read_listed_updated_and_deleted(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    r = await new_generator(client, auth("member"), dataset_id=ds["id"], name="copula")
    assert r.status_code == 201, r.text
    gen = r.json()["data"]
    assert gen["id"].startswith("gen_")
    assert gen["method"] == "gaussian_copula"
    assert gen["params"]["shrinkage"] == 0.0  # defaults filled in
    assert gen["version_id"] is None
    assert gen["output_dataset_id"] is None
    r = await new_generator(
        client, auth("member"), dataset_id=ds["id"], name="baseline", method="marginals"
    )
    assert r.status_code == 201, r.text
    pinned = await new_generator(
        client,
        auth("admin"),
        dataset_id=ds["id"],
        version_id=ds["latest_version_id"],
        name="pinned",
        method="privbayes",
        params={"epsilon": 1.0},
    )
    assert pinned.status_code == 201, pinned.text
    assert pinned.json()["data"]["params"]["degree"] == 2

    got = await client.get(f"/api/v1/generators/{gen['id']}", headers=auth("viewer"))
    assert got.status_code == 200
    assert got.json()["data"]["name"] == "copula"

    listed = await client.get("/api/v1/generators?per_page=2&sort=name&order=asc", headers=auth())
    assert listed.json()["meta"]["total"] == 3
    assert [g["name"] for g in listed.json()["data"]] == ["baseline", "copula"]
    page2 = await client.get(
        "/api/v1/generators?per_page=2&page=2&sort=name&order=asc", headers=auth()
    )
    assert [g["name"] for g in page2.json()["data"]] == ["pinned"]
    only = await client.get("/api/v1/generators?method=marginals", headers=auth())
    assert [g["name"] for g in only.json()["data"]] == ["baseline"]
    by_dataset = await client.get(f"/api/v1/generators?dataset_id={ds['id']}", headers=auth())
    assert by_dataset.json()["meta"]["total"] == 3
    none = await client.get("/api/v1/generators?dataset_id=ds_other", headers=auth())
    assert none.json()["meta"]["total"] == 0
    bad_sort = await client.get("/api/v1/generators?sort=secret", headers=auth())
    assert_error(bad_sort, 400)

    r = await client.patch(
        f"/api/v1/generators/{gen['id']}",
        json={"name": "copula v2", "params": {"shrinkage": 0.2}},
        headers=auth("member"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["name"] == "copula v2"
    assert r.json()["data"]["params"]["shrinkage"] == 0.2
    r = await client.patch(
        f"/api/v1/generators/{gen['id']}", json={"method": "marginals"}, headers=auth("member")
    )
    assert r.json()["data"]["params"] == {"max_knots": 1000}
    r = await client.patch(
        f"/api/v1/generators/{pinned.json()['data']['id']}",
        json={"unpin": True},
        headers=auth("member"),
    )
    assert r.json()["data"]["version_id"] is None

    r = await client.delete(f"/api/v1/generators/{gen['id']}", headers=auth("member"))
    assert r.status_code == 204
    gone = await client.get(f"/api/v1/generators/{gen['id']}", headers=auth())
    assert_error(gone, 404)


async def test_methods_are_listed_with_their_parameter_schemas(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await client.get("/api/v1/generators/methods", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    methods = {m["name"]: m for m in r.json()["data"]}
    assert set(methods) >= {"gaussian_copula", "marginals", "privbayes", "mst", "ctgan", "tvae"}
    assert "shrinkage" in methods["gaussian_copula"]["params_schema"]["properties"]
    assert "epsilon" in methods["mst"]["params_schema"]["required"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "gaussian_copula", "params": {"shrinkage": 5}}, "params.shrinkage"),
        ({"method": "gaussian_copula", "params": {"nope": 1}}, "params.nope"),
        ({"method": "privbayes", "params": {}}, "params.epsilon"),
        ({"method": "gan9000"}, "method"),
        (
            {"constraints": [{"type": "bounds", "column": "nope", "min": 0}]},
            "constraints[0].column",
        ),
        (
            {"constraints": [{"type": "bounds", "column": "city", "min": 0}]},
            "constraints[0].column",
        ),
        (
            {"constraints": [{"type": "inequality", "low": "end", "high": "end"}]},
            "constraints[0].high",
        ),
        ({"version_id": "dsv_unknown"}, "version_id"),
    ],
)
async def test_bad_configurations_are_400_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, body: dict[str, Any], field: str
) -> None:
    ds = await dataset(client, auth, wait_job)
    r = await new_generator(client, auth("member"), dataset_id=ds["id"], **body)
    assert_error(r, 400)
    fields = [d.get("field") for d in r.json()["error"]["details"]]
    assert field in fields, r.json()


async def test_roles_and_tenancy(client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob) -> None:
    ds = await dataset(client, auth, wait_job)
    assert_error(await new_generator(client, auth("viewer"), dataset_id=ds["id"]), 403)
    r = await new_generator(client, auth("member"), dataset_id=ds["id"])
    gen_id = r.json()["data"]["id"]
    url = f"/api/v1/generators/{gen_id}"
    assert_error(await client.patch(url, json={"name": "x"}, headers=auth("viewer")), 403)
    assert_error(await client.delete(url, headers=auth("viewer")), 403)
    run = await client.post(f"{url}/generate", json={"rows": 5}, headers=auth("viewer"))
    assert_error(run, 403)

    other = auth("member", org="b")
    assert_error(await client.get(url, headers=other), 404)
    assert_error(await client.patch(url, json={"name": "x"}, headers=other), 404)
    assert_error(await client.delete(url, headers=other), 404)
    assert_error(await client.post(f"{url}/generate", json={"rows": 5}, headers=other), 404)
    assert_error(await client.get(f"{url}/generations", headers=other), 404)
    assert_error(await new_generator(client, other, dataset_id=ds["id"]), 404)
    listed = await client.get("/api/v1/generators", headers=other)
    assert listed.json()["meta"]["total"] == 0


async def test_generation_publishes_a_version_with_lineage_rules_and_an_evaluation(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    source = await client.get(f"/api/v1/datasets/{ds['id']}/versions/latest", headers=auth())
    schema = {c["name"]: c for c in source.json()["data"]["schema"]}
    r = await new_generator(
        client,
        auth("member"),
        dataset_id=ds["id"],
        name="customers",
        constraints=[
            {"type": "unique", "column": "customer"},
            {"type": "fixed_combinations", "columns": ["city", "country"]},
            {"type": "inequality", "low": "start", "high": "end"},
            {"type": "bounds", "column": "age", "min": 25, "max": 60},
        ],
    )
    assert r.status_code == 201, r.text
    gen = r.json()["data"]

    run = await generated(
        client, auth, wait_job, gen["id"], rows=400, seed=5, conditions={"city": "Oslo"}
    )
    assert run["status"] == "succeeded"
    assert run["source_version_id"] == ds["latest_version_id"]
    assert run["seed"] == 5
    assert run["stats"]["rows_fitted"] == 240  # 20% held out for the evaluation
    out_ds, out_v = run["output_dataset_id"], run["output_version_id"]
    version = await client.get(f"/api/v1/datasets/{out_ds}/versions/{out_v}", headers=auth())
    v = version.json()["data"]
    assert v["rows"] == 400
    assert v["source_kind"] == "generator"
    assert v["generator_id"] == gen["id"]
    assert v["parent_version_id"] == ds["latest_version_id"]
    assert v["job_id"] == run["job_id"]
    assert v["source"]["method"] == "gaussian_copula"
    assert [c["type"] for c in v["schema"]] == [c["type"] for c in schema.values()]

    rows = await rows_of(client, auth, out_ds, out_v)
    real = await rows_of(client, auth, ds["id"], ds["latest_version_id"])
    assert rows.schema == real.schema
    assert rows["city"].unique().to_list() == ["Oslo"]
    assert rows["country"].unique().to_list() == ["NO"]
    assert rows["customer"].n_unique() == 400
    assert not rows["customer"].is_in(real["customer"].implode()).any()
    assert all(re.fullmatch(r"C-\d{4}", c) for c in rows["customer"])
    assert (rows["start"] < rows["end"]).all()
    assert rows["age"].min() >= 25  # type: ignore[operator]
    assert rows["age"].max() <= 60  # type: ignore[operator]

    evaluation = run["evaluation"]
    assert evaluation is not None
    assert 0 < evaluation["summary"]["quality"] <= 1
    assert evaluation["rows"] == {"real": 240, "synthetic": 400, "holdout": 60}
    # The same report is filed as an evaluation of the synthetic version.
    filed = await client.get(f"/api/v1/evaluations?synthetic_version_id={out_v}", headers=auth())
    assert filed.status_code == 200, filed.text
    assert filed.json()["meta"]["total"] == 1
    assert filed.json()["data"][0]["real_version_id"] == ds["latest_version_id"]

    generator = (await client.get(f"/api/v1/generators/{gen['id']}", headers=auth())).json()
    assert generator["data"]["output_dataset_id"] == out_ds
    # A second run adds a version to the same output dataset.
    again = await generated(client, auth, wait_job, gen["id"], rows=50, evaluate=False)
    assert again["output_dataset_id"] == out_ds
    assert again["evaluation"] is None
    runs = await client.get(f"/api/v1/generators/{gen['id']}/generations", headers=auth())
    assert runs.json()["meta"]["total"] == 2
    assert runs.json()["data"][0]["evaluation"] is None  # lists leave the report out
    ok = await client.get(
        f"/api/v1/generators/{gen['id']}/generations?status=succeeded&per_page=1", headers=auth()
    )
    assert (ok.json()["meta"]["total"], len(ok.json()["data"])) == (2, 1)


async def test_same_seed_same_rows_and_idempotency_key_same_run(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    gen = (await new_generator(client, auth("member"), dataset_id=ds["id"])).json()["data"]
    a = await generated(client, auth, wait_job, gen["id"], rows=100, seed=42, evaluate=False)
    b = await generated(client, auth, wait_job, gen["id"], rows=100, seed=42, evaluate=False)
    assert a["output_version_id"] != b["output_version_id"]
    first = await rows_of(client, auth, a["output_dataset_id"], a["output_version_id"])
    second = await rows_of(client, auth, b["output_dataset_id"], b["output_version_id"])
    assert first.equals(second)

    url = f"/api/v1/generators/{gen['id']}/generate"
    headers = {**auth("member"), "Idempotency-Key": "run-1"}
    one = await client.post(url, json={"rows": 10, "evaluate": False}, headers=headers)
    two = await client.post(url, json={"rows": 10, "evaluate": False}, headers=headers)
    assert one.status_code == two.status_code == 202
    assert one.json()["data"]["job"]["id"] == two.json()["data"]["job"]["id"]
    assert one.json()["data"]["generation"]["id"] == two.json()["data"]["generation"]["id"]
    clash = await client.post(url, json={"rows": 11}, headers=headers)
    assert_error(clash, 409)


async def test_generation_jobs_are_listed_by_the_jobs_api(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    gen = (await new_generator(client, auth("member"), dataset_id=ds["id"])).json()["data"]
    run = await generated(client, auth, wait_job, gen["id"], rows=20, evaluate=False)
    listed = await client.get(
        "/api/v1/jobs?type=synthex.generate&status=succeeded", headers=auth("viewer")
    )
    assert listed.status_code == 200, listed.text
    assert [j["id"] for j in listed.json()["data"]] == [run["job_id"]]
    job = listed.json()["data"][0]
    assert job["result"]["version_id"] == run["output_version_id"]
    running = await client.get("/api/v1/jobs?type=synthex.generate&status=running", headers=auth())
    assert running.json()["meta"]["total"] == 0
    logs = await client.get(f"/api/v1/jobs/{run['job_id']}/logs", headers=auth())
    assert any("fitted gaussian_copula" in e["line"] for e in logs.json()["data"])


async def test_bad_conditions_are_400_and_impossible_ones_fail_the_job(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    gen = (await new_generator(client, auth("member"), dataset_id=ds["id"])).json()["data"]
    url = f"/api/v1/generators/{gen['id']}/generate"
    for conditions, field in (
        ({"nope": 1}, "conditions.nope"),
        ({"age": "old"}, "conditions.age"),
        ({"start": "yesterday"}, "conditions.start"),
    ):
        r = await client.post(url, json={"rows": 5, "conditions": conditions}, headers=auth())
        assert_error(r, 400)
        assert r.json()["error"]["details"][0]["field"] == field
    assert_error(await client.post(url, json={"rows": 0}, headers=auth("member")), 400)

    r = await client.post(
        url, json={"rows": 5, "conditions": {"city": "Rome"}}, headers=auth("member")
    )
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # bad input is not retried
    assert "Rome" in job["error"]


async def test_cancelled_generation_publishes_nothing(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    gen = (await new_generator(client, auth("member"), dataset_id=ds["id"])).json()["data"]
    r = await client.post(
        f"/api/v1/generators/{gen['id']}/generate",
        json={"rows": 5_000_000, "evaluate": False},
        headers=auth("member"),
    )
    job_id = r.json()["data"]["job"]["id"]
    await wait_job(job_id, lambda j: j["status"] == "running")
    cancel = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth("member"))
    assert cancel.status_code in (200, 202), cancel.text
    job = await wait_job(job_id)
    assert job["status"] == "cancelled", job
    run = await client.get(f"/api/v1/generators/{gen['id']}/generations", headers=auth())
    assert run.json()["data"][0]["status"] == "cancelled"
    assert run.json()["data"][0]["output_version_id"] is None
    synthetic = await client.get("/api/v1/datasets?per_page=100", headers=auth())
    assert [d["id"] for d in synthetic.json()["data"]] == [ds["id"]]


@pytest.mark.slow
async def test_worker_killed_mid_generation_leaves_no_half_version_and_retries_once(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    gen = (await new_generator(client, auth("member"), dataset_id=ds["id"])).json()["data"]
    r = await client.post(
        f"/api/v1/generators/{gen['id']}/generate",
        json={"rows": 3_000_000, "seed": 1, "evaluate": False},
        headers=auth("member"),
    )
    job_id = r.json()["data"]["job"]["id"]
    await wait_job(job_id, lambda j: j["status"] == "running" and j["progress"] >= 0.5, wait=120)
    logs = (await client.get(f"/api/v1/jobs/{job_id}/logs", headers=auth())).json()["data"]
    pids = [int(m.group(1)) for e in logs if (m := re.search(r"\(pid (\d+)\)", e["line"]))]
    os.kill(pids[-1], signal.SIGSTOP)
    try:
        # Frozen mid-generation: no synthetic dataset or version is visible.
        datasets = await client.get("/api/v1/datasets?per_page=100", headers=auth())
        assert [d["id"] for d in datasets.json()["data"]] == [ds["id"]]
        versions = await client.get(f"/api/v1/datasets/{ds['id']}/versions", headers=auth())
        assert versions.json()["meta"]["total"] == 1
    finally:
        os.kill(pids[-1], signal.SIGKILL)

    job = await wait_job(job_id, wait=240)
    assert job["status"] == "succeeded", (job["error"], job["attempts"])
    assert job["attempts"] == 2
    out = job["result"]["dataset_id"]
    versions = (await client.get(f"/api/v1/datasets/{out}/versions", headers=auth())).json()
    assert versions["meta"]["total"] == 1
    assert versions["data"][0]["rows"] == 3_000_000


async def test_a_pinned_version_blocks_its_delete_unless_forced_and_runs_go_with_it(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    ds = await dataset(client, auth, wait_job)
    version = ds["latest_version_id"]
    r = await new_generator(client, auth("member"), dataset_id=ds["id"], version_id=version)
    gen = r.json()["data"]
    await generated(client, auth, wait_job, gen["id"], rows=10, evaluate=False)
    url = f"/api/v1/datasets/{ds['id']}/versions/{version}"
    blocked = await client.delete(url, headers=auth("member"))
    assert_error(blocked, 409)
    assert gen["id"] in blocked.text
    forced = await client.delete(f"{url}?force=true", headers=auth("member"))
    assert forced.status_code == 204, forced.text
    after = (await client.get(f"/api/v1/generators/{gen['id']}", headers=auth())).json()["data"]
    assert after["version_id"] is None  # the pin is cleared; the generator stays
    runs = await client.get(f"/api/v1/generators/{gen['id']}/generations", headers=auth())
    assert runs.json()["meta"]["total"] == 0  # a run's records go with its source version
