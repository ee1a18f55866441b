"""The tuning job's core in process: Optuna's journal in our tables, trials as nested runs,
pruning, and a retried attempt resuming the study (no trial lost, none duplicated)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI
from helpers import Auth, experiment
from sqlalchemy import select

from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.jobs import JobContext, JobService
from inwire.kit.testing.identities import identity
from inwire.services.training.runs.models import Run
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.tuning import jobs as tuning_jobs
from inwire.services.training.tuning import service
from inwire.services.training.tuning import study as studies
from inwire.services.training.tuning.models import TuningJob
from inwire.services.training.tuning.schemas import TuningCreate


def frame(rows: int = 240, seed: int = 0) -> pl.DataFrame:
    """A small, learnable binary classification table."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(scale=0.7, size=rows) > 0).astype(int)
    return pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "label": y})


def body(experiment_id: str, **changes: Any) -> dict[str, Any]:
    """A LightGBM search over the learning rate (log scale) and leaves, minimising log loss."""
    request: dict[str, Any] = {
        "experiment_id": experiment_id,
        "name": "lgbm search",
        "dataset": {"id": "ds_test", "version": 1},
        "trainer": {
            "framework": "lightgbm",
            "task": "classification",
            "target": "label",
            "metrics": ["log_loss", "accuracy"],
            "params": {"n_estimators": 12},
            "seed": 0,
        },
        "space": {
            "learning_rate": {"type": "float", "low": 0.0005, "high": 0.5, "log": True},
            "num_leaves": {"type": "int", "low": 4, "high": 16},
            "min_child_samples": {"type": "categorical", "choices": [5, 20]},
        },
        "objective": {"metric": "log_loss", "direction": "minimize"},
        "budget": {"n_trials": 8},
        "sampler": {"type": "tpe", "n_startup_trials": 4},
        "pruner": {"type": "median", "n_startup_trials": 3},
        "seed": 7,
    }
    request.update(changes)
    return request


async def new_tuning(app: FastAPI, exp: str, org_id: str, **changes: Any) -> TuningJob:
    """A tuning job row and study run whose job is cancelled at once (the test runs it)."""
    jobs: JobService = app.state.jobs
    db: Database = app.state.db
    who = Principal(subject="usr_test", org=org_id, roles=("admin",))
    async with db.session() as session:
        request = TuningCreate.model_validate(body(exp, **changes))
        lineage = {"dataset_id": "ds_test", "dataset_version_id": "dsv_test"}
        row, job = await service.submit(session, who, jobs, request, lineage)
        await jobs.repository(session, org_id).cancel_queued(job.id, row.created_at)
    return row


