"""Model versions: registered from a run or uploaded, listed, read, changed, deleted, files."""

from __future__ import annotations

import io
import json
import tarfile

import httpx
import pytest
from fastapi import FastAPI
from modelops_helpers import (
    SKLEARN_MLMODEL,
    Auth,
    create_model,
    log_sklearn_model,
    run_key,
    upload_version,
)

from inwire.kit.storage import ObjectStore
from inwire.kit.testing.plugin import assert_error


async def _from_run(
    client: httpx.AsyncClient, auth: Auth, model: str = "churn", **body: object
) -> httpx.Response:
    return await client.post(f"/api/v1/models/{model}/versions", json=body, headers=auth("member"))


async def test_version_from_a_run_copies_its_files_and_reads_the_mlmodel(
    client: httpx.AsyncClient, auth: Auth, training_store: ObjectStore, app: FastAPI
) -> None:
    await create_model(client, auth)
    await log_sklearn_model(training_store, "run_7")
    r = await _from_run(
        client,
        auth,
        source={"run_id": "run_7", "artifact_path": "model"},
        description="first",
        tags={"owner": "ana"},
        lineage={
            "experiment_id": "exp_1",
            "dataset_version_id": "dsv_1",
            "git_commit": "0123abcd",
            "git_repo": "https://git.example.com/risk/churn",
            "entry_point": "train.py",
        },
    )
    assert r.status_code == 201, r.text
    v = r.json()["data"]
    assert (v["name"], v["version"], v["status"], v["stage"]) == ("churn", 1, "READY", "None")
    assert (v["source_kind"], v["source"], v["run_id"]) == ("run", "runs:/run_7/model", "run_7")
    assert v["lineage"] == {
        "run_id": "run_7",
        "experiment_id": "exp_1",
        "dataset_version_id": "dsv_1",
        "git_commit": "0123abcd",
        "git_repo": "https://git.example.com/risk/churn",
        "entry_point": "train.py",
    }
    assert (v["flavor"], v["flavors"]) == ("sklearn", ["python_function", "sklearn"])
    assert v["signature_source"] == "mlmodel"
    assert v["signature"]["inputs"] == [
        {"type": "double", "name": "age", "required": True},
        {"type": "string", "name": "plan", "required": True},
    ]
    assert v["signature"]["outputs"] == [{"type": "long", "required": True}]
    assert v["file_count"] == 3
    # The files are the registry's own copy: deleting the run's artifacts leaves them.
    for info in await training_store.list(run_key("run_7", "")):
        await training_store.delete(info.key)
    r = await client.get("/api/v1/models/churn/versions/1/files/model.pkl", headers=auth("viewer"))
    assert r.status_code == 200
    assert r.content == b"\x80\x04pickle" * 100


