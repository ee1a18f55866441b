"""The ModelOps contract client against the real app, and its models against the API's."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from modelops_helpers import log_sklearn_model

from inwire.contracts.modelops import ModelOpsClient, ModelVersion, RegisteredModel, VersionFile
from inwire.kit.errors import Conflict, Forbidden, Invalid, NotFound
from inwire.kit.storage import ObjectStore
from inwire.services.modelops.models.schemas import (
    ModelVersionOut,
    RegisteredModelOut,
)
from inwire.services.modelops.models.schemas import (
    VersionFile as VersionFileOut,
)

Auth = Callable[..., dict[str, str]]


def test_contract_models_name_only_fields_the_api_sends() -> None:
    assert set(RegisteredModel.model_fields) == set(RegisteredModelOut.model_fields)
    assert set(ModelVersion.model_fields) == set(ModelVersionOut.model_fields)
    assert set(VersionFile.model_fields) == set(VersionFileOut.model_fields)


async def test_client_covers_the_registry_as_mlflow_needs_it(
    app: FastAPI, token_factory: Callable[..., str], training_store: ObjectStore
) -> None:
    await log_sklearn_model(training_store, "run_1")
    await log_sklearn_model(training_store, "run_2")
    async with ModelOpsClient(app=app, credentials=token_factory("member")) as registry:
        created = await registry.create_model("fraud model", description="d", tags={"t": "1"})
        assert created.name == "fraud model"
        with pytest.raises(Conflict) as taken:
            await registry.create_model("fraud model")
        assert taken.value.code == "NAME_TAKEN"

        v1 = await registry.create_version(
            "fraud model",
            run_id="run_1",
            artifact_path="model",
            source_uri="mlflow-artifacts:/0/run_1/artifacts/model",
            tags={"k": "v"},
            lineage={"experiment_id": "exp_1", "git_commit": "abc1234"},
        )
        assert (v1.version, v1.status, v1.flavor) == (1, "READY", "sklearn")
        assert v1.source == "mlflow-artifacts:/0/run_1/artifacts/model"
        assert v1.lineage.run_id == "run_1"
        assert v1.signature is not None
        v2 = await registry.create_version("fraud model", run_id="run_2", artifact_path="model")
        assert v2.version == 2

        assert (await registry.get_model(created.id)).last_version == 2
        page = await registry.search_models(name_like="fraud%", tags={"t": "1"})
        assert [m.name for m in page.items] == ["fraud model"]
        assert (await registry.search_models(name_like="FRAUD%")).total == 0
        assert (await registry.search_models(name_ilike="FRAUD%")).total == 1

        found = await registry.search_versions(run_ids=["run_2"], name="fraud model")
        assert [v.version for v in found.items] == [2]
        assert (await registry.search_versions(model="fraud model", tags={"k": "v"})).total == 1

        await registry.transition_stage("fraud model", 1, "production")
        moved = await registry.transition_stage(
            "fraud model", 2, "Production", archive_existing_versions=True
        )
        assert moved.stage == "Production"
        assert (await registry.get_version("fraud model", 1)).stage == "Archived"
        latest = await registry.latest_versions("fraud model", ["Production", "Archived"])
        assert sorted((v.stage, v.version) for v in latest) == [
            ("Archived", 1),
            ("Production", 2),
        ]
        with pytest.raises(Invalid):
            await registry.transition_stage(
                "fraud model", 1, "None", archive_existing_versions=True
            )

        await registry.set_alias("fraud model", "champion", 1)
        await registry.set_alias("fraud model", "champion", 2)
        assert (await registry.get_by_alias("fraud model", "champion")).version == 2
        assert (await registry.get_model("fraud model")).aliases == {"champion": 2}
        await registry.delete_alias("fraud model", "champion")
        with pytest.raises(NotFound):
            await registry.get_by_alias("fraud model", "champion")

        tagged = await registry.set_version_tag("fraud model", 2, "a/b", "c")
        assert tagged.tags["a/b"] == "c"
        assert "a/b" not in (await registry.delete_version_tag("fraud model", 2, "a/b")).tags
        assert (await registry.set_model_tag("fraud model", "x y", "1")).tags["x y"] == "1"
        assert "x y" not in (await registry.delete_model_tag("fraud model", "x y")).tags
        updated = await registry.update_version("fraud model", 2, description="better")
        assert updated.description == "better"

        files = await registry.list_files("fraud model", 2, recursive=True)
        assert sorted(f.path for f in files) == ["MLmodel", "model.pkl", "requirements.txt"]
        async with registry.stream_file("fraud model", 2, "requirements.txt") as body:
            assert b"".join([c async for c in body]) == b"scikit-learn==1.5.2\n"
        async with registry.stream_archive("fraud model", 2) as body:
            data = b"".join([c async for c in body])
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            assert sorted(archive.getnames()) == ["MLmodel", "model.pkl", "requirements.txt"]

        renamed = await registry.update_model("fraud model", name="fraud", model_card="# Card")
        assert (renamed.name, renamed.model_card) == ("fraud", "# Card")
        await registry.delete_version("fraud", 1)
        with pytest.raises(NotFound):
            await registry.get_version("fraud", 1)
        await registry.delete_model("fraud")
        with pytest.raises(NotFound):
            await registry.get_model("fraud")

    async with ModelOpsClient(app=app, credentials=token_factory("viewer")) as viewer:
        with pytest.raises(Forbidden):
            await viewer.create_model("nope")


async def test_client_reaches_the_app_over_asgi_with_http_errors(
    client: httpx.AsyncClient, app: FastAPI, token_factory: Callable[..., str]
) -> None:
    async with ModelOpsClient(app=app, credentials=token_factory("member", "b")) as other:
        with pytest.raises(NotFound):
            await other.get_version("missing", 1)
        with pytest.raises(Invalid) as bad:
            await other.create_model("mdl_01J0000000000000000000000Z")
        assert bad.value.details