@contextlib.asynccontextmanager
async def attempt_of(
    settings: TrainingSettings, tuning_id: str, org_id: str, attempt: int = 1
) -> AsyncIterator[tuning_jobs.Search]:
    """An attempt of the tuning job in this process, on its own database connections."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        ctx = JobContext(
            job_id="job_test",
            organization_id=org_id,
            job_type="training.tune",
            attempt=attempt,
            max_attempts=3,
            created_by="usr_test",
            settings=settings.model_dump(mode="json"),
        )
        row = await tuning_jobs._load(db, ctx, tuning_id)
        yield tuning_jobs.Search(ctx, db, row, asyncio.get_running_loop())
    finally:
        await db.dispose()


async def run_search(
    settings: TrainingSettings, tuning_id: str, org_id: str, attempt: int = 1
) -> dict[str, Any]:
    """One attempt of the tuning job on the test table."""
    async with attempt_of(settings, tuning_id, org_id, attempt) as search:
        search.frame = frame()
        return await tuning_jobs._search(search)


@pytest.mark.slow
async def test_search_records_trials_as_runs_prunes_and_resumes(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, training_settings: TrainingSettings
) -> None:
    exp = await experiment(client, auth)
    org_id = identity("admin", "a").org_id
    row = await new_tuning(app, exp, org_id, budget={"n_trials": 8})
    result = await run_search(training_settings, row.id, org_id)
    assert result["trials"]["complete"] + result["trials"]["pruned"] == 8
    assert result["trials"]["pruned"] >= 1, result
    assert set(result["best_params"]) == {"learning_rate", "num_leaves", "min_child_samples"}
    assert result["importances"] is not None
    assert set(result["importances"]) == set(result["best_params"])

    # Same seed, same study: a second tuning job sees the very same trials.
    twin = await new_tuning(app, exp, org_id, budget={"n_trials": 8})
    again = await run_search(training_settings, twin.id, org_id)
    assert again["best_params"] == result["best_params"]
    assert again["trials"] == result["trials"]

    headers = auth("viewer")
    got = (await client.get(f"/api/v1/tuning-jobs/{row.id}", headers=headers)).json()["data"]
    assert got["best"]["value"] == pytest.approx(result["best_value"])
    assert got["best"]["run_id"] == result["best_run_id"]
    assert got["trials"]["running"] == 0
    trials = (
        await client.get(f"/api/v1/tuning-jobs/{row.id}/trials?per_page=100", headers=headers)
    ).json()
    assert trials["meta"]["total"] == 8
    assert [t["number"] for t in trials["data"]] == list(range(8))
    pruned = [t for t in trials["data"] if t["state"] == "pruned"]
    assert pruned
    # Each trial is a run nested in the study's run, with its params, steps and state.
    kids = (
        await client.get(f"/api/v1/runs?parent_run_id={row.run_id}&per_page=100", headers=headers)
    ).json()["data"]
    assert len(kids) == 8
    by_id = {k["id"]: k for k in kids}
    one = by_id[pruned[0]["run_id"]]
    assert one["status"] == "killed"
    assert one["tags"]["inwire.trial_state"] == "pruned"
    assert float(one["params"]["learning_rate"]) == pytest.approx(
        pruned[0]["params"]["learning_rate"]
    )
    history = await client.get(
        f"/api/v1/runs/{pruned[0]['run_id']}/metrics/history",
        params={"key": "log_loss", "per_page": 1000},
        headers=headers,
    )
    assert history.status_code == 200, history.text
    steps = [p["step"] for p in history.json()["data"]["points"]]
    assert steps == list(range(len(steps)))
    assert len(steps) < 12
    best_run = by_id[result["best_run_id"]]
    assert best_run["status"] == "finished"
    study_run = (await client.get(f"/api/v1/runs/{row.run_id}", headers=headers)).json()["data"]
    assert study_run["status"] == "finished"
    assert study_run["tags"]["inwire.best_run_id"] == result["best_run_id"]
    imp = (await client.get(f"/api/v1/tuning-jobs/{row.id}/importances", headers=headers)).json()
    assert imp["data"]["importances"] == pytest.approx(result["importances"])

    # A dead attempt left trial 8 running; the budget grows to 10 and the job is retried.
    db: Database = app.state.db
    async with db.session() as session:
        stored = await session.get(TuningJob, row.id)
        assert stored is not None
        stored.spec = {**stored.spec, "budget": {"n_trials": 10}}
    await leave_running_trial(training_settings, row.id, org_id)
    resumed = await run_search(training_settings, row.id, org_id, attempt=2)
    states = (
        await client.get(f"/api/v1/tuning-jobs/{row.id}/trials?per_page=100", headers=headers)
    ).json()["data"]
    assert [t["number"] for t in states] == list(range(11))
    stale = states[8]
    assert stale["state"] == "failed"
    assert "died" in stale["error"]
    assert states[9]["params"] == stale["params"]  # retried with the same params
    assert resumed["trials"]["complete"] + resumed["trials"]["pruned"] == 10
    async with db.session(write=False) as session:
        runs = (await session.execute(select(Run).where(Run.parent_run_id == row.run_id))).all()
    assert len(runs) == 11
    stale_run = (await client.get(f"/api/v1/runs/{stale['run_id']}", headers=headers)).json()
    assert stale_run["data"]["status"] == "failed"


async def leave_running_trial(settings: TrainingSettings, tuning_id: str, org_id: str) -> None:
    """What a worker killed mid-trial leaves: a RUNNING trial in the journal, its run open."""
    async with attempt_of(settings, tuning_id, org_id) as search:

        def ask() -> None:
            study = search.open_study()
            trial = study.ask()
            params = studies.suggest(trial, search.request.space)
            trial.set_user_attr("run_id", search.wait(search._start_trial(trial.number, params)))
            trial.report(0.7, 0)

        await asyncio.to_thread(ask)


def test_journal_entries_are_plain_json() -> None:
    from inwire.services.training.tuning.storage import ReplayJournal

    journal = ReplayJournal([json.dumps({"op_code": 0, "n": 1}), json.dumps({"op_code": 1})])
    assert list(journal.read_logs(1)) == [{"op_code": 1}]
    with pytest.raises(RuntimeError):
        journal.append_logs([{}])