async def test_a_single_file_or_all_of_a_run_can_be_registered(
    client: httpx.AsyncClient, auth: Auth, training_store: ObjectStore
) -> None:
    await create_model(client, auth)
    await training_store.put(run_key("r1", "out/model.onnx"), b"onnx")
    await training_store.put(run_key("r1", "out/metrics.json"), b"{}")
    r = await _from_run(client, auth, source={"run_id": "r1", "artifact_path": "out/model.onnx"})
    assert r.status_code == 201, r.text
    assert (r.json()["data"]["file_count"], r.json()["data"]["flavor"]) == (1, "onnx")
    r = await _from_run(client, auth, source={"run_id": "r1"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["source"] == "runs:/r1"
    r = await client.get(
        "/api/v1/models/churn/versions/2/files?recursive=true", headers=auth("viewer")
    )
    assert [f["path"] for f in r.json()["data"]] == ["out/metrics.json", "out/model.onnx"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": {"run_id": "nope", "artifact_path": "model"}}, "source.artifact_path"),
        ({"source": {"run_id": "run_1", "artifact_path": "../x"}}, "source.artifact_path"),
        ({"source": {"run_id": "a/b"}}, "source.run_id"),
        ({}, "source"),
        ({"source": {"run_id": "run_1"}, "flavor": "keras"}, "flavor"),
        ({"source": {"run_id": "run_1", "artifact_path": "model"}, "flavor": "onnx"}, "flavor"),
        ({"source": {"run_id": "run_1"}, "lineage": {"git_commit": "zz"}}, "lineage.git_commit"),
        ({"source": {"run_id": "run_1"}, "output_example": [1]}, "output_example"),
        ({"source": {"run_id": "run_1"}, "input_example": []}, "input_example"),
        (
            {"source": {"run_id": "run_1"}, "input_example": [{"a": 1}, {"a": "x"}]},
            "input_example.a",
        ),
        ({"source": {"run_id": "run_1"}, "signature": {"inputs": [{"type": "?"}]}}, "signature"),
    ],
)
async def test_bad_registrations_are_400_and_leave_no_version(
    client: httpx.AsyncClient,
    auth: Auth,
    training_store: ObjectStore,
    body: dict[str, object],
    field: str,
) -> None:
    await create_model(client, auth)
    await log_sklearn_model(training_store, "run_1")
    r = await _from_run(client, auth, **body)
    assert_error(r, 400, "VALIDATION_ERROR")
    fields = [d.get("field") or "" for d in r.json()["error"]["details"]]
    assert any(f.startswith(field) for f in fields), r.text
    r = await client.get("/api/v1/models/churn", headers=auth())
    assert r.json()["data"]["last_version"] == 0


async def test_a_run_of_another_organization_cannot_be_registered(
    client: httpx.AsyncClient, auth: Auth, training_store: ObjectStore
) -> None:
    await log_sklearn_model(training_store, "run_b", org="b")
    await create_model(client, auth)
    r = await _from_run(client, auth, source={"run_id": "run_b", "artifact_path": "model"})
    assert_error(r, 400)
    r = await client.post(
        "/api/v1/models/churn/versions",
        json={"source": {"run_id": "run_b", "artifact_path": "model"}},
        headers=auth("member", "b"),
    )
    assert_error(r, 404)  # org b sees no model "churn"


async def test_registering_needs_the_create_permission(
    client: httpx.AsyncClient, auth: Auth, training_store: ObjectStore
) -> None:
    await create_model(client, auth)
    await log_sklearn_model(training_store, "run_1")
    r = await client.post(
        "/api/v1/models/churn/versions",
        json={"source": {"run_id": "run_1", "artifact_path": "model"}},
        headers=auth("viewer"),
    )
    assert_error(r, 403)
    r = await client.post(
        "/api/v1/models/churn/versions/upload",
        files=[("file", ("m.bin", b"m"))],
        headers=auth("viewer"),
    )
    assert_error(r, 403)


async def test_a_failed_copy_leaves_a_failed_registration_and_no_files(
    client: httpx.AsyncClient,
    auth: Auth,
    training_store: ObjectStore,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_model(client, auth)
    await log_sklearn_model(training_store, "run_1")
    store = app.state.storage
    real_copy = store.copy
    copied: list[str] = []

    async def flaky_copy(src: str, dst: str) -> object:
        if len(copied) == 2:
            raise OSError("disk full")
        copied.append(dst)
        return await real_copy(src, dst)

    monkeypatch.setattr(store, "copy", flaky_copy)
    r = await _from_run(client, auth, source={"run_id": "run_1", "artifact_path": "model"})
    assert r.status_code == 201, r.text
    v = r.json()["data"]
    assert v["status"] == "FAILED_REGISTRATION"
    assert "disk full" in v["status_message"]
    assert [k for k in copied if await store.exists(k)] == []
    r = await client.get("/api/v1/models/churn/versions/1/files", headers=auth())
    assert_error(r, 409, "VERSION_NOT_READY")
    r = await client.post(
        "/api/v1/models/churn/versions/1/stage", json={"stage": "Staging"}, headers=auth()
    )
    assert_error(r, 409, "VERSION_NOT_READY")


async def test_upload_streams_files_and_infers_the_signature_from_examples(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth)
    r = await upload_version(
        client,
        auth,
        files={"model.pkl": b"p" * 3000, "code/predict.py": b"def predict(x): ..."},
        description="hand made",
        flavor="python",
        tags={"k": "v"},
        input_example={"columns": ["age", "plan"], "data": [[30, "gold"], [41.5, None]]},
        output_example=[0, 1],
        lineage={"run_id": "ext_run", "git_commit": "abcdef0"},
    )
    assert r.status_code == 201, r.text
    v = r.json()["data"]
    assert (v["source_kind"], v["source"], v["status"]) == ("upload", "upload", "READY")
    assert (v["flavor"], v["description"], v["tags"]) == ("python", "hand made", {"k": "v"})
    assert v["run_id"] == "ext_run"
    assert (v["file_count"], v["size_bytes"]) == (2, 3000 + len(b"def predict(x): ..."))
    assert v["signature_source"] == "example"
    assert v["signature"] == {
        "inputs": [
            {"name": "age", "type": "double", "required": True},
            {"name": "plan", "type": "string", "required": False},
        ],
        "outputs": [{"type": "long", "required": True}],
        "params": None,
    }
    assert v["input_example"] == {"columns": ["age", "plan"], "data": [[30, "gold"], [41.5, None]]}


async def test_an_uploaded_mlmodel_gives_the_flavor_and_signature(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth)
    files = {"MLmodel": SKLEARN_MLMODEL, "model.pkl": b"p"}
    r = await upload_version(client, auth, files=files)
    assert r.status_code == 201, r.text
    assert (r.json()["data"]["flavor"], r.json()["data"]["signature_source"]) == (
        "sklearn",
        "mlmodel",
    )
    given = {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]}
    r = await upload_version(client, auth, files=files, signature=given)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["signature"]["inputs"] == given["inputs"]
    assert r.json()["data"]["signature_source"] == "given"
    r = await upload_version(client, auth, files={"MLmodel": b"flavors: [unclosed"})
    assert_error(r, 400)
    assert r.json()["error"]["details"][0]["field"] == "MLmodel"


@pytest.mark.parametrize(
    ("files", "fields", "field"),
    [
        ({"../evil": b"x"}, {}, "file"),
        ({"a//b": b"x"}, {}, "file"),
        ({}, {"tags": "{not json"}, "tags"),
        ({}, {"colour": "blue"}, "colour"),
        ({}, {"tags": '{"bad key!": "v"}'}, "tags"),
        ({}, {"flavor": "keras"}, "flavor"),
        ({}, {"input_example": '[{"a": null}]'}, "input_example.a"),
    ],
)
async def test_bad_uploads_are_400_and_store_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app: FastAPI,
    files: dict[str, bytes],
    fields: dict[str, str],
    field: str,
) -> None:
    model = await create_model(client, auth)
    parts = [("file", (p, b)) for p, b in (files or {"ok.bin": b"x"}).items()]
    r = await client.post(
        "/api/v1/models/churn/versions/upload", files=parts, data=fields, headers=auth("member")
    )
    assert_error(r, 400)
    assert any((d.get("field") or "").startswith(field) for d in r.json()["error"]["details"]), (
        r.text
    )
    assert await app.state.storage.list("modelops/") == []
    r = await client.get(f"/api/v1/models/{model['id']}", headers=auth())
    assert r.json()["data"]["last_version"] == 0


