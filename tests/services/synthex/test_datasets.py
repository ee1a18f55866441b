"""Datasets API: uploads imported by real worker jobs, versions, schema, preview, download,
deletion with dependents, roles, tenancy, pagination; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi import FastAPI

from inwire.kit.testing.plugin import assert_error

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
