"""Builds: a serving bundle and a container build context, with no container builder."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from builds_helpers import sklearn_version, tar_members, wait_build
from fastapi import FastAPI
from modelops_helpers import Auth, create_model, upload_version
from serving_helpers import expected, rows, write_mlflow_sklearn

from inwire.kit.ids import new_id
from inwire.kit.jobs import JobContext, JobFailed
from inwire.kit.testing.identities import ORGS
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.builds import jobs as build_jobs
from inwire.services.modelops.builds.bundle import APP_DIR, CONTAINER_PORT, validate_dockerfile
from inwire.services.modelops.builds.jobs import NO_BUILDER
from inwire.services.modelops.builds.models import Build
from inwire.services.modelops.settings import ModelOpsSettings


@pytest.mark.slow
async def test_a_build_without_a_builder_makes_the_bundle_and_context_and_no_image(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    version = await sklearn_version(client, auth)
    r = await client.post(
        "/api/v1/builds", json={"model": "churn", "version": 1}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    started = r.json()["data"]
    assert (started["status"], started["version_id"], started["image"]) == (
        "queued",
        version["id"],
        None,
    )
    build = await wait_build(client, auth, started["id"])
    assert build["status"] == "succeeded", build
    assert build["image"] is None
    assert build["pushed"] is False
    assert "no image was built" in build["message"]
    assert build["requirements_source"] == "version"
    numpy = metadata.version("numpy")
    assert build["requirements"][:2] == ["scikit-learn==1.5.2", f"numpy=={numpy}"]
    assert f"inwire=={metadata.version('inwire')}" in build["requirements"]
    artifacts = build["artifacts"]
    assert artifacts["bundle"]["url"].endswith(f"/api/v1/builds/{build['id']}/bundle")

    r = await client.get(f"/api/v1/builds/{build['id']}/bundle", headers=auth("viewer"))
    assert r.status_code == 200
    assert len(r.content) == artifacts["bundle"]["size"]
    bundle = tar_members(r.content)
    assert sorted(bundle) == [
        "inwire-bundle.json",
        "model/MLmodel",
        "model/model.pkl",
        "model/requirements.txt",
        "requirements.txt",
        "signature.json",
    ]
    manifest = json.loads(bundle["inwire-bundle.json"])
    assert manifest["entry_point"][:3] == [
        "python",
        "-m",
        "inwire.services.modelops.serving.server",
    ]
    assert "--signature-file" in manifest["entry_point"]
    assert manifest["version"] == {"number": 1, "id": version["id"]}
    assert json.loads(bundle["signature.json"])["inputs"][0]["name"] == "age"

    r = await client.get(f"/api/v1/builds/{build['id']}/context", headers=auth("viewer"))
    context = tar_members(r.content)
    assert "Dockerfile" in context
    assert {f"bundle/{name}" for name in bundle} <= set(context)
    dockerfile = context["Dockerfile"].decode()
    assert dockerfile.count("FROM python:3.11-slim") == 1
    assert validate_dockerfile(dockerfile, list(context)) == []

    logs = await client.get(f"/api/v1/builds/{build['id']}/logs", headers=auth("viewer"))
    text = "\n".join(line["line"] for line in logs.json()["data"])
    assert "requirements from the version" in text
    assert "no image was built" in text
    assert logs.json()["meta"]["job_status"] == "succeeded"

    # without requirements.txt: the flavor's packages at the versions installed here
    r = await upload_version(
        client, auth, "churn", files={"MLmodel": b"flavors:\n  sklearn: {}\n", "m.pkl": b"x"}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/builds", json={"model": "churn", "version": 2}, headers=auth())
    second = await wait_build(client, auth, r.json()["data"]["id"])
    assert second["status"] == "succeeded", second
    assert second["requirements_source"] == "flavor"
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in second["requirements"]

    listed = await client.get("/api/v1/builds", params={"per_page": 1}, headers=auth("viewer"))
    assert listed.json()["meta"]["total"] == 2
    assert [b["version"] for b in listed.json()["data"]] == [2]
    by_version = await client.get(
        "/api/v1/builds", params={"version_id": version["id"]}, headers=auth()
    )
    assert [b["id"] for b in by_version.json()["data"]] == [build["id"]]
    by_model = await client.get("/api/v1/builds", params={"model": "churn"}, headers=auth())
    assert by_model.json()["meta"]["total"] == 2
    by_status = await client.get("/api/v1/builds", params={"status": "failed"}, headers=auth())
    assert by_status.json()["meta"]["total"] == 0

    # another organization sees none of it
    other = auth("admin", "b")
    assert_error(await client.get(f"/api/v1/builds/{build['id']}", headers=other), 404)
    assert_error(await client.get(f"/api/v1/builds/{build['id']}/bundle", headers=other), 404)
    assert_error(await client.get(f"/api/v1/builds/{build['id']}/context", headers=other), 404)
    assert_error(await client.get(f"/api/v1/builds/{build['id']}/logs", headers=other), 404)
    assert (await client.get("/api/v1/builds", headers=other)).json()["meta"]["total"] == 0
    assert_error(await client.post(f"/api/v1/builds/{build['id']}/cancel", headers=auth()), 409)


async def test_build_errors(client: httpx.AsyncClient, auth: Auth) -> None:
    await sklearn_version(client, auth)
    url = "/api/v1/builds"
    assert_error(
        await client.post(url, json={"model": "churn", "version": 1}, headers=auth("viewer")), 403
    )
    assert_error(await client.post(url, json={"model": "nope", "version": 1}, headers=auth()), 404)
    assert_error(await client.post(url, json={"model": "churn", "version": 9}, headers=auth()), 404)
    assert_error(await client.post(url, json={"model": "churn", "version": 0}, headers=auth()), 400)
    assert_error(await client.post(url, json={"model": "churn"}, headers=auth()), 400)
    assert_error(
        await client.post(url, json={"model": "churn", "version": 1, "x": 1}, headers=auth()), 400
    )
    assert_error(
        await client.post(url, json={"model": "churn", "version": 1}, headers=auth("admin", "b")),
        404,
    )
    assert_error(await client.get(url, params={"status": "nope"}, headers=auth()), 400)
    assert_error(await client.get(f"{url}/bld_unknown", headers=auth()), 404)
    assert_error(await client.get(url), 401)


async def test_idempotent_start_and_cancel(client: httpx.AsyncClient, auth: Auth) -> None:
    await sklearn_version(client, auth)
    body = {"model": "churn", "version": 1}
    headers = {**auth(), "Idempotency-Key": "build-1"}
    first = await client.post("/api/v1/builds", json=body, headers=headers)
    again = await client.post("/api/v1/builds", json=body, headers=headers)
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    build_id = first.json()["data"]["id"]
    assert_error(
        await client.post(f"/api/v1/builds/{build_id}/cancel", headers=auth("viewer")), 403
    )
    r = await client.post(f"/api/v1/builds/{build_id}/cancel", headers=auth())
    if r.status_code == 200:  # not finished yet
        final = await wait_build(client, auth, build_id)
        assert final["status"] in ("cancelled", "succeeded")
        if final["status"] == "cancelled":
            assert final["artifacts"] is None
            assert_error(await client.get(f"/api/v1/builds/{build_id}/bundle", headers=auth()), 404)
    else:
        assert_error(r, 409)


@pytest.mark.slow
async def test_the_bundle_serves_with_its_own_entry_point(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    """Unpack a build's bundle and run the manifest's entry point (the paths and port
    moved from the container's to here): it answers predictions of the version."""
    await create_model(client, auth, "iris")
    folder = write_mlflow_sklearn(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = await upload_version(client, auth, "iris", files=files)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/builds", json={"model": "iris", "version": 1}, headers=auth())
    build = await wait_build(client, auth, r.json()["data"]["id"])
    assert build["status"] == "succeeded", build
    bundle = (await client.get(f"/api/v1/builds/{build['id']}/bundle", headers=auth())).content
    root = tmp_path / "bundle"
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        tar.extractall(root, filter="data")
    manifest = json.loads((root / "inwire-bundle.json").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(root) + a.removeprefix(APP_DIR) if a.startswith(APP_DIR) else a
        for a in manifest["entry_point"]
    ]
    command = [sys.executable if a == "python" else a for a in command]
    command[command.index("0.0.0.0")] = "127.0.0.1"
    command[command.index(str(CONTAINER_PORT))] = str(port)
    process = await asyncio.create_subprocess_exec(*command)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as server:
            for _ in range(300):
                try:
                    if (await server.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            records = rows(6, start=60)
            r = await server.post("/predict", json={"inputs": records})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == expected(records)
            bad = await server.post("/predict", json={"inputs": [{"sepal_length": "x"}]})
            assert bad.status_code == 400
    finally:
        process.terminate()
        await process.wait()


async def test_the_build_job_in_process(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI, modelops_settings: ModelOpsSettings
) -> None:
    """The job function itself (no worker process): artifacts stored, the row updated, the
    message plain about the missing image; a build of a deleted version fails cleanly."""
    version = await sklearn_version(client, auth)
    build_id = new_id("bld")
    async with app.state.db.session() as session:
        session.add(
            Build(
                id=build_id,
                organization_id=ORGS["a"],
                model_id=version["model_id"],
                version_id=version["id"],
                model_name="churn",
                version=1,
                job_id="job_x",
                created_by="usr_1",
            )
        )
    ctx = JobContext(
        job_id="job_x",
        organization_id=ORGS["a"],
        job_type="modelops.build",
        attempt=1,
        max_attempts=1,
        created_by="usr_1",
        settings=modelops_settings.model_dump(mode="json"),
    )
    result = await build_jobs.build(ctx, {"build_id": build_id})
    assert result == {"build_id": build_id, "image": None, "pushed": False, "message": NO_BUILDER}
    r = await client.get(f"/api/v1/builds/{build_id}", headers=auth("viewer"))
    data = r.json()["data"]
    assert (data["status"], data["image"], data["requirements_source"]) == (
        "succeeded",
        None,
        "version",
    )
    r = await client.get(f"/api/v1/builds/{build_id}/bundle", headers=auth("viewer"))
    assert "model/MLmodel" in tar_members(r.content)
    r = await client.get(f"/api/v1/builds/{build_id}/context", headers=auth("viewer"))
    context = tar_members(r.content)
    assert validate_dockerfile(context["Dockerfile"].decode(), list(context)) == []
    _, lines = ctx.take()
    assert any("no image was built" in line for _, _, line in lines)

    with pytest.raises(JobFailed, match="does not exist"):
        await build_jobs.build(ctx, {"build_id": "bld_missing"})