async def test_upload_without_files_or_not_multipart_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth)
    h = auth("member")
    r = await client.post(
        "/api/v1/models/churn/versions/upload", data={"description": "x"}, headers=h
    )
    assert_error(r, 400)
    r = await client.post("/api/v1/models/churn/versions/upload", content=b"raw", headers=h)
    assert_error(r, 400)
    r = await client.post(
        "/api/v1/models/churn/versions/upload",
        files=[("file", ("a.bin", b"1")), ("file", ("a.bin", b"2"))],
        headers=h,
    )
    assert_error(r, 400)
    r = await client.post(
        "/api/v1/models/nope/versions/upload", files=[("file", ("a.bin", b"1"))], headers=h
    )
    assert_error(r, 404)


async def _three_versions(client: httpx.AsyncClient, auth: Auth) -> None:
    await create_model(client, auth)
    await create_model(client, auth, "other")
    for n in range(3):
        r = await upload_version(
            client,
            auth,
            files={"model.onnx": b"o" * (n + 1)},
            tags={"n": str(n)},
            lineage={"run_id": f"run_{n % 2}"},
        )
        assert r.status_code == 201, r.text
    r = await upload_version(client, auth, "other", lineage={"run_id": "run_0"})
    assert r.status_code == 201, r.text


async def test_versions_list_filters_sorts_and_pages(client: httpx.AsyncClient, auth: Auth) -> None:
    await _three_versions(client, auth)
    h = auth("viewer")

    async def numbers(url: str) -> list[int]:
        r = await client.get(url, headers=h)
        assert r.status_code == 200, r.text
        return [v["version"] for v in r.json()["data"]]

    assert await numbers("/api/v1/models/churn/versions") == [3, 2, 1]
    assert await numbers("/api/v1/models/churn/versions?sort=version&order=asc") == [1, 2, 3]
    assert await numbers("/api/v1/models/churn/versions?run_id=run_0") == [3, 1]
    assert await numbers("/api/v1/models/churn/versions?tag=n=1") == [2]
    assert await numbers("/api/v1/models/churn/versions?flavor=onnx&status=READY") == [3, 2, 1]
    assert await numbers("/api/v1/models/churn/versions?flavor=sklearn") == []
    assert await numbers("/api/v1/models/churn/versions?stage=none") == [3, 2, 1]
    assert await numbers("/api/v1/models/churn/versions?stage=Production") == []
    r = await client.get("/api/v1/models/churn/versions?per_page=2&page=2", headers=h)
    assert [v["version"] for v in r.json()["data"]] == [1]
    assert r.json()["meta"] == {"page": 2, "per_page": 2, "total": 3}
    assert_error(await client.get("/api/v1/models/churn/versions?stage=Live", headers=h), 400)
    assert_error(await client.get("/api/v1/models/churn/versions?status=DONE", headers=h), 400)
    assert_error(await client.get("/api/v1/models/nope/versions", headers=h), 404)
    assert_error(await client.get("/api/v1/models/churn/versions", headers=auth("admin", "b")), 404)


