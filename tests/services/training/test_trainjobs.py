"""Training jobs end to end: Synthex served on a real port, Model Training's jobs run for real.

Synthex runs in this test's loop (uvicorn on 127.0.0.1) because a training job's worker
subprocess reads the dataset version over HTTP, acting for the submitter with the internal
secret and on-behalf-of headers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from conftest import FAST_POLICY
from fastapi import FastAPI
from sklearn.datasets import load_iris

from inwire.kit.auth.internal import INTERNAL_HEADER, on_behalf_headers
from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error
from inwire.kit.testing.serving import serving
from inwire.services.synthex.app import create_app as create_synthex
from inwire.services.synthex.settings import SynthexSettings
from inwire.services.training.app import create_app
from inwire.services.training.settings import TrainingSettings

Auth = Callable[..., dict[str, str]]

pytestmark = pytest.mark.slow


def _iris_csv() -> bytes:
    frame = load_iris(as_frame=True).frame
    names = ["setosa", "versicolor", "virginica"]
    frame["species"] = [names[i] for i in frame.pop("target")]
    frame["shop"] = ["north", "south", "east"] * 50
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


@pytest.fixture
async def synthex(inwire_settings: dict[str, Any]) -> AsyncIterator[str]:
    """Synthex on its own SQLite database, served on a free port: its URL."""
    settings = SynthexSettings(
        **{**inwire_settings, "database_url": "", "database_schema": ""}, jobs_concurrency=1
    )
    async with serving(create_synthex(settings, job_policy=FAST_POLICY)) as url:
        yield url


@pytest.fixture
def training_settings(inwire_settings: dict[str, Any], synthex: str) -> TrainingSettings:
    """Model Training reading datasets from the served Synthex."""
    return TrainingSettings(**inwire_settings, jobs_concurrency=2, synthex_url=synthex)


async def _dataset(synthex: str, headers: dict[str, str], name: str = "iris.csv") -> str:
    """A Synthex dataset of the iris rows (its import job awaited); its id."""
    async with httpx.AsyncClient(base_url=synthex, timeout=30) as s:
        r = await s.post("/api/v1/datasets", files={"file": (name, _iris_csv())}, headers=headers)
        assert r.status_code in (201, 202), r.text
        started = r.json()["data"]
        deadline = time.monotonic() + 90
        while True:
            job = (await s.get(f"/api/v1/jobs/{started['job']['id']}", headers=headers)).json()
            if job["data"]["status"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.1)
        assert job["data"]["status"] == "succeeded", job
        return str(started["dataset"]["id"])


async def _experiment(client: httpx.AsyncClient, auth: Auth, org: str = "a") -> str:
    r = await client.post(
        "/api/v1/experiments", json={"name": f"iris-{time.monotonic_ns()}"}, headers=auth(org=org)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


def _builtin(experiment: str, dataset: str, **trainer: Any) -> dict[str, Any]:
    return {
        "experiment_id": experiment,
        "run_name": "iris-xgb",
        "dataset": {"id": dataset},
        "trainer": {
            "framework": "xgboost",
            "task": "classification",
            "target": "species",
            "params": {"n_estimators": 12, "max_depth": 3},
            **trainer,
        },
    }


async def _wait(client: httpx.AsyncClient, auth: Auth, job_id: str, wait: float = 120) -> Any:
    deadline = time.monotonic() + wait
    while True:
        r = await client.get(f"/api/v1/training-jobs/{job_id}", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        job = r.json()["data"]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            logs = await client.get(f"/api/v1/training-jobs/{job_id}/logs", headers=auth())
            raise AssertionError(f"timed out: {job}\n{logs.text}")
        await asyncio.sleep(0.1)


async def test_builtin_job_trains_logs_live_and_registers_in_modelops(
    client: httpx.AsyncClient,
    auth: Auth,
    synthex: str,
    inwire_settings: dict[str, Any],
) -> None:
    dataset = await _dataset(synthex, auth("member"))
    experiment = await _experiment(client, auth)
    r = await client.post(
        "/api/v1/training-jobs", json=_builtin(experiment, dataset), headers=auth("member")
    )
    assert r.status_code == 202, r.text
    submitted = r.json()["data"]
    assert submitted["status"] == "queued"
    assert submitted["dataset"]["dataset_id"] == dataset
    assert submitted["dataset"]["dataset_version"] == 1
    run_id = submitted["run_id"]

    # Follow the log while it runs: NDJSON lines, then the final status.
    async with client.stream(
        "GET", f"/api/v1/training-jobs/{submitted['id']}/logs?follow=true", headers=auth("viewer")
    ) as stream:
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in stream.aiter_lines() if line]
    assert lines[-1]["status"] == "succeeded", lines
    text = "\n".join(str(x.get("line")) for x in lines)
    assert "reading dataset" in text
    assert "logged the model under model/" in text

    job = await _wait(client, auth, submitted["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["model_uri"] == f"runs:/{run_id}/model"
    assert set(job["result"]["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert job["result"]["metrics"]["accuracy"] > 0.8

    r = await client.get(f"/api/v1/runs/{run_id}", headers=auth("viewer"))
    run = r.json()["data"]
    assert run["status"] == "finished"
    assert run["source"]["dataset_version_id"] == submitted["dataset"]["dataset_version_id"]
    assert run["source"]["entry_point"] == "builtin:xgboost"
    assert run["source"]["user"] == identity("member", "a").user_id
    assert run["params"]["n_estimators"] == "12"
    assert run["params"]["target"] == "species"
    assert run["tags"]["inwire.training_job"] == submitted["id"]
    r = await client.get(
        f"/api/v1/runs/{run_id}/metrics/history?key=log_loss", headers=auth("viewer")
    )
    assert r.status_code == 200, r.text
    steps = [p["step"] for p in r.json()["data"]["points"]]
    assert steps == list(range(12)), steps  # one value per boosting round
    r = await client.get(f"/api/v1/runs/{run_id}/artifacts?path=model", headers=auth("viewer"))
    names = {f["path"] for f in r.json()["data"]}
    assert {"model/MLmodel", "model/model.pkl", "model/requirements.txt"} <= names

    # The logged model registers in ModelOps like an mlflow log_model.
    from inwire.services.modelops.app import create_app as create_modelops
    from inwire.services.modelops.settings import ModelOpsSettings

    modelops = create_modelops(
        ModelOpsSettings(**{**inwire_settings, "database_url": "", "database_schema": ""})
    )
    async with modelops.router.lifespan_context(modelops):
        transport = httpx.ASGITransport(app=modelops)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as mo:
            r = await mo.post("/api/v1/models", json={"name": "iris"}, headers=auth("member"))
            assert r.status_code == 201, r.text
            r = await mo.post(
                "/api/v1/models/iris/versions",
                json={"source": {"run_id": run_id, "artifact_path": "model"}},
                headers=auth("member"),
            )
            assert r.status_code == 201, r.text
            version = r.json()["data"]
            assert (version["status"], version["flavor"]) == ("READY", "xgboost")
            inputs = {c["name"] for c in version["signature"]["inputs"]}
            assert {"sepal_length", "shop"} <= inputs


async def test_submission_is_checked_against_the_dataset_and_the_caller(
    client: httpx.AsyncClient, auth: Auth, synthex: str, training_settings: TrainingSettings
) -> None:
    dataset = await _dataset(synthex, auth("member"))
    experiment = await _experiment(client, auth)
    post = "/api/v1/training-jobs"

    r = await client.post(post, json=_builtin(experiment, dataset, target="nope"), headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    assert r.json()["error"]["details"][0]["field"] == "trainer.target"
    bad = _builtin(experiment, dataset, task="regression")
    r = await client.post(post, json=bad, headers=auth())
    assert_error(r, 400)
    assert r.json()["error"]["details"][0]["field"] == "trainer.target"
    bad = _builtin(experiment, dataset, framework="sklearn", estimator="nope")
    r = await client.post(post, json=bad, headers=auth())
    assert r.json()["error"]["details"][0]["field"] == "trainer.estimator"
    r = await client.post(post, json={**_builtin(experiment, dataset), "x": 1}, headers=auth())
    assert_error(r, 400)
    bad = {**_builtin(experiment, dataset), "dataset": {"id": dataset, "version": 7}}
    r = await client.post(post, json=bad, headers=auth())
    assert_error(r, 404)
    r = await client.post(post, json=_builtin("exp_nope", dataset), headers=auth())
    assert_error(r, 404)

    # Wrong role, other organization (its experiment, its dataset, its jobs).
    r = await client.post(post, json=_builtin(experiment, dataset), headers=auth("viewer"))
    assert_error(r, 403)
    other_experiment = await _experiment(client, auth, org="b")
    other = _builtin(other_experiment, dataset)
    r = await client.post(post, json=other, headers=auth(org="b"))
    assert_error(r, 404)
    r = await client.post(post, json=_builtin(experiment, dataset), headers=auth(org="b"))
    assert_error(r, 404)

    # A valid one (twice with one Idempotency-Key: one job, one run), then read elsewhere.
    keyed = {**auth("member"), "Idempotency-Key": "iris-1"}
    r = await client.post(post, json=_builtin(experiment, dataset), headers=keyed)
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["id"]
    again = await client.post(post, json=_builtin(experiment, dataset), headers=keyed)
    assert (again.json()["data"]["id"], again.json()["data"]["run_id"]) == (
        job_id,
        r.json()["data"]["run_id"],
    )
    changed = _builtin(experiment, dataset, target="shop")
    assert_error(await client.post(post, json=changed, headers=keyed), 409)
    r = await client.get(f"/api/v1/runs?experiment_id={experiment}", headers=auth())
    assert r.json()["meta"]["total"] == 1
    r = await client.get(f"/api/v1/training-jobs/{job_id}", headers=auth(org="b"))
    assert_error(r, 404)
    r = await client.get(f"/api/v1/training-jobs/{job_id}/logs", headers=auth(org="b"))
    assert_error(r, 404)
    r = await client.post(f"/api/v1/training-jobs/{job_id}/cancel", headers=auth("viewer"))
    assert_error(r, 403)
    r = await client.get("/api/v1/training-jobs?per_page=1", headers=auth("viewer"))
    assert r.json()["meta"]["total"] == 1
    assert [j["id"] for j in r.json()["data"]] == [job_id]
    r = await client.get("/api/v1/training-jobs", headers=auth(org="b"))
    assert r.json()["data"] == []
    r = await client.get("/api/v1/training-jobs?status=bogus", headers=auth())
    assert_error(r, 400)
    assert (await _wait(client, auth, job_id))["status"] == "succeeded"

    # The on-behalf mechanism at Synthex: only with the right internal secret.
    member = identity("member", "a")
    headers = on_behalf_headers(training_settings, member.org_id, member.user_id, "member")
    path = f"/api/v1/datasets/{dataset}"
    async with httpx.AsyncClient(base_url=synthex) as s:
        assert (await s.get(path, headers=headers)).status_code == 200
        assert_error(await s.get(path, headers={**headers, INTERNAL_HEADER: "wrong"}), 403)
        missing = {k: v for k, v in headers.items() if k != INTERNAL_HEADER}
        assert_error(await s.get(path, headers=missing), 403)
        assert_error(await s.get(path, headers={**missing, **auth()}), 403)
        b = identity("member", "b")
        other_org = on_behalf_headers(training_settings, b.org_id, b.user_id, "member")
        assert_error(await s.get(path, headers=other_org), 404)
        bogus_role = {**headers, "X-Inwire-On-Behalf-Of-Role": "emperor"}
        assert_error(await s.get(path, headers=bogus_role), 403)
        viewer = on_behalf_headers(training_settings, member.org_id, member.user_id, "viewer")
        assert_error(await s.delete(path, headers=viewer), 403)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


SCRIPT = b"""
import json, os, sys, urllib.request

