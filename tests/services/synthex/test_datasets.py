"""Datasets API: uploads imported by real worker jobs, versions, schema, preview, download,
deletion with dependents, roles, tenancy, pagination; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, ForeignKey, String, Table

from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.synthex.db import SynthexBase
from inwire.services.synthex.settings import SynthexSettings

Auth = Callable[..., dict[str, str]]
WaitJob = Callable[..., Any]

PEOPLE = (
    "id,email,age,joined,city,active,zip\n"
    + "".join(
        f"{i},user{i}@example.com,{20 + i % 50},2021-0{1 + i % 9}-1{i % 10},"
        f"{['Paris', 'Berlin', 'Rome'][i % 3]},{['yes', 'no'][i % 2]},0{1000 + i}\n"
        for i in range(1, 121)
    )
).encode()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "people.csv",
    *,
    path: str = "/api/v1/datasets",
    **params: Any,
) -> httpx.Response:
    """A multipart upload of ``content`` as ``filename``."""
    return await client.post(
        path, files={"file": (filename, content)}, params=params, headers=headers
    )


async def imported(
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    content: bytes = PEOPLE,
    filename: str = "people.csv",
    **params: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload, wait for the import, and return (dataset, version)."""
    r = await upload(client, auth("member"), content, filename, **params)
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", job
    dataset_id = started["dataset"]["id"]
    version = await client.get(f"/api/v1/datasets/{dataset_id}/versions/latest", headers=auth())
    assert version.status_code == 200, version.text
    dataset = (await client.get(f"/api/v1/datasets/{dataset_id}", headers=auth())).json()["data"]
    return dataset, version.json()["data"]


@pytest.fixture
def synthex_settings(inwire_settings: dict[str, Any]) -> SynthexSettings:
    """Small read blocks, so imports go through many batches even on small files."""
    return SynthexSettings(**inwire_settings, jobs_concurrency=2, import_block_bytes=64 * 1024)


def columns(version: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in version["schema"]}


async def objects(app: FastAPI, prefix: str) -> list[str]:
    return [o.key for o in await app.state.storage.list(prefix)]


# -- import ---------------------------------------------------------------------------------------


