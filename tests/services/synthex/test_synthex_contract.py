"""The Synthex contract client against the real app, and its models against the API's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi import FastAPI

from inwire.contracts.synthex import Dataset, DatasetVersion, SynthexClient
from inwire.kit.errors import Forbidden, NotFound
from inwire.services.synthex.datasets.schemas import DatasetOut, VersionOut

Auth = Callable[..., dict[str, str]]

CSV = b"id,score,group\n" + b"".join(f"{i},{i / 3},{'abc'[i % 3]}\n".encode() for i in range(50))


def test_contract_models_name_only_fields_the_api_sends() -> None:
    assert set(Dataset.model_fields) <= set(DatasetOut.model_fields)
    api_versions = {f.alias or n for n, f in VersionOut.model_fields.items()}
    assert {f.alias or n for n, f in DatasetVersion.model_fields.items()} <= api_versions


async def test_client_lists_reads_and_downloads_a_version(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    token_factory: Callable[..., str],
    wait_job: Callable[..., Any],
    tmp_path: Path,
) -> None:
    r = await client.post(
        "/api/v1/datasets", files={"file": ("scores.csv", CSV)}, headers=auth("member")
    )
    started = r.json()["data"]
    assert (await wait_job(started["job"]["id"]))["status"] == "succeeded"
    dataset_id = started["dataset"]["id"]

    async with SynthexClient(app=app, credentials=token_factory("viewer")) as synthex:
        page = await synthex.list_datasets(q="scores")
        assert [d.id for d in page.items] == [dataset_id]
        assert (await synthex.get_dataset(dataset_id)).rows == 50
        versions = await synthex.list_versions(dataset_id)
        assert versions.total == 1
        version = await synthex.get_version(dataset_id, 1)
        assert version.id == versions.items[0].id
        assert [c.name for c in version.schema_] == ["id", "score", "group"]
        assert version.schema_[1].type == "float"

        target = tmp_path / "scores.parquet"
        written = await synthex.download_version(dataset_id, target)
        assert written == version.bytes == target.stat().st_size
        frame = pl.read_parquet(target)
        assert frame.height == 50
        assert frame["group"].to_list()[:3] == ["a", "b", "c"]

        async with synthex.stream_version(dataset_id, "latest", format="csv") as body:
            text = b"".join([chunk async for chunk in body])
        assert text.startswith(b'"id","score","group"\n') or text.startswith(b"id,score,group\n")

        with pytest.raises(NotFound):
            await synthex.get_version(dataset_id, 7)
        with pytest.raises(NotFound):
            await synthex.download_version(dataset_id, tmp_path / "none.parquet", version=7)
        assert not (tmp_path / "none.parquet").exists()

    async with SynthexClient(app=app, credentials=token_factory("admin", "b")) as other:
        with pytest.raises(NotFound):
            await other.get_dataset(dataset_id)
    async with SynthexClient(app=app, credentials=token_factory("viewer")) as viewer:
        with pytest.raises(Forbidden):
            await viewer.patch(f"/api/v1/datasets/{dataset_id}", json={"name": "x"})