params = json.loads(os.environ["INWIRE_PARAMS"])
print("training with", params["alpha"], "and", sys.argv[1:])
assert "INWIRE_INTERNAL_SECRET" not in os.environ and "DATABASE" not in str(os.environ)
url = os.environ["INWIRE_TRAINING_URL"] + "/api/v1/runs/" + os.environ["INWIRE_RUN_ID"]
for step in range(3):
    body = json.dumps({"metrics": [{"key": "loss", "value": 1.0 / (step + 1), "step": step}]})
    request = urllib.request.Request(
        url + "/metrics", data=body.encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["INWIRE_TOKEN"],
                 "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).read()
    print("step", step, flush=True)
if params.get("fail"):
    raise SystemExit("boom: the data is wrong")
if "INWIRE_DATASET_PATH" in os.environ:
    import polars
    print("rows", polars.read_parquet(os.environ["INWIRE_DATASET_PATH"]).height)
import inwire  # the SDK, pointed at Model Training with the run token from INWIRE_TOKEN

client = inwire.Client(services={"training": os.environ["INWIRE_TRAINING_URL"]})
with inwire.start_run(
    client=client, experiment_id=os.environ["INWIRE_EXPERIMENT_ID"], run_name="from-sdk"
):
    inwire.log_metric("sdk_metric", 1.5)
"""


async def test_script_jobs_run_a_file_or_a_package_and_fail_with_the_scripts_error(
    inwire_settings: dict[str, Any], auth: Auth, synthex: str
) -> None:
    port = _free_port()
    settings = TrainingSettings(
        **inwire_settings,
        synthex_url=synthex,
        port=port,
        tracking_url=f"http://127.0.0.1:{port}",
    )
    app = create_app(settings, job_policy=FAST_POLICY)
    async with serving(app, port) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        experiment = await _experiment(client, auth)

        async def submit(filename: str, content: bytes, **spec: Any) -> httpx.Response:
            body = {"experiment_id": experiment, "parameters": {"alpha": 0.5}, **spec}
            return await client.post(
                "/api/v1/training-jobs/scripts",
                files={"file": (filename, content)},
                data={"spec": json.dumps(body)},
                headers=auth("member"),
            )

        dataset = await _dataset(synthex, auth("member"))
        r = await submit("train.py", SCRIPT, dataset={"id": dataset})
        assert r.status_code == 202, r.text
        job = await _wait(client, auth, r.json()["data"]["id"])
        logs = await client.get(f"/api/v1/training-jobs/{job['id']}/logs", headers=auth())
        text = "\n".join(line["line"] for line in logs.json()["data"])
        assert job["status"] == "succeeded", text
        assert "training with 0.5 and ['--alpha', '0.5']" in text
        assert "step 2" in text
        assert "rows 150" in text
        run_id = job["run_id"]
        run = (await client.get(f"/api/v1/runs/{run_id}", headers=auth())).json()["data"]
        assert run["status"] == "finished"
        assert run["source"]["entry_point"] == "train.py"
        r = await client.get(f"/api/v1/runs/{run_id}/metrics/history?key=loss", headers=auth())
        assert [p["step"] for p in r.json()["data"]["points"]] == [0, 1, 2]
        r = await client.get(f"/api/v1/runs?experiment_id={experiment}", headers=auth())
        sdk_run = next(x for x in r.json()["data"] if x["name"] == "from-sdk")
        assert sdk_run["created_by"] == identity("member", "a").user_id

        # A package with an entry point; the script fails: job failed, run failed.
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as z:
            z.writestr("pkg/train.py", SCRIPT)
        r = await submit(
            "pkg.zip",
            package.getvalue(),
            entry_point="pkg/train.py",
            parameters={"alpha": 1, "fail": True},
        )
        assert r.status_code == 202, r.text
        job = await _wait(client, auth, r.json()["data"]["id"])
        assert job["status"] == "failed"
        assert "boom: the data is wrong" in job["error"]
        logs = await client.get(f"/api/v1/training-jobs/{job['id']}/logs", headers=auth())
        assert "boom: the data is wrong" in logs.text
        run = (await client.get(f"/api/v1/runs/{job['run_id']}", headers=auth())).json()
        assert run["data"]["status"] == "failed"

        # Invalid uploads and callers.
        r = await submit("notes.txt", b"hello")
        assert_error(r, 400)
        r = await submit("pkg.zip", package.getvalue())
        assert r.json()["error"]["details"][0]["field"] == "spec.entry_point"
        r = await submit("pkg.zip", package.getvalue(), entry_point="nope.py")
        assert_error(r, 400)
        r = await submit("pkg.zip", b"not a zip", entry_point="pkg/train.py")
        assert_error(r, 400)
        r = await client.post(
            "/api/v1/training-jobs/scripts",
            files={"file": ("train.py", SCRIPT)},
            data={"spec": "{}"},
            headers=auth("member"),
        )
        assert_error(r, 400)
        r = await client.post(
            "/api/v1/training-jobs/scripts",
            files={"file": ("train.py", SCRIPT)},
            data={"spec": json.dumps({"experiment_id": experiment})},
            headers=auth("viewer"),
        )
        assert_error(r, 403)
        # A run token is no credential anywhere else, nor once tampered with.
        r = await client.get("/api/v1/experiments", headers={"Authorization": "Bearer iwr.x.y"})
        assert_error(r, 401)


async def test_worker_killed_mid_job_fails_the_job_and_leaves_no_complete_model(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, synthex: str
) -> None:
    dataset = await _dataset(synthex, auth("member"))
    experiment = await _experiment(client, auth)
    body = _builtin(
        experiment,
        dataset,
        framework="sklearn",
        estimator="gradient_boosting",
        params={"n_estimators": 4000},
    )
    r = await client.post(
        "/api/v1/training-jobs", json={**body, "max_attempts": 1}, headers=auth("member")
    )
    assert r.status_code == 202, r.text
    job_id, run_id = r.json()["data"]["id"], r.json()["data"]["run_id"]
    deadline = time.monotonic() + 90
    while True:  # until the first stage's metrics are logged
        r = await client.get(f"/api/v1/runs/{run_id}", headers=auth())
        if r.json()["data"]["metrics"]:
            break
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.05)
    pid = app.state.jobs.executor.worker_pids()[job_id]
    os.kill(pid, signal.SIGKILL)
    job = await _wait(client, auth, job_id)
    assert job["status"] == "failed"
    r = await client.get(f"/api/v1/runs/{run_id}", headers=auth())
    assert r.json()["data"]["status"] == "failed"
    r = await client.get(f"/api/v1/runs/{run_id}/artifacts?path=model", headers=auth())
    assert "model/MLmodel" not in {f["path"] for f in r.json().get("data", [])}


async def test_cancelling_a_running_job_kills_its_run(
    client: httpx.AsyncClient, auth: Auth, synthex: str
) -> None:
    dataset = await _dataset(synthex, auth("member"))
    experiment = await _experiment(client, auth)
    body = _builtin(experiment, dataset, params={"n_estimators": 100000, "max_depth": 2})
    r = await client.post("/api/v1/training-jobs", json=body, headers=auth("member"))
    job_id, run_id = r.json()["data"]["id"], r.json()["data"]["run_id"]
    deadline = time.monotonic() + 90
    while True:  # until boosting rounds are being logged
        r = await client.get(f"/api/v1/runs/{run_id}", headers=auth())
        if r.json()["data"]["metrics"]:
            break
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.05)
    r = await client.post(f"/api/v1/training-jobs/{job_id}/cancel", headers=auth("member"))
    assert r.status_code == 200, r.text
    job = await _wait(client, auth, job_id)
    assert job["status"] == "cancelled"
    r = await client.get(f"/api/v1/runs/{run_id}", headers=auth())
    assert r.json()["data"]["status"] == "killed"
    r = await client.post(f"/api/v1/training-jobs/{job_id}/cancel", headers=auth("member"))
    assert r.json()["data"]["status"] == "cancelled"


async def test_worker_killed_mid_job_is_retried_on_the_same_run(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, synthex: str
) -> None:
    dataset = await _dataset(synthex, auth("member"))
    experiment = await _experiment(client, auth)
    body = _builtin(experiment, dataset, params={"n_estimators": 100000, "max_depth": 2})
    r = await client.post(
        "/api/v1/training-jobs", json={**body, "max_attempts": 2}, headers=auth("member")
    )
    job_id, run_id = r.json()["data"]["id"], r.json()["data"]["run_id"]

    async def until(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while True:
            run: dict[str, Any] = (
                await client.get(f"/api/v1/runs/{run_id}", headers=auth())
            ).json()["data"]
            if check(run):
                return run
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)

    await until(lambda run: bool(run["metrics"]))
    os.kill(app.state.jobs.executor.worker_pids()[job_id], signal.SIGKILL)
    run = await until(lambda run: run["tags"].get("inwire.job_attempt") == "2")
    assert run["status"] == "running"
    job = (await client.get(f"/api/v1/training-jobs/{job_id}", headers=auth())).json()["data"]
    assert (job["status"], job["attempts"]) == ("running", 2)
    r = await client.get(f"/api/v1/runs/{run_id}/artifacts?path=model", headers=auth())
    assert "model/MLmodel" not in {f["path"] for f in r.json().get("data", [])}
    await client.post(f"/api/v1/training-jobs/{job_id}/cancel", headers=auth("member"))
    assert (await _wait(client, auth, job_id))["status"] == "cancelled"