async def test_csv_upload_imports_a_typed_version_with_lineage(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    r = await upload(client, auth("member"), PEOPLE, name="People", tags=["crm", "eu"])
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert started["dataset"]["name"] == "People"
    assert started["dataset"]["latest_version_id"] is None
    assert started["job"]["type"] == "synthex.import"

    job = await wait_job(started["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    result = job["result"]
    assert result["rows"] == 120
    assert result["dialect"] == {"delimiter": ",", "header": True, "encoding": "utf-8"}

    dataset_id = started["dataset"]["id"]
    dataset = (await client.get(f"/api/v1/datasets/{dataset_id}", headers=auth())).json()["data"]
    assert dataset["version_count"] == 1
    assert (dataset["rows"], dataset["columns"]) == (120, 7)
    assert dataset["latest_version_id"] == result["version_id"]
    assert dataset["tags"] == ["crm", "eu"]

    v = (
        await client.get(f"/api/v1/datasets/{dataset_id}/versions/1", headers=auth("viewer"))
    ).json()["data"]
    assert v["id"] == result["version_id"]
    assert v["number"] == 1
    assert v["source_kind"] == "upload"
    assert v["source"]["filename"] == "people.csv"
    assert v["source"]["format"] == "csv"
    assert v["parent_version_id"] is None
    assert v["job_id"] == job["id"]
    assert v["bytes"] > 0
    cols = columns(v)
    assert cols["id"]["type"] == "identifier"
    assert (cols["email"]["type"], cols["email"]["semantic"]) == ("identifier", "email")
    assert (cols["age"]["type"], cols["age"]["storage"]) == ("integer", "Int64")
    assert cols["joined"]["type"] == "datetime"
    assert cols["joined"]["storage"] == "Date"
    assert (cols["city"]["type"], cols["city"]["semantic"]) == ("categorical", "city")
    assert (cols["active"]["type"], cols["active"]["storage"]) == ("boolean", "Boolean")
    # Leading zeros keep postal codes as text.
    assert (cols["zip"]["storage"], cols["zip"]["semantic"]) == ("String", "postal_code")

    # The uploaded file is gone once imported; only the version's Parquet is stored.
    stored = await objects(app, "synthex/")
    assert len(stored) == 1
    assert stored[0].endswith(f"/{dataset_id}/{v['id']}/part-00000.parquet")


async def test_raw_body_upload_takes_the_file_name_from_the_query(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    r = await client.post(
        "/api/v1/datasets",
        content=PEOPLE,
        params={"filename": "raw people.csv", "description": "sent raw"},
        headers={**auth("member"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert started["dataset"]["name"] == "raw people"
    assert started["dataset"]["description"] == "sent raw"
    assert (await wait_job(started["job"]["id"]))["status"] == "succeeded"


async def test_latin1_semicolon_csv_with_decimal_commas_and_european_dates(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    rows = [
        ("Jürgen Müller", "Köln", "12,50", "24.12.2020"),
        ("René Faß", "Düsseldorf", "7,25", "01.02.2021"),
        ("Anna Schön", "München", "3,00", "15.03.2021"),
        ("Zoë Ångström", "Zürich", "1000,75", "28.02.2022"),
    ] * 5
    text = "Name;Stadt;Betrag;Datum\n" + "".join(";".join(r) + "\n" for r in rows)
    dataset, version = await imported(client, auth, wait_job, text.encode("latin-1"), "kunden.csv")
    assert version["source"]["dialect"]["delimiter"] == ";"
    assert version["source"]["dialect"]["encoding"] in ("cp1252", "latin-1", "iso8859-1")
    cols = columns(version)
    assert (cols["Betrag"]["type"], cols["Betrag"]["storage"]) == ("float", "Float64")
    assert (cols["Datum"]["type"], cols["Datum"]["storage"]) == ("datetime", "Date")
    page = await client.get(
        f"/api/v1/datasets/{dataset['id']}/versions/1/preview?per_page=4", headers=auth()
    )
    first = page.json()["data"]["rows"][0]
    assert first == {
        "Name": "Jürgen Müller",
        "Stadt": "Köln",
        "Betrag": 12.5,
        "Datum": "2020-12-24",
    }


async def test_csv_without_header_gets_column_names(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    content = "".join(f"{i},{i * 1.5},{i % 3}\n" for i in range(1, 40)).encode()
    _, version = await imported(client, auth, wait_job, content, "numbers.csv")
    assert version["source"]["dialect"]["header"] is False
    assert [c["name"] for c in version["schema"]] == ["f0", "f1", "f2"]
    assert version["rows"] == 39
    assert columns(version)["f1"]["storage"] == "Float64"


async def test_header_and_delimiter_can_be_given(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    content = b"a|b\nx|y\nz|w\n"
    _, version = await imported(
        client, auth, wait_job, content, "pipes.txt", delimiter="|", header="false"
    )
    assert version["rows"] == 3
    assert version["source"]["dialect"] == {"delimiter": "|", "header": False, "encoding": "utf-8"}


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(1, 31)),
            "score": [i / 7 for i in range(30)],
            "group": ["a", "b", "c"] * 10,
            "flag": [True, False] * 15,
        }
    )


def _excel() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    frame = _frame()
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parquet() -> bytes:
    out = io.BytesIO()
    _frame().write_parquet(out)
    return out.getvalue()


FILES: dict[str, Callable[[], bytes]] = {
    "data.tsv": lambda: _frame().write_csv(separator="\t").encode(),
    "data.jsonl": lambda: _frame().write_ndjson().encode(),
    "data.json": lambda: json.dumps(_frame().to_dicts(), indent=1).encode(),
    "data.parquet": _parquet,
    "data.xlsx": _excel,
}


@pytest.mark.parametrize("filename", list(FILES))
async def test_every_format_imports_the_same_table(
    filename: str, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, version = await imported(client, auth, wait_job, FILES[filename](), filename)
    assert (version["rows"], version["columns"]) == (30, 4)
    cols = columns(version)
    assert cols["id"]["type"] == "identifier"
    assert cols["score"]["type"] == "float"
    assert cols["group"]["type"] == "categorical"
    assert cols["flag"]["type"] == "boolean"
    r = await client.get(
        f"/api/v1/datasets/{dataset['id']}/versions/latest/download?format=parquet",
        headers=auth(),
    )
    back = pl.read_parquet(io.BytesIO(r.content))
    assert back["score"].to_list() == pytest.approx(_frame()["score"].to_list())
    assert back["group"].to_list() == _frame()["group"].to_list()


# -- refused uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"  \n\n ", "white space"),
        ("binary.csv", bytes(range(256)) * 4, "binary"),
        ("fake.parquet", b"id,name\n1,a\n", "Parquet"),
        ("fake.xlsx", b"id,name\n1,a\n", "Excel"),
        ("broken.json", b"id,name\n1,a\n", "JSON"),
        ("broken.jsonl", b"{not json\n{}\n", "JSON Lines"),
    ],
)
async def test_malformed_file_is_refused_and_nothing_is_kept(
    filename: str,
    content: bytes,
    message: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
) -> None:
    r = await upload(client, auth("member"), content, filename)
    assert_error(r, 400, "MALFORMED_FILE")
    assert message in r.json()["error"]["message"]
    assert (await client.get("/api/v1/datasets", headers=auth())).json()["meta"]["total"] == 0
    assert await objects(app, "synthex/") == []


async def test_file_broken_past_its_head_fails_the_import_once_with_the_reason(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    content = b"a,b\n" + b"1,2\n" * 70_000 + b"3,4,5\n"
    r = await upload(client, auth("member"), content, "late.csv")
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    job = await wait_job(started["job"]["id"])
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # bad data is not retried
    assert "Cannot read the file" in job["error"]
    dataset = started["dataset"]["id"]
    versions = await client.get(f"/api/v1/datasets/{dataset}/versions", headers=auth())
    assert versions.json()["meta"]["total"] == 0
    assert await objects(app, "synthex/") == []


async def test_unsupported_format_is_415_before_anything_is_stored(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await upload(client, auth("member"), b"PK\x03\x04...", "report.docx")
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "csv" in r.json()["error"]["message"]
    raw = await client.post(
        "/api/v1/datasets",
        content=b"<a/>",
        headers={**auth("member"), "Content-Type": "application/xml"},
    )
    assert_error(raw, 415)
    bad = await upload(client, auth("member"), b"a\n1\n", "x.csv", format="xml")
    assert_error(bad, 400, "VALIDATION_ERROR")
    assert await objects(app, "synthex/") == []


async def test_upload_over_the_limit_is_413(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    app.state.settings.max_upload_bytes = 1000
    r = await upload(client, auth("member"), PEOPLE, "big.csv")
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        yield PEOPLE[:600]
        yield PEOPLE[600:]

    chunked = await client.post(
        "/api/v1/datasets?filename=big.csv", content=chunks(), headers=auth("member")
    )
    assert_error(chunked, 413)
    assert await objects(app, "synthex/") == []


async def test_upload_bodies_are_exempt_from_the_request_body_limit(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    app.state.settings.max_body_bytes = 100  # read per request: JSON routes keep it
    r = await upload(client, auth("member"), PEOPLE, "people.csv")
    assert r.status_code == 202, r.text


async def test_bad_options_are_400_naming_them(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await upload(client, auth("member"), PEOPLE, "p.csv", encoding="klingon")
    assert_error(r, 400, "VALIDATION_ERROR")
    assert r.json()["error"]["details"][0]["field"] == "encoding"
    r = await upload(client, auth("member"), PEOPLE, "p.csv", delimiter=";;")
    assert_error(r, 400)
    assert await objects(app, "synthex/") == []
    form = await client.post(
        "/api/v1/datasets", files={"name": (None, "no file here")}, headers=auth("member")
    )
    assert_error(form, 400, "VALIDATION_ERROR")
    assert "no file" in form.json()["error"]["message"]
    assert await objects(app, "synthex/") == []


# -- versions, preview, download ----------------------------------------------------------------


async def test_versions_are_numbered_addressable_and_listed(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, v1 = await imported(client, auth, wait_job)
    more = PEOPLE + b"121,new@example.com,33,2022-01-01,Oslo,yes,01121\n"
    r = await upload(
        client,
        auth("member"),
        more,
        "people.csv",
        path=f"/api/v1/datasets/{dataset['id']}/versions",
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "succeeded", job
    base = f"/api/v1/datasets/{dataset['id']}/versions"
    v2 = (await client.get(f"{base}/latest", headers=auth())).json()["data"]
    assert (v2["number"], v2["rows"]) == (2, 121)
    assert (await client.get(f"{base}/{v2['id']}", headers=auth())).json()["data"]["number"] == 2
    assert (await client.get(f"{base}/1", headers=auth())).json()["data"]["id"] == v1["id"]
    assert_error(await client.get(f"{base}/3", headers=auth()), 404)
    assert_error(await client.get(f"{base}/dsv_nope", headers=auth()), 404)

    listed = (await client.get(base, headers=auth())).json()
    assert [v["number"] for v in listed["data"]] == [2, 1]
    assert listed["meta"]["total"] == 2
    oldest = (await client.get(f"{base}?sort=number&order=asc&per_page=1", headers=auth())).json()
    assert [v["number"] for v in oldest["data"]] == [1]
    uploads = (await client.get(f"{base}?source_kind=upload", headers=auth())).json()
    assert uploads["meta"]["total"] == 2
    assert (await client.get(f"{base}?source_kind=recipe", headers=auth())).json()["data"] == []

    refreshed = (await client.get(f"/api/v1/datasets/{dataset['id']}", headers=auth())).json()
    assert refreshed["data"]["latest_version_id"] == v2["id"]
    assert refreshed["data"]["version_count"] == 2
    assert refreshed["data"]["rows"] == 121

    patched = await client.patch(
        f"{base}/1", json={"description": "first cut", "tags": ["old"]}, headers=auth("member")
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["description"] == "first cut"
    assert_error(await client.patch(f"{base}/1", json={"rows": 5}, headers=auth("member")), 400)

    jobs = await client.get(
        "/api/v1/jobs?type=synthex.import&status=succeeded", headers=auth("viewer")
    )
    assert jobs.json()["meta"]["total"] == 2


async def test_preview_pages_through_rows(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, _ = await imported(client, auth, wait_job)
    base = f"/api/v1/datasets/{dataset['id']}/versions/latest/preview"
    r = await client.get(f"{base}?page=2&per_page=50", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"] == {"page": 2, "per_page": 50, "total": 120}
    assert body["data"]["columns"][:3] == ["id", "email", "age"]
    assert [row["id"] for row in body["data"]["rows"]] == list(range(51, 101))
    assert body["data"]["rows"][0]["joined"] == "2021-07-11"
    last = (await client.get(f"{base}?page=3&per_page=50", headers=auth())).json()
    assert len(last["data"]["rows"]) == 20
    beyond = (await client.get(f"{base}?page=9&per_page=50", headers=auth())).json()
    assert beyond["data"]["rows"] == []
    app.state.settings.preview_max_rows = 10
    capped = (await client.get(f"{base}?per_page=1000", headers=auth())).json()
    assert capped["meta"]["per_page"] == 10
    assert len(capped["data"]["rows"]) == 10
    assert_error(await client.get(f"{base}?page=0", headers=auth()), 400)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
async def test_download_streams_the_version_in_each_format(
    fmt: str, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, version = await imported(client, auth, wait_job, name="People EU")
    r = await client.get(
        f"/api/v1/datasets/{dataset['id']}/versions/1/download?format={fmt}",
        headers=auth("viewer"),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="People_EU-v1.{fmt}"'
    if fmt == "csv":
        back = pl.read_csv(io.BytesIO(r.content), try_parse_dates=True)
    elif fmt == "jsonl":
        back = pl.read_ndjson(io.BytesIO(r.content))
    else:
        back = pl.read_parquet(io.BytesIO(r.content))
        assert r.headers["content-length"] == str(version["bytes"])
    assert back.height == 120
    assert back["email"][0] == "user1@example.com"
    assert back["age"].to_list()[:3] == [21, 22, 23]
    assert_error(
        await client.get(
            f"/api/v1/datasets/{dataset['id']}/versions/1/download?format=xml", headers=auth()
        ),
        400,
    )


# -- schema corrections ---------------------------------------------------------------------------


async def test_schema_hints_and_compatible_types_are_edited_in_place(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, _ = await imported(client, auth, wait_job)
    url = f"/api/v1/datasets/{dataset['id']}/versions/1/schema"
    body = {
        "columns": {
            "age": {"type": "categorical", "description": "age in years"},
            "city": {"semantic": ""},
            "email": {"semantic": "email", "type": "text"},
        }
    }
    r = await client.patch(url, json=body, headers=auth("member"))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["job"] is None
    cols = columns(r.json()["data"]["version"])
    assert (cols["age"]["type"], cols["age"]["storage"]) == ("categorical", "Int64")
    assert cols["age"]["description"] == "age in years"
    assert cols["city"]["semantic"] is None
    assert cols["email"]["type"] == "text"
    again = await client.get(f"/api/v1/datasets/{dataset['id']}/versions/1", headers=auth())
    assert columns(again.json()["data"])["age"]["type"] == "categorical"
    versions = await client.get(f"/api/v1/datasets/{dataset['id']}/versions", headers=auth())
    assert versions.json()["meta"]["total"] == 1

    for bad in (
        {"columns": {"nope": {"type": "integer"}}},
        {"columns": {"age": {"semantic": "shoe_size"}}},
        {"columns": {"age": {"type": "bignum"}}},
        {"columns": {}},
    ):
        assert_error(await client.patch(url, json=bad, headers=auth("member")), 400)


async def test_schema_change_that_needs_a_cast_makes_a_new_version(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, v1 = await imported(client, auth, wait_job)
    url = f"/api/v1/datasets/{dataset['id']}/versions/1/schema"
    # An earlier in-place correction carries over to the cast copy.
    await client.patch(url, json={"columns": {"city": {"semantic": ""}}}, headers=auth("member"))
    r = await client.patch(
        url, json={"columns": {"zip": {"type": "integer"}}}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "succeeded", job
    v2 = (
        await client.get(f"/api/v1/datasets/{dataset['id']}/versions/latest", headers=auth())
    ).json()["data"]
    assert v2["number"] == 2
    assert (v2["source_kind"], v2["parent_version_id"]) == ("edit", v1["id"])
    cols = columns(v2)
    assert (cols["zip"]["type"], cols["zip"]["storage"]) == ("integer", "Int64")
    assert cols["city"]["semantic"] is None
    assert cols["email"]["semantic"] == "email"
    page = await client.get(
        f"/api/v1/datasets/{dataset['id']}/versions/2/preview?per_page=1", headers=auth()
    )
    assert page.json()["data"]["rows"][0]["zip"] == 1001
    # Version 1 is untouched.
    first = await client.get(f"/api/v1/datasets/{dataset['id']}/versions/1", headers=auth())
    assert columns(first.json()["data"])["zip"]["storage"] == "String"


async def test_cast_that_would_lose_values_fails_naming_the_column(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, _ = await imported(client, auth, wait_job)
    r = await client.patch(
        f"/api/v1/datasets/{dataset['id']}/versions/1/schema",
        json={"columns": {"email": {"type": "datetime"}}},
        headers=auth("member"),
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"])
    assert job["status"] == "failed"
    assert "email" in job["error"]
    assert job["attempts"] == 1
    versions = await client.get(f"/api/v1/datasets/{dataset['id']}/versions", headers=auth())
    assert versions.json()["meta"]["total"] == 1


# -- roles, tenancy, lists ------------------------------------------------------------------------


async def test_viewers_read_but_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, _ = await imported(client, auth, wait_job)
    viewer = auth("viewer")
    base = f"/api/v1/datasets/{dataset['id']}"
    assert_error(await upload(client, viewer, PEOPLE), 403, "FORBIDDEN")
    assert_error(await upload(client, viewer, PEOPLE, path=f"{base}/versions"), 403)
    assert_error(await client.patch(base, json={"name": "x"}, headers=viewer), 403)
    assert_error(await client.delete(base, headers=viewer), 403)
    assert_error(await client.patch(f"{base}/versions/1", json={"tags": []}, headers=viewer), 403)
    schema = {"columns": {"age": {"semantic": "phone"}}}
    assert_error(await client.patch(f"{base}/versions/1/schema", json=schema, headers=viewer), 403)
    assert_error(await client.delete(f"{base}/versions/1", headers=viewer), 403)
    for path in (base, f"{base}/versions", f"{base}/versions/1", f"{base}/versions/1/preview"):
        assert (await client.get(path, headers=viewer)).status_code == 200, path
    assert (await client.get(f"{base}/versions/1/download", headers=viewer)).status_code == 200
    assert_error(await client.get(base), 401)
    # A refused upload stores nothing.
    assert len(await objects(app, "synthex/")) == 1


async def test_another_organizations_datasets_do_not_exist(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, version = await imported(client, auth, wait_job)
    other = auth("admin", "b")
    base = f"/api/v1/datasets/{dataset['id']}"
    for path in (
        base,
        f"{base}/versions",
        f"{base}/versions/1",
        f"{base}/versions/{version['id']}",
        f"{base}/versions/1/preview",
        f"{base}/versions/1/download",
    ):
        assert_error(await client.get(path, headers=other), 404, "NOT_FOUND")
    assert_error(await client.patch(base, json={"name": "mine"}, headers=other), 404)
    assert_error(await client.delete(base, headers=other), 404)
    assert_error(await client.delete(f"{base}/versions/1", headers=other), 404)
    schema = {"columns": {"age": {"semantic": "phone"}}}
    assert_error(await client.patch(f"{base}/versions/1/schema", json=schema, headers=other), 404)
    assert_error(await upload(client, other, PEOPLE, path=f"{base}/versions"), 404)
    listed = await client.get("/api/v1/datasets", headers=other)
    assert listed.json() == {"data": [], "meta": {"page": 1, "per_page": 20, "total": 0}}
    jobs = await client.get("/api/v1/jobs", headers=other)
    assert jobs.json()["meta"]["total"] == 0
    # The refused upload into another organization's dataset left nothing behind.
    assert len(await objects(app, "synthex/")) == 1


async def test_dataset_list_pages_searches_filters_and_sorts(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for name, tags in (("Sales 2024", ["finance"]), ("sales_2025", ["finance", "eu"]), ("HR", [])):
        r = await upload(client, auth("member"), PEOPLE, name=name, tags=tags)
        assert r.status_code == 202, r.text
    await upload(client, auth("admin", "b"), PEOPLE, name="Sales of B")
    url = "/api/v1/datasets"
    first = (await client.get(f"{url}?per_page=2", headers=auth())).json()
    assert first["meta"] == {"page": 1, "per_page": 2, "total": 3}
    second = (await client.get(f"{url}?per_page=2&page=2", headers=auth())).json()
    assert len(second["data"]) == 1
    assert {d["id"] for d in first["data"]}.isdisjoint({d["id"] for d in second["data"]})
    by_name = (await client.get(f"{url}?sort=name&order=asc", headers=auth())).json()
    assert [d["name"] for d in by_name["data"]] == ["HR", "Sales 2024", "sales_2025"]
    found = (await client.get(f"{url}?q=SALES", headers=auth())).json()
    assert sorted(d["name"] for d in found["data"]) == ["Sales 2024", "sales_2025"]
    underscore = (await client.get(f"{url}?q=s_2", headers=auth())).json()
    assert [d["name"] for d in underscore["data"]] == ["sales_2025"]
    tagged = (await client.get(f"{url}?tag=eu", headers=auth())).json()
    assert [d["name"] for d in tagged["data"]] == ["sales_2025"]
    member = (await client.get(f"{url}?created_by=nobody", headers=auth())).json()
    assert member["meta"]["total"] == 0
    assert_error(await client.get(f"{url}?sort=secret", headers=auth()), 400)
    assert_error(await client.get(f"{url}?per_page=1000", headers=auth()), 400)


async def test_dataset_metadata_is_edited(client: httpx.AsyncClient, auth: Auth) -> None:
    r = await upload(client, auth("member"), PEOPLE)
    dataset_id = r.json()["data"]["dataset"]["id"]
    changed = await client.patch(
        f"/api/v1/datasets/{dataset_id}",
        json={"name": "Customers", "description": "CRM export", "tags": ["crm"]},
        headers=auth("member"),
    )
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert (data["name"], data["description"], data["tags"]) == ("Customers", "CRM export", ["crm"])
    for bad in ({"name": ""}, {"name": None}, {"tags": ["x" * 51]}, {"owner": "me"}):
        r = await client.patch(f"/api/v1/datasets/{dataset_id}", json=bad, headers=auth("member"))
        assert_error(r, 400, "VALIDATION_ERROR")


# -- deletion -------------------------------------------------------------------------------------


async def test_deleting_a_version_others_derive_from_needs_force(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    dataset, v1 = await imported(client, auth, wait_job)
    base = f"/api/v1/datasets/{dataset['id']}/versions"
    r = await client.patch(
        f"{base}/1/schema", json={"columns": {"zip": {"type": "integer"}}}, headers=auth("member")
    )
    await wait_job(r.json()["data"]["job"]["id"])
    v2 = (await client.get(f"{base}/2", headers=auth())).json()["data"]

    refused = await client.delete(f"{base}/1", headers=auth("member"))
    assert_error(refused, 409, "IN_USE")
    assert v2["id"] in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"] == [
        {"kind": "version", "id": v2["id"], "field": "parent_version_id", "blocking": True}
    ]
    assert (await client.get(f"{base}/1", headers=auth())).status_code == 200

    forced = await client.delete(f"{base}/1?force=true", headers=auth("member"))
    assert forced.status_code == 204, forced.text
    assert_error(await client.get(f"{base}/1", headers=auth()), 404)
    kept = (await client.get(f"{base}/2", headers=auth())).json()["data"]
    assert kept["parent_version_id"] == v1["id"]  # lineage stays as history
    stored = await objects(app, "synthex/")
    assert all(v1["id"] not in key for key in stored)
    assert any(v2["id"] in key for key in stored)

    # Deleting the latest version moves the dataset back to the one before.
    ds = (await client.get(f"/api/v1/datasets/{dataset['id']}", headers=auth())).json()["data"]
    assert (ds["latest_version_id"], ds["version_count"]) == (v2["id"], 1)
    assert (await client.delete(f"{base}/2", headers=auth("member"))).status_code == 204
    ds = (await client.get(f"/api/v1/datasets/{dataset['id']}", headers=auth())).json()["data"]
    assert (ds["latest_version_id"], ds["version_count"], ds["rows"]) == (None, 0, None)


@pytest.fixture
async def referencing_tables(app: FastAPI) -> AsyncIterator[tuple[Table, Table]]:
    """Two tables like other concepts declare: a generator-like reference (SET NULL) and a
    profile-like one that belongs to the version (CASCADE)."""
    uses = Table(
        "test_version_users",
        SynthexBase.metadata,
        Column("id", String(40), primary_key=True),
        Column("organization_id", String(40)),
        Column("version_id", ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True),
    )
    owned = Table(
        "test_version_parts",
        SynthexBase.metadata,
        Column("id", String(40), primary_key=True),
        Column("version_id", ForeignKey("dataset_versions.id", ondelete="CASCADE")),
    )
    try:
        async with app.state.db.engine.begin() as conn:
            await conn.run_sync(lambda c: SynthexBase.metadata.create_all(c, [uses, owned]))
        yield uses, owned
    finally:
        SynthexBase.metadata.remove(uses)
        SynthexBase.metadata.remove(owned)


async def test_deleting_a_dataset_names_records_that_reference_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    wait_job: WaitJob,
    referencing_tables: tuple[Table, Table],
) -> None:
    uses, owned = referencing_tables
    dataset, version = await imported(client, auth, wait_job)
    async with app.state.db.session() as session:
        await session.execute(
            uses.insert().values(
                id="gen_1", organization_id=identity("admin").org_id, version_id=version["id"]
            )
        )
        await session.execute(owned.insert().values(id="prof_1", version_id=version["id"]))

    url = f"/api/v1/datasets/{dataset['id']}"
    refused = await client.delete(url, headers=auth("member"))
    assert_error(refused, 409, "IN_USE")
    assert refused.json()["error"]["details"] == [
        {"kind": "test_version_users", "id": "gen_1", "field": "version_id", "blocking": True}
    ]
    assert "force=true" in refused.json()["error"]["message"]

    assert (await client.delete(f"{url}?force=true", headers=auth("member"))).status_code == 204
    assert_error(await client.get(url, headers=auth()), 404)
    async with app.state.db.session() as session:
        left = (await session.execute(uses.select())).mappings().all()
        parts = (await session.execute(owned.select())).all()
    assert [dict(r) for r in left] == [
        {"id": "gen_1", "organization_id": identity("admin").org_id, "version_id": None}
    ]
    assert parts == []
    for _ in range(50):  # objects go after the response
        if not await objects(app, "synthex/"):
            break
        await asyncio.sleep(0.05)
    assert await objects(app, "synthex/") == []


async def test_deleting_a_dataset_being_imported_needs_force_and_cancels_the_job(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    r = await upload(client, auth("member"), PEOPLE)
    started = r.json()["data"]
    url = f"/api/v1/datasets/{started['dataset']['id']}"
    refused = await client.delete(url, headers=auth("member"))
    if refused.status_code == 409:
        detail = refused.json()["error"]["details"][0]
        assert (detail["id"], detail["field"]) == (started["job"]["id"], "input")
        assert (await client.delete(f"{url}?force=true", headers=auth("member"))).status_code == 204
        job = await wait_job(started["job"]["id"])
        assert job["status"] in ("cancelled", "failed", "succeeded")
    else:  # the import finished first
        assert refused.status_code == 204
    assert_error(await client.get(url, headers=auth()), 404)


# -- crashes and memory ---------------------------------------------------------------------------


def big_csv(rows: int) -> bytes:
    """A CSV of ``rows`` rows with numbers, text, categories and dates."""
    return big_frame(rows).write_csv().encode()


def big_frame(rows: int) -> pl.DataFrame:
    """``rows`` rows with numbers, text, categories and dates."""
    return pl.DataFrame(
        {
            "id": pl.int_range(0, rows, eager=True),
            "amount": pl.int_range(0, rows, eager=True) * 0.37,
            "label": pl.int_range(0, rows, eager=True).cast(pl.String).str.zfill(9),
            "kind": (pl.int_range(0, rows, eager=True) % 7).cast(pl.String),
            "day": pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 12, 31), eager=True).sample(
                rows, with_replacement=True, seed=1
            ),
        }
    )


async def test_worker_killed_mid_import_leaves_no_half_version_and_the_retry_publishes_once(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    r = await upload(client, auth("member"), big_csv(600_000), "big.csv")
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    job_id, dataset_id = started["job"]["id"], started["dataset"]["id"]
    await wait_job(
        job_id, lambda j: j["status"] == "running" and 0.05 <= j["progress"] < 0.9, wait=120
    )
    logs = (await client.get(f"/api/v1/jobs/{job_id}/logs", headers=auth())).json()["data"]
    pids = [int(m.group(1)) for e in logs if (m := re.search(r"\(pid (\d+)\)", e["line"]))]
    os.kill(pids[-1], signal.SIGSTOP)
    try:
        # Frozen mid-import: nothing of the new version is visible.
        versions = await client.get(f"/api/v1/datasets/{dataset_id}/versions", headers=auth())
        assert versions.json()["meta"]["total"] == 0
        dataset = (await client.get(f"/api/v1/datasets/{dataset_id}", headers=auth())).json()
        assert dataset["data"]["latest_version_id"] is None
    finally:
        os.kill(pids[-1], signal.SIGKILL)

    job = await wait_job(job_id, wait=180)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    versions = (await client.get(f"/api/v1/datasets/{dataset_id}/versions", headers=auth())).json()
    assert versions["meta"]["total"] == 1
    assert versions["data"][0]["rows"] == 600_000
    stored = await objects(app, "synthex/")
    assert len(stored) == 1
    assert versions["data"][0]["id"] in stored[0]


@pytest.mark.slow
async def test_large_csv_imports_in_bounded_memory(
    client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob, tmp_path: Path
) -> None:
    rows = 16_000_000
    frame = big_frame(rows)
    decoded = frame.estimated_size()
    path = tmp_path / "large.csv"
    frame.write_csv(path)
    del frame

    async def body() -> AsyncIterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(4 * 1024 * 1024):
                yield chunk

    r = await client.post(
        "/api/v1/datasets?filename=large.csv",
        content=body(),
        headers={**auth("member"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    job = await wait_job(r.json()["data"]["job"]["id"], wait=600)
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == rows
    grown = job["result"]["peak_memory_bytes"] - job["result"]["start_memory_bytes"]
    # The worker never holds the table: its heap grows by well under the decoded size.
    assert grown < decoded / 2, (grown, decoded, path.stat().st_size)


async def test_dataset_changes_are_published_as_events(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob
) -> None:
    from inwire.kit.events import open_event_bus

    dataset, version = await imported(client, auth, wait_job)
    await client.delete(f"/api/v1/datasets/{dataset['id']}", headers=auth("member"))
    bus = open_event_bus(app.state.settings.events_url)
    seen: list[tuple[str, str | None]] = []
    try:
        async with bus.subscribe("test-datasets", "inwire.synthex.") as sub:
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                for delivery in await sub.fetch(wait=0.5):
                    seen.append((delivery.event.type, delivery.event.subject))
                    assert delivery.event.inwireorg == identity("admin").org_id
                    await delivery.ack()
                if len(seen) >= 3:
                    break
    finally:
        await bus.close()
    assert seen == [
        ("inwire.synthex.dataset.created", dataset["id"]),
        ("inwire.synthex.dataset.version.created", version["id"]),
        ("inwire.synthex.dataset.deleted", dataset["id"]),
    ]