async def test_search_across_models_by_name_and_run(client: httpx.AsyncClient, auth: Auth) -> None:
    await _three_versions(client, auth)
    h = auth("viewer")
    r = await client.get("/api/v1/model-versions?run_id=run_0&sort=created_at&order=asc", headers=h)
    assert [(v["name"], v["version"]) for v in r.json()["data"]] == [
        ("churn", 1),
        ("churn", 3),
        ("other", 1),
    ]
    r = await client.get("/api/v1/model-versions?name=other", headers=h)
    assert [(v["name"], v["version"]) for v in r.json()["data"]] == [("other", 1)]
    r = await client.get("/api/v1/model-versions?name_like=ch%25&run_id=run_1", headers=h)
    assert [(v["name"], v["version"]) for v in r.json()["data"]] == [("churn", 2)]
    r = await client.get("/api/v1/model-versions", headers=auth("viewer", "b"))
    assert r.json()["meta"]["total"] == 0


async def test_get_update_tag_and_delete_a_version(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    await _three_versions(client, auth)
    h = auth("member")
    r = await client.get("/api/v1/models/churn/versions/2", headers=auth("viewer"))
    assert r.json()["data"]["tags"] == {"n": "1"}
    assert_error(await client.get("/api/v1/models/churn/versions/9", headers=h), 404)
    assert_error(await client.get("/api/v1/models/churn/versions/two", headers=h), 400)
    r = await client.patch(
        "/api/v1/models/churn/versions/2", json={"description": "d", "tags": {}}, headers=h
    )
    assert (r.json()["data"]["description"], r.json()["data"]["tags"]) == ("d", {})
    assert_error(
        await client.patch("/api/v1/models/churn/versions/2", json={"stage": "x"}, headers=h), 400
    )
    assert_error(
        await client.patch(
            "/api/v1/models/churn/versions/2", json={"description": "x"}, headers=auth("viewer")
        ),
        403,
    )
    r = await client.put("/api/v1/models/churn/versions/2/tags/q", json={"value": "1"}, headers=h)
    assert r.json()["data"]["tags"] == {"q": "1"}
    r = await client.delete("/api/v1/models/churn/versions/2/tags/q", headers=h)
    assert r.json()["data"]["tags"] == {}
    assert_error(await client.delete("/api/v1/models/churn/versions/2/tags/q", headers=h), 404)

    prefix = (await client.get("/api/v1/models/churn", headers=h)).json()["data"]["id"]
    before = [i.key for i in await app.state.storage.list("modelops/")]
    assert_error(
        await client.delete("/api/v1/models/churn/versions/2", headers=auth("viewer")), 403
    )
    assert_error(
        await client.delete("/api/v1/models/churn/versions/2", headers=auth("admin", "b")), 404
    )
    r = await client.delete("/api/v1/models/churn/versions/2", headers=h)
    assert r.status_code == 204
    after = [i.key for i in await app.state.storage.list("modelops/")]
    assert len(before) - len(after) == 1
    assert all(prefix in k for k in set(before) - set(after))
    assert_error(await client.get("/api/v1/models/churn/versions/2", headers=h), 404)
    # Numbers are never reused.
    r = await upload_version(client, auth)
    assert r.json()["data"]["version"] == 4


async def test_files_are_listed_by_folder_streamed_and_archived(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_model(client, auth)
    files = {"MLmodel": SKLEARN_MLMODEL, "data/a.bin": b"a" * 700, "data/sub/b.txt": b"bee"}
    assert (await upload_version(client, auth, files=files)).status_code == 201
    h = auth("viewer")
    base = "/api/v1/models/churn/versions/1"
    r = await client.get(f"{base}/files", headers=h)
    assert r.json()["data"] == [
        {"path": "data", "is_dir": True, "size": None},
        {"path": "MLmodel", "is_dir": False, "size": len(SKLEARN_MLMODEL)},
    ]
    r = await client.get(f"{base}/files?path=data", headers=h)
    assert [(f["path"], f["is_dir"]) for f in r.json()["data"]] == [
        ("data/sub", True),
        ("data/a.bin", False),
    ]
    r = await client.get(f"{base}/files?path=data&recursive=true", headers=h)
    assert [f["path"] for f in r.json()["data"]] == ["data/a.bin", "data/sub/b.txt"]
    r = await client.get(f"{base}/files/data/sub/b.txt", headers=h)
    assert (r.status_code, r.content) == (200, b"bee")
    assert r.headers["content-length"] == "3"
    assert_error(await client.get(f"{base}/files/nope.txt", headers=h), 404)
    assert_error(await client.get(f"{base}/files?path=../x", headers=h), 400)
    assert_error(await client.get(f"{base}/files/a.bin", headers=auth("viewer", "b")), 404)
    r = await client.get(f"{base}/download", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(r.content)) as archive:
        assert sorted(archive.getnames()) == ["MLmodel", "data/a.bin", "data/sub/b.txt"]
        member = archive.extractfile("data/a.bin")
        assert member is not None
        assert member.read() == b"a" * 700
    assert_error(await client.get(f"{base}/download", headers=auth("viewer", "b")), 404)
    assert json.loads(json.dumps(r.headers["content-disposition"])).endswith("churn-v1.tar")
