"""Fast checks of training jobs' edges: on-behalf-of calls, run tokens, requests refused
before any job starts (Synthex unreachable, bad bodies, wrong roles)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from inwire.kit.auth.internal import INTERNAL_HEADER, ON_BEHALF_ROLE, on_behalf_headers
from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs.scripts import mint_run_token

Auth = Callable[..., dict[str, str]]


@pytest.fixture
def training_settings(inwire_settings: dict[str, Any]) -> TrainingSettings:
    """Model Training with a Synthex that cannot be reached."""
    return TrainingSettings(**inwire_settings, synthex_url="http://127.0.0.1:9")


def _as(settings: TrainingSettings, role: str = "member", org: str = "a") -> dict[str, str]:
    who = identity(role, org)
    return on_behalf_headers(settings, who.org_id, who.user_id, role)


async def test_on_behalf_calls_act_as_the_user_only_with_the_internal_secret(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    settings: TrainingSettings = app.state.settings
    r = await client.post("/api/v1/experiments", json={"name": "e"}, headers=auth())
    path = f"/api/v1/experiments/{r.json()['data']['id']}"

    assert (await client.get(path, headers=_as(settings))).status_code == 200
    r = await client.post("/api/v1/experiments", json={"name": "f"}, headers=_as(settings))
    assert r.status_code == 201
    assert r.json()["data"]["created_by"] == identity("member", "a").user_id
    assert_error(
        await client.post(
            "/api/v1/experiments", json={"name": "g"}, headers=_as(settings, "viewer")
        ),
        403,
    )
    assert_error(await client.get(path, headers=_as(settings, org="b")), 404)
    wrong = {**_as(settings), INTERNAL_HEADER: "not-the-secret"}
    assert_error(await client.get(path, headers=wrong), 403, "INTERNAL_ONLY")
    without = {k: v for k, v in _as(settings).items() if k != INTERNAL_HEADER}
    assert_error(await client.get(path, headers=without), 403, "INTERNAL_ONLY")
    assert_error(await client.get(path, headers={**without, **auth()}), 403, "INTERNAL_ONLY")
    assert_error(await client.get(path, headers={**_as(settings), ON_BEHALF_ROLE: "root"}), 403)
    # The secret alone names nobody: still a bearer token is needed.
    secret_only = {INTERNAL_HEADER: _as(settings)[INTERNAL_HEADER]}
    assert_error(await client.get(path, headers=secret_only), 401)


async def test_run_tokens_act_as_the_submitter_until_they_expire(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    settings: TrainingSettings = app.state.settings
    r = await client.post("/api/v1/experiments", json={"name": "e"}, headers=auth())
    experiment = r.json()["data"]["id"]
    member = identity("member", "a")

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    token = mint_run_token(
        settings, member.org_id, member.user_id, "member", "run_x", time.time() + 60
    )
    r = await client.get(f"/api/v1/experiments/{experiment}", headers=bearer(token))
    assert r.status_code == 200, r.text
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_error(await client.get("/api/v1/experiments", headers=bearer(tampered)), 401)
    expired = mint_run_token(
        settings, member.org_id, member.user_id, "member", "run_x", time.time() - 1
    )
    assert_error(await client.get("/api/v1/experiments", headers=bearer(expired)), 401)
    other = settings.model_copy(update={"internal_secret": "another installation"})
    foreign = mint_run_token(
        other, member.org_id, member.user_id, "member", "run_x", time.time() + 60
    )
    assert_error(await client.get("/api/v1/experiments", headers=bearer(foreign)), 401)
    b = identity("member", "b")
    token_b = mint_run_token(settings, b.org_id, b.user_id, "member", "run_x", time.time() + 60)
    r = await client.get(f"/api/v1/experiments/{experiment}", headers=bearer(token_b))
    assert_error(r, 404)


async def test_submissions_refused_before_a_job_starts(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    r = await client.post("/api/v1/experiments", json={"name": "e"}, headers=auth())
    body = {
        "experiment_id": r.json()["data"]["id"],
        "dataset": {"id": "ds_x"},
        "trainer": {"framework": "sklearn", "task": "classification", "target": "y"},
    }
    post = "/api/v1/training-jobs"
    assert_error(await client.post(post, json=body, headers=auth()), 503)
    assert_error(await client.post(post, json=body, headers=auth("viewer")), 403)
    assert_error(await client.post(post, json=body), 401)
    for bad in (
        {**body, "trainer": {**body["trainer"], "framework": "keras"}},
        {**body, "trainer": {**body["trainer"], "validation_split": 1.5}},
        {**body, "max_attempts": 0},
        {k: v for k, v in body.items() if k != "dataset"},
    ):
        assert_error(await client.post(post, json=bad, headers=auth()), 400)
    assert_error(await client.get("/api/v1/training-jobs/job_nope", headers=auth()), 404)
    assert_error(await client.get("/api/v1/training-jobs/job_nope/logs", headers=auth()), 404)
    assert_error(await client.post("/api/v1/training-jobs/job_nope/cancel", headers=auth()), 404)
    r = await client.get("/api/v1/training-jobs", headers=auth("viewer"))
    assert (r.status_code, r.json()["data"], r.json()["meta"]["total"]) == (200, [], 0)
    assert_error(await client.get("/api/v1/training-jobs"), 401)


def test_one_process_mode_points_training_jobs_at_the_shared_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inwire.allinone.composition import _settings
    from inwire.services.registry import SERVICES

    training = next(s for s in SERVICES if s.name == "training")
    base = "http://127.0.0.1:8080"
    settings = _settings(training, base, has_core=True)
    assert isinstance(settings, TrainingSettings)
    assert (settings.synthex_url, settings.tracking_url) == (f"{base}/synthex", f"{base}/training")
    monkeypatch.setenv("INWIRE_TRAINING_SYNTHEX_URL", "http://synthex:18090")
    settings = _settings(training, base, has_core=True)
    assert isinstance(settings, TrainingSettings)
    assert settings.synthex_url == "http://synthex:18090"
