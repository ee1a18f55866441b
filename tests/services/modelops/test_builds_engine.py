"""Builds with a container builder: the Docker Engine API (a fake one: tests only), the
Dockerfile checks and the pinned requirements."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from builds_helpers import FakeEngine, fake_docker_engine, sklearn_version, wait_build
from modelops_helpers import Auth

from inwire.contracts.core import ResolvedIntegration
from inwire.kit.jobs import JobContext
from inwire.services.modelops.builds import jobs as build_jobs
from inwire.services.modelops.builds.bundle import (
    dockerfile,
    pin,
    requirements_for,
    server_command,
    validate_dockerfile,
    write_tar_gz,
)
from inwire.services.modelops.builds.engine import BuilderError, DockerEngine
from inwire.services.modelops.builds.models import Build
from inwire.services.modelops.settings import ModelOpsSettings


@pytest.fixture
def engine() -> Iterator[tuple[str, FakeEngine]]:
    with fake_docker_engine() as found:
        yield found


@pytest.fixture
def modelops_settings(
    inwire_settings: dict[str, Any], engine: tuple[str, FakeEngine]
) -> ModelOpsSettings:
    """ModelOps with the fake Docker Engine as its container builder."""
    return ModelOpsSettings(**inwire_settings, jobs_concurrency=1, build_docker_url=engine[0])


def _context(tmp_path: Path) -> Path:
    folder = tmp_path / "ctx"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    target = tmp_path / "context.tar.gz"
    write_tar_gz([(folder, "")], target)
    return target


@pytest.mark.slow
async def test_the_build_sends_the_context_to_the_engine(
    client: httpx.AsyncClient, auth: Auth, engine: tuple[str, FakeEngine]
) -> None:
    await sklearn_version(client, auth, "Churn Model")
    r = await client.post(
        "/api/v1/builds", json={"model": "Churn Model", "version": 1}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    build = await wait_build(client, auth, r.json()["data"]["id"])
    assert build["status"] == "succeeded", build
    assert (build["image"], build["pushed"]) == ("inwire/churn-model:v1", False)
    assert "not pushed" in build["message"]
    (sent,) = engine[1].builds
    assert sent["params"]["t"] == "inwire%2Fchurn-model%3Av1"
    assert "Dockerfile" in sent["names"]
    assert "bundle/model/MLmodel" in sent["names"]
    logs = await client.get(f"/api/v1/builds/{build['id']}/logs", headers=auth())
    assert "Step 1/9 : FROM python:3.11-slim" in [line["line"] for line in logs.json()["data"]]


@pytest.mark.slow
async def test_a_failing_image_build_fails_the_build(
    client: httpx.AsyncClient, auth: Auth, engine: tuple[str, FakeEngine]
) -> None:
    engine[1].fail_build = True
    await sklearn_version(client, auth)
    r = await client.post("/api/v1/builds", json={"model": "churn", "version": 1}, headers=auth())
    build = await wait_build(client, auth, r.json()["data"]["id"])
    assert build["status"] == "failed"
    assert "pip failed" in build["error"]
    assert build["image"] is None
    failed = await client.get("/api/v1/builds", params={"status": "failed"}, headers=auth())
    assert failed.json()["meta"]["total"] == 1


async def test_engine_build_and_push(tmp_path: Path, engine: tuple[str, FakeEngine]) -> None:
    lines: list[str] = []
    docker = DockerEngine(engine[0], lines.append)
    try:
        image_id = await docker.build(_context(tmp_path), "reg.local:5000/team/m:v1")
        digest = await docker.push("reg.local:5000/team/m:v1", "e30=")
    finally:
        await docker.close()
    assert image_id == "sha256:" + "ab" * 32
    assert digest == "sha256:" + "cd" * 32
    assert engine[1].pushes[0]["path"] == "/v1.41/images/reg.local:5000/team/m/push"
    assert engine[1].pushes[0]["params"] == {"tag": "v1"}
    assert "Successfully built abab" in lines
    assert "abc: Preparing" in lines


async def test_engine_errors(tmp_path: Path) -> None:
    with pytest.raises(BuilderError, match="Unsupported"):
        DockerEngine("ftp://x", print)
    context = _context(tmp_path)
    docker = DockerEngine("http://127.0.0.1:9", print, timeout=2)
    try:
        with pytest.raises(BuilderError, match="unreachable"):
            await docker.build(context, "m:v1")
    finally:
        await docker.close()
    unix = DockerEngine(f"unix://{tmp_path / 'no.sock'}", print, timeout=2)
    try:
        with pytest.raises(BuilderError, match="unreachable"):
            await unix.build(context, "m:v1")
    finally:
        await unix.close()


async def test_push_to_a_registry_integration(
    tmp_path: Path, engine: tuple[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def registry(ctx: Any, settings: Any, integration_id: str) -> ResolvedIntegration:
        assert integration_id == "int_1"
        return ResolvedIntegration(
            id="int_1",
            organization_id="org_a",
            name="harbor",
            kind="container_registry",
            config={"registry": "reg.local:5000", "namespace": "team", "scheme": "http"},
            credentials={"username": "robot", "password": "s3cret"},
        )

    monkeypatch.setattr(build_jobs, "_registry", registry)
    ctx = JobContext(
        job_id="job_1",
        organization_id="org_a",
        job_type="modelops.build",
        attempt=1,
        max_attempts=1,
        created_by="usr_1",
    )
    settings = ModelOpsSettings(build_docker_url=engine[0])
    row = Build(model_name="churn", version=3, registry_integration="int_1")
    image, digest, pushed, message = await build_jobs._image(ctx, settings, row, _context(tmp_path))
    assert (image, pushed) == ("reg.local:5000/team/churn:v3", True)
    assert digest == "sha256:" + "cd" * 32
    assert message == "Image reg.local:5000/team/churn:v3 built and pushed"
    (push,) = engine[1].pushes
    assert push["auth"] == {
        "username": "robot",
        "password": "s3cret",
        "serveraddress": "reg.local:5000",
    }
    _, lines = ctx.take()
    assert not any("s3cret" in line for _, _, line in lines)


def test_generated_dockerfile_is_valid_and_bad_ones_are_caught() -> None:
    command = server_command("model", signature=True)
    text = dockerfile("python:3.11-slim", command)
    files = ["Dockerfile", "bundle/requirements.txt", "bundle/model/MLmodel"]
    assert validate_dockerfile(text, files) == []
    assert validate_dockerfile(text, ["Dockerfile"]) == [
        "line 5: COPY source 'bundle/requirements.txt' is not in the context",
        "line 7: COPY source 'bundle/' is not in the context",
    ]
    bad = "RUN echo hi\nFROM\nFROB x\nCMD [python\nEXPOSE 99999\nCOPY only\n"
    assert validate_dockerfile(bad, []) == [
        "line 1: RUN before FROM",
        "line 2: FROM names no image",
        "line 3: unknown instruction 'FROB'",
        "line 4: CMD exec form must be a JSON array of strings",
        "line 5: EXPOSE '99999' is not a port",
        "line 6: COPY needs a source and a destination",
    ]
    assert validate_dockerfile("", []) == ["the Dockerfile is empty"]
    continued = "ARG BASE=python\nFROM $BASE \\\n  AS app\nCOPY --from=app /a /b\n"
    assert validate_dockerfile(continued, []) == []


def test_requirements_are_pinned_to_the_installed_versions() -> None:
    lines, notes = pin(["numpy", "pandas>=2", "scikit-learn[alldeps]", "no-such-pkg-xyz", "-e ."])
    assert lines[0] == f"numpy=={metadata.version('numpy')}"
    assert lines[1] == "pandas>=2"
    assert lines[2] == f"scikit-learn[alldeps]=={metadata.version('scikit-learn')}"
    assert lines[3:] == ["no-such-pkg-xyz", "-e ."]
    assert notes == [
        "no-such-pkg-xyz is not installed here: left unpinned",
        "option line kept as is: -e .",
    ]
    xgb = requirements_for("xgboost", None)
    assert xgb.source == "flavor"
    assert xgb.lines[0].startswith("xgboost")
    assert xgb.lines[-1] == f"inwire=={metadata.version('inwire')}"
    unknown = requirements_for(None, None)
    assert [line.split("==")[0] for line in unknown.lines] == ["numpy", "pandas", "inwire"]


def test_the_server_requirement_can_be_given() -> None:
    wheel = "inwire @ https://wheels.example.com/inwire-0.1.0-py3-none-any.whl"
    reqs = requirements_for("sklearn", "scikit-learn==1.5.2\n", server=wheel)
    assert reqs.lines[-1] == wheel
    assert not any(line.startswith("inwire==") for line in reqs.lines)
    own = requirements_for("sklearn", "inwire==0.0.9\n", server=wheel)
    assert own.lines[0] == "inwire==0.0.9"
    assert wheel not in own.lines
