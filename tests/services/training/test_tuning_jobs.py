"""Tuning jobs end to end: a real job in a worker process on a Synthex dataset version,
with pruning; every sampler accepted; list, filters, pages, cancel; another organization."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import WaitJob
from fastapi import FastAPI
from helpers import Auth, experiment
from test_trainjobs import _dataset, synthex, training_settings  # noqa: F401 - fixtures

from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.slow

WaitTuning = Callable[[str], Awaitable[dict[str, Any]]]


def search_body(experiment_id: str, dataset_id: str, **changes: Any) -> dict[str, Any]:
    """LightGBM on iris: the learning rate on a log scale and the leaves, by log loss."""
    request: dict[str, Any] = {
        "experiment_id": experiment_id,
        "name": "iris search",
        "dataset": {"id": dataset_id},
        "trainer": {
            "framework": "lightgbm",
            "task": "classification",
            "target": "species",
            "metrics": ["log_loss", "accuracy"],
            "params": {"n_estimators": 10, "min_child_samples": 5},
        },
        "space": {
            "learning_rate": {"type": "float", "low": 0.0005, "high": 0.5, "log": True},
            "num_leaves": {"type": "int", "low": 4, "high": 16},
        },
        "objective": {"metric": "log_loss", "direction": "minimize"},
        "budget": {"n_trials": 8},
        "sampler": {"type": "tpe", "n_startup_trials": 4},
        "pruner": {"type": "median", "n_startup_trials": 3},
        "seed": 3,
    }
    request.update(changes)
    return request


@pytest.fixture
async def dataset(synthex: str, auth: Auth) -> str:  # noqa: F811 - the imported fixture
    """An iris dataset in Synthex: its id."""
    return await _dataset(synthex, auth("member"))


@pytest.fixture
def wait_tuning(client: httpx.AsyncClient, auth: Auth, wait_job: WaitJob) -> WaitTuning:
    """``await wait_tuning(tuning_id)`` -> the tuning job once its job is final."""

    async def wait(tuning_id: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/tuning-jobs/{tuning_id}", headers=auth("viewer"))
        await wait_job(r.json()["data"]["job_id"], wait=180)
        r = await client.get(f"/api/v1/tuning-jobs/{tuning_id}", headers=auth("viewer"))
        data: dict[str, Any] = r.json()["data"]
        return data

    return wait


async def test_tuning_job_end_to_end_with_pruning(
    client: httpx.AsyncClient,
    auth: Auth,
    dataset: str,
    wait_tuning: WaitTuning,
) -> None:
    exp = await experiment(client, auth)
    r = await client.post(
        "/api/v1/tuning-jobs", json=search_body(exp, dataset), headers=auth("member")
    )
    assert r.status_code == 202, r.text
    submitted = r.json()["data"]
    assert submitted["status"] == "queued"
    assert submitted["trials"] == {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    done = await wait_tuning(submitted["id"])
    assert done["status"] == "succeeded", done
    assert done["trials"]["complete"] + done["trials"]["pruned"] == 8
    assert done["trials"]["pruned"] >= 1, done
    assert done["progress"] == 1.0
    best = done["best"]
    assert set(best["params"]) == {"learning_rate", "num_leaves"}
    assert best["value"] < 0.5

    viewer = auth("viewer")
    job = (await client.get(f"/api/v1/jobs/{done['job_id']}", headers=viewer)).json()["data"]
    assert job["result"]["best_run_id"] == best["run_id"]
    page = (
        await client.get(
            f"/api/v1/tuning-jobs/{done['id']}/trials?per_page=3&order=desc", headers=viewer
        )
    ).json()
    assert page["meta"] == {"page": 1, "per_page": 3, "total": 8}
    assert [t["number"] for t in page["data"]] == [7, 6, 5]
    pruned = (
        await client.get(f"/api/v1/tuning-jobs/{done['id']}/trials?state=pruned", headers=viewer)
    ).json()
    assert pruned["meta"]["total"] == done["trials"]["pruned"]
    best_run = (await client.get(f"/api/v1/runs/{best['run_id']}", headers=viewer)).json()["data"]
    assert best_run["parent_run_id"] == done["run_id"]
    assert best_run["status"] == "finished"
    assert best_run["tags"]["inwire.trial_state"] == "complete"
    assert best_run["source"]["dataset_version_id"] is not None
    study_run = (await client.get(f"/api/v1/runs/{done['run_id']}", headers=viewer)).json()
    assert study_run["data"]["status"] == "finished"
    assert study_run["data"]["params"]["tuning.sampler"] == "tpe"
    importances = (
        await client.get(f"/api/v1/tuning-jobs/{done['id']}/importances", headers=viewer)
    ).json()["data"]
    assert importances["evaluator"] == "fanova"
    assert set(importances["importances"]) == {"learning_rate", "num_leaves"}
    assert sum(importances["importances"].values()) == pytest.approx(1.0)
    assert importances["importances"] == pytest.approx(done["importances"])

    # Another organization sees none of it.
    other = auth(org="b")
    for path in ("", "/trials", "/importances"):
        assert_error(
            await client.get(f"/api/v1/tuning-jobs/{done['id']}{path}", headers=other), 404
        )
    assert_error(await client.post(f"/api/v1/tuning-jobs/{done['id']}/cancel", headers=other), 404)
    listed = (await client.get("/api/v1/tuning-jobs", headers=auth("viewer", org="b"))).json()
    assert listed["meta"]["total"] == 0
    # Cancelling a finished search is a conflict.
    assert_error(await client.post(f"/api/v1/tuning-jobs/{done['id']}/cancel", headers=auth()), 409)


async def test_every_sampler_is_accepted_listed_and_cancelled(
    client: httpx.AsyncClient,
    auth: Auth,
    dataset: str,
    wait_tuning: WaitTuning,
) -> None:
    exp = await experiment(client, auth)
    other_exp = await experiment(client, auth, "other")
    grid_space = {
        "learning_rate": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
        "num_leaves": {"type": "categorical", "choices": [4, 8]},
    }
    ids = []
    for sampler in ("tpe", "random", "grid", "cmaes"):
        body = search_body(
            exp if sampler != "cmaes" else other_exp,
            dataset,
            sampler={"type": sampler},
            space=grid_space if sampler == "grid" else search_body("", "")["space"],
            budget={"n_trials": 100, "timeout_seconds": 600},
        )
        r = await client.post("/api/v1/tuning-jobs", json=body, headers=auth("member"))
        assert r.status_code == 202, r.text
        assert r.json()["data"]["sampler"] == sampler
        ids.append(r.json()["data"]["id"])
        cancelled = await client.post(f"/api/v1/tuning-jobs/{ids[-1]}/cancel", headers=auth())
        assert cancelled.status_code == 200, cancelled.text
    for tuning_id in ids:
        assert (await wait_tuning(tuning_id))["status"] == "cancelled"
    viewer = auth("viewer")
    everything = (await client.get("/api/v1/tuning-jobs?per_page=3", headers=viewer)).json()
    assert everything["meta"]["total"] == 4
    assert [t["id"] for t in everything["data"]] == ids[::-1][:3]
    second = (await client.get("/api/v1/tuning-jobs?per_page=3&page=2", headers=viewer)).json()
    assert [t["id"] for t in second["data"]] == [ids[0]]
    by_exp = await client.get(f"/api/v1/tuning-jobs?experiment_id={other_exp}", headers=viewer)
    assert [t["sampler"] for t in by_exp.json()["data"]] == ["cmaes"]
    by_status = await client.get("/api/v1/tuning-jobs?status=succeeded", headers=viewer)
    assert by_status.json()["meta"]["total"] == 0
    # The dataset is checked at submission: a missing one is a 404 naming it.
    r = await client.post(
        "/api/v1/tuning-jobs", json=search_body(exp, "ds_missing"), headers=auth("member")
    )
    assert_error(r, 404)
    bad_target = search_body(exp, dataset)
    bad_target["trainer"]["target"] = "nope"
    r = await client.post("/api/v1/tuning-jobs", json=bad_target, headers=auth("member"))
    assert_error(r, 400)


async def test_cancelling_a_running_search_stops_it_and_closes_its_runs(
    client: httpx.AsyncClient,
    auth: Auth,
    dataset: str,
    wait_tuning: WaitTuning,
) -> None:
    exp = await experiment(client, auth)
    body = search_body(
        exp, dataset, budget={"n_trials": 1000}, pruner={"type": "none"}, n_parallel=2
    )
    r = await client.post("/api/v1/tuning-jobs", json=body, headers=auth("member"))
    assert r.status_code == 202, r.text
    tuning_id = r.json()["data"]["id"]
    deadline = time.monotonic() + 120
    while True:
        got = (await client.get(f"/api/v1/tuning-jobs/{tuning_id}", headers=auth())).json()
        if got["data"]["trials"]["complete"] >= 2:
            break
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.2)
    r = await client.post(f"/api/v1/tuning-jobs/{tuning_id}/cancel", headers=auth("member"))
    assert r.status_code == 200, r.text
    done = await wait_tuning(tuning_id)
    assert done["status"] == "cancelled"
    assert done["trials"]["running"] == 0
    assert done["best"] is not None  # what finished before the cancel stays
    viewer = auth("viewer")
    study_run = (await client.get(f"/api/v1/runs/{done['run_id']}", headers=viewer)).json()
    assert study_run["data"]["status"] == "killed"
    kids = await client.get(
        f"/api/v1/runs?parent_run_id={done['run_id']}&per_page=100", headers=viewer
    )
    assert all(k["status"] != "running" for k in kids.json()["data"])


async def test_worker_killed_mid_search_is_retried_and_resumes_the_study(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Auth,
    dataset: str,
    wait_tuning: WaitTuning,
) -> None:
    exp = await experiment(client, auth)
    body = search_body(exp, dataset, budget={"n_trials": 5}, pruner={"type": "none"})
    body["trainer"]["params"]["n_estimators"] = 150
    r = await client.post("/api/v1/tuning-jobs", json=body, headers=auth("member"))
    assert r.status_code == 202, r.text
    tuning_id, job_id = r.json()["data"]["id"], r.json()["data"]["job_id"]
    deadline = time.monotonic() + 120
    while True:  # kill the worker while trial 2 or later runs
        got = (await client.get(f"/api/v1/tuning-jobs/{tuning_id}", headers=auth())).json()
        if got["data"]["trials"]["complete"] >= 2 and got["data"]["trials"]["running"]:
            break
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)
    os.kill(app.state.jobs.executor.worker_pids()[job_id], signal.SIGKILL)
    done = await wait_tuning(tuning_id)
    assert done["status"] == "succeeded", done
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=auth())).json()["data"]
    assert job["attempts"] == 2
    assert done["trials"]["complete"] == 5  # the budget, not restarted, not exceeded
    assert done["trials"]["running"] == 0
    trials = (
        await client.get(f"/api/v1/tuning-jobs/{tuning_id}/trials?per_page=100", headers=auth())
    ).json()["data"]
    assert [t["number"] for t in trials] == list(range(len(trials)))
    for stale in (t for t in trials if t["state"] == "failed"):
        assert "died" in stale["error"]
        retry = [t for t in trials if t["number"] > stale["number"]]
        assert retry[0]["params"] == stale["params"]
    assert len(trials) == 5 + sum(t["state"] == "failed" for t in trials)
    kids = await client.get(
        f"/api/v1/runs?parent_run_id={done['run_id']}&per_page=100", headers=auth()
    )
    assert all(k["status"] != "running" for k in kids.json()["data"])
    assert len(kids.json()["data"]) == len(trials)
