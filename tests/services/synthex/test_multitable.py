"""Multi-table generation: a generator's relations make child tables with their parent.

Pinned, through the API on tiny uploaded tables with jobs run for real: relations are
validated (unknown columns, a parent key that is not unique, bad conditioning columns:
400 naming ``relations[i].<field>``; another organization's child: 404; roles: 403); a run
publishes the parent and every child as new versions with lineage, every child row refers
to a synthetic parent (referential integrity counted on the downloaded rows), children per
parent follow the parent's attributes and the child's columns its parent's, the
generation reports integrity, cardinality and per-table evaluations; the same seed gives
the same tables; a failed run publishes no table (the versions of a run are published all
or none), and a run whose source version no longer
has a unique key fails saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from test_generators import dataset, generated, new_generator, rows_of

from inwire.kit.db.engine import Database
from inwire.kit.storage import open_object_store
from inwire.kit.testing.plugin import assert_error, identity
from inwire.services.synthex.data.versions import (
    Lineage,
    NewDataset,
    Publication,
    publish_versions,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

#: 80 customers: gold ones (every 4th) have 4 to 6 orders, the others 0 to 2.
CUSTOMERS = [
    {
        "customer": f"C-{1000 + i}",
        "segment": "gold" if i % 4 == 0 else "silver",
        "age": 20 + (i * 7) % 50,
    }
    for i in range(80)
]
ORDERS = [
    {
        "customer": c["customer"],
        "amount": (500 if c["segment"] == "gold" else 50) + (i * 13 + k * 7) % 40,
        "channel": ["web", "shop"][(i + k) % 2],
    }
    for i, c in enumerate(CUSTOMERS)
    for k in range(4 + i % 3 if c["segment"] == "gold" else i % 3)
]
ORDERS = [{"order_id": f"O-{10000 + n}", **o} for n, o in enumerate(ORDERS)]


async def upload(
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    name: str,
    rows: list[dict[str, Any]],
    *,
    org: str = "a",
) -> dict[str, Any]:
    """A dataset imported from ``rows`` (its import job finished)."""
    content = pl.DataFrame(rows).write_csv().encode()
    return await dataset(client, auth, wait_job, org=org, name=name, content=content)


async def both(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> tuple[dict[str, Any], dict[str, Any]]:
    customers = await upload(client, auth, wait_job, "customers.csv", CUSTOMERS)
    orders = await upload(client, auth, wait_job, "orders.csv", ORDERS)
    return customers, orders


def relation(orders: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"dataset_id": orders["id"], "foreign_key": "customer", "parent_key": "customer", **more}


async def test_parent_and_children_are_generated_with_integrity_and_cardinality(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    customers, orders = await both(client, auth, wait_job)
    r = await new_generator(
        client,
        auth("member"),
        name="shop",
        dataset_id=customers["id"],
        relations=[relation(orders)],
    )
    assert r.status_code == 201, r.text
    gen = r.json()["data"]
    assert gen["relations"][0]["foreign_key"] == "customer"
    assert gen["relations"][0]["method"] is None  # follows the generator's

    run = await generated(client, auth, wait_job, gen["id"], rows=120, seed=3)
    assert run["relations"][0]["version_id"] == orders["latest_version_id"]
    parent_entry, child_entry = run["tables"]
    assert parent_entry["role"] == "parent"
    assert parent_entry["output_version_id"] == run["output_version_id"]
    assert child_entry["role"] == "child"
    assert child_entry["parent_columns"] == ["segment"]  # the default: few-valued columns

    parents = await rows_of(client, auth, run["output_dataset_id"], run["output_version_id"])
    children = await rows_of(
        client, auth, child_entry["output_dataset_id"], child_entry["output_version_id"]
    )
    real_parents = pl.DataFrame(CUSTOMERS)
    real_children = pl.DataFrame(ORDERS)
    assert parents.height == 120
    assert parents.columns == real_parents.columns
    assert children.columns == real_children.columns
    assert children.height == child_entry["rows"] > 0
    # Fresh unique keys, every child refers to a synthetic parent.
    assert parents["customer"].n_unique() == 120
    assert not parents["customer"].is_in(real_parents["customer"].implode()).any()
    assert children["customer"].null_count() == 0
    assert children["customer"].is_in(parents["customer"].implode()).all()
    assert children["order_id"].n_unique() == children.height
    assert not children["order_id"].is_in(real_children["order_id"].implode()).any()

    # Children per parent follow the parent's segment, and orders their customer's.
    joined = children.join(parents.select("customer", "segment"), on="customer")
    per_parent = (
        parents.select("customer", "segment")
        .join(children.group_by("customer").len(), on="customer", how="left")
        .with_columns(pl.col("len").fill_null(0))
    )
    mean_count = dict(per_parent.group_by("segment").agg(pl.col("len").mean()).iter_rows())
    # (Independent marginals give both segments about 2 orders at a mean of about 330.)
    assert mean_count["gold"] > 1.5 * mean_count["silver"], mean_count
    mean_amount = dict(joined.group_by("segment").agg(pl.col("amount").mean()).iter_rows())
    assert mean_amount["gold"] > mean_amount["silver"] + 80, mean_amount

    integrity = child_entry["integrity"]
    assert integrity["holds"] is True
    assert integrity["orphans"] == integrity["null_foreign_keys"] == 0
    assert integrity["child_rows"] == children.height
    cardinality = child_entry["cardinality"]
    assert cardinality["real"]["parents"] == 64  # 20% of the parents held out
    assert cardinality["synthetic"]["parents"] == 120
    assert cardinality["synthetic"]["children"] == children.height
    assert 0 <= cardinality["total_variation_distance"] <= 1
    assert {row["value"] for row in cardinality["mean_by_parent_value"]["segment"]} == {
        "gold",
        "silver",
    }
    assert child_entry["stats"]["source_orphans_left_out"] == 0
    assert 0 < child_entry["evaluation"]["summary"]["quality"] <= 1
    assert 0 < run["evaluation"]["summary"]["quality"] <= 1

    version = await client.get(
        f"/api/v1/datasets/{child_entry['output_dataset_id']}/versions/"
        f"{child_entry['output_version_id']}",
        headers=auth(),
    )
    v = version.json()["data"]
    assert v["source_kind"] == "generator"
    assert v["generator_id"] == gen["id"]
    assert v["parent_version_id"] == orders["latest_version_id"]
    assert v["source"]["generation_id"] == run["id"]
    assert v["source"]["parent_version_id"] == customers["latest_version_id"]

    # The generator remembers each table's output dataset; lists leave reports out.
    again = (await client.get(f"/api/v1/generators/{gen['id']}", headers=auth())).json()
    assert again["data"]["relations"][0]["output_dataset_id"] == child_entry["output_dataset_id"]
    second = await generated(client, auth, wait_job, gen["id"], rows=10, evaluate=False)
    assert second["tables"][1]["output_dataset_id"] == child_entry["output_dataset_id"]
    listed = await client.get(f"/api/v1/generators/{gen['id']}/generations", headers=auth())
    assert all("evaluation" not in t for t in listed.json()["data"][1]["tables"])


async def test_same_seed_same_tables(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    customers, orders = await both(client, auth, wait_job)
    body = {"dataset_id": customers["id"], "relations": [relation(orders, method="marginals")]}
    gen = (await new_generator(client, auth("member"), **body)).json()["data"]
    a = await generated(client, auth, wait_job, gen["id"], rows=40, seed=11, evaluate=False)
    b = await generated(client, auth, wait_job, gen["id"], rows=40, seed=11, evaluate=False)
    c = await generated(client, auth, wait_job, gen["id"], rows=40, seed=12, evaluate=False)
    frames = []
    for run in (a, b, c):
        tables = [
            await rows_of(client, auth, t["output_dataset_id"], t["output_version_id"])
            for t in run["tables"]
        ]
        frames.append(tables)
    assert frames[0][0].equals(frames[1][0])
    assert frames[0][1].equals(frames[1][1])
    assert not frames[0][1].equals(frames[2][1])
    # Marginals do not condition: the children are drawn by rejection, still all linked.
    assert frames[0][1]["customer"].is_in(frames[0][0]["customer"].implode()).all()


async def test_bad_relations_are_400_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    customers, orders = await both(client, auth, wait_job)
    for bad, field in (
        (relation(orders, foreign_key="nope"), "relations[0].foreign_key"),
        (relation(orders, parent_key="nope"), "relations[0].parent_key"),
        (relation(orders, parent_key="segment"), "relations[0].parent_key"),  # not unique
        (relation(orders, parent_columns=["customer"]), "relations[0].parent_columns"),
        (relation(orders, params={"nope": 1}), "relations[0].params.nope"),
        (relation(orders, version_id="dsv_nope"), "relations[0].version_id"),
        ({**relation(orders), "dataset_id": customers["id"]}, "relations[0].dataset_id"),
    ):
        r = await new_generator(client, auth("member"), dataset_id=customers["id"], relations=[bad])
        assert_error(r, 400)
        fields = [d.get("field") for d in r.json()["error"]["details"]]
        assert field in fields, r.json()

    gen = (await new_generator(client, auth("member"), dataset_id=customers["id"])).json()["data"]
    url = f"/api/v1/generators/{gen['id']}"
    patch = await client.patch(
        url, json={"relations": [relation(orders, parent_key="age")]}, headers=auth("member")
    )
    assert_error(patch, 400)
    assert patch.json()["error"]["details"][0]["field"] == "relations[0].parent_key"
    ok = await client.patch(url, json={"relations": [relation(orders)]}, headers=auth("member"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["relations"][0]["dataset_id"] == orders["id"]


async def test_roles_and_tenancy_of_relations(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    customers, orders = await both(client, auth, wait_job)
    theirs = await upload(client, auth, wait_job, "orders.csv", ORDERS, org="b")
    body = {"dataset_id": customers["id"], "relations": [relation(orders)]}
    assert_error(await new_generator(client, auth("viewer"), **body), 403)
    other = {"dataset_id": customers["id"], "relations": [relation(theirs)]}
    assert_error(await new_generator(client, auth("member"), **other), 404)

    gen = (await new_generator(client, auth("member"), **body)).json()["data"]
    url = f"/api/v1/generators/{gen['id']}"
    change = {"relations": [relation(orders, method="marginals")]}
    assert_error(await client.patch(url, json=change, headers=auth("viewer")), 403)
    assert_error(await client.patch(url, json=change, headers=auth("member", org="b")), 404)
    assert_error(
        await client.patch(url, json={"relations": [relation(theirs)]}, headers=auth("member")),
        404,
    )


async def test_a_failed_run_publishes_no_table(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    customers, orders = await both(client, auth, wait_job)
    body = {"dataset_id": customers["id"], "relations": [relation(orders)]}
    gen = (await new_generator(client, auth("member"), **body)).json()["data"]
    r = await client.post(
        f"/api/v1/generators/{gen['id']}/generate",
        json={"rows": 10, "conditions": {"segment": "platinum"}},
        headers=auth("member"),
    )
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed", job
    run = (await client.get(f"/api/v1/generators/{gen['id']}/generations", headers=auth())).json()
    assert run["data"][0]["status"] == "failed"
    assert run["data"][0]["tables"] == []
    datasets = await client.get("/api/v1/datasets?per_page=100", headers=auth())
    assert {d["id"] for d in datasets.json()["data"]} == {customers["id"], orders["id"]}

    # A new source version whose key repeats: the run reads it, checks it and fails once.
    twice = pl.DataFrame(CUSTOMERS + CUSTOMERS[:3]).write_csv().encode()
    r = await client.post(
        f"/api/v1/datasets/{customers['id']}/versions",
        files={"file": ("customers.csv", twice)},
        headers=auth("member"),
    )
    assert r.status_code == 202, r.text
    assert (await wait_job(r.json()["data"]["job"]["id"]))["status"] == "succeeded"
    r = await client.post(
        f"/api/v1/generators/{gen['id']}/generate", json={"rows": 10}, headers=auth("member")
    )
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed", job
    assert job["attempts"] == 1
    assert "not unique" in job["error"], job
    datasets = await client.get("/api/v1/datasets?per_page=100", headers=auth())
    assert datasets.json()["meta"]["total"] == 2


async def test_the_versions_of_one_run_are_published_all_or_none(
    client: httpx.AsyncClient, auth: Auth, synthex_settings: Any, tmp_path: Path
) -> None:
    org = identity("member", "a").org_id
    db = Database(synthex_settings.database_url, schema=synthex_settings.database_schema)
    store = open_object_store(synthex_settings.storage_url)
    parent = Publication(
        pl.DataFrame({"a": [1, 2]}), None, Lineage("upload"), new_dataset=NewDataset("one")
    )
    wrong = [ColumnSpec(name="b", type=ColumnType.integer)]  # the data has no column b
    child = Publication(
        pl.DataFrame({"a": [1]}), wrong, Lineage("upload"), new_dataset=NewDataset("two"), slot="c"
    )
    job = {"org_id": org, "job_id": "job_01TESTALLORNONE", "created_by": "me", "workdir": tmp_path}
    try:
        with pytest.raises(ValueError, match="schema does not match"):
            await publish_versions(db, store, items=[parent, child], **job)
        listed = await client.get("/api/v1/datasets", headers=auth())
        assert listed.json()["meta"]["total"] == 0  # the parent is not visible alone

        fixed = replace(child, schema=None)
        published = await publish_versions(db, store, items=[parent, fixed], **job)
        assert [v.rows for v in published] == [2, 1]
        again = await publish_versions(db, store, items=[parent, fixed], **job)
        assert [v.id for v in again] == [v.id for v in published]  # a retry publishes once
        listed = await client.get("/api/v1/datasets", headers=auth())
        assert listed.json()["meta"]["total"] == 2
    finally:
        await store.close()
        await db.dispose()
