"""Tuning jobs API without running one: the search space and settings are checked (400
naming the field), roles (403) and organizations (404); samplers and pruners map to Optuna."""

from __future__ import annotations

from typing import Any

import httpx
import optuna
import pytest
from helpers import Auth, experiment

from inwire.kit.errors import Invalid
from inwire.kit.testing.plugin import assert_error
from inwire.services.training.tuning import study
from inwire.services.training.tuning.schemas import TuningCreate


def tuning_body(experiment_id: str, **changes: Any) -> dict[str, Any]:
    """A valid request: XGBoost on a dataset, two params, TPE and the median pruner."""
    request: dict[str, Any] = {
        "experiment_id": experiment_id,
        "dataset": {"id": "ds_missing"},
        "trainer": {
            "framework": "xgboost",
            "task": "classification",
            "target": "species",
            "metrics": ["log_loss", "accuracy"],
        },
        "space": {
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "max_depth": {"type": "int", "low": 2, "high": 6},
        },
        "objective": {"metric": "log_loss", "direction": "minimize"},
        "budget": {"n_trials": 4},
    }
    request.update(changes)
    return request


def _fields(response: httpx.Response) -> list[str]:
    return [str(d.get("field")) for d in response.json()["error"]["details"]]


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"space": {"lr": {"type": "float", "low": 1.0, "high": 0.5}}}, "space.lr"),
    ({"space": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "space.lr"),
    ({"space": {"n": {"type": "int", "low": 5, "high": 5}}}, "space.n"),
    ({"space": {"c": {"type": "categorical", "choices": []}}}, "space.c"),
    ({"space": {"c": {"type": "categorical", "choices": ["a", "a"]}}}, "space.c"),
    ({"space": {"x": {"type": "weird", "low": 1, "high": 2}}}, "space.x"),
    ({"space": {}}, "space"),
    ({"sampler": {"type": "bayes"}}, "sampler.type"),
    ({"pruner": {"type": "hyperband"}}, "pruner.type"),
    ({"sampler": {"type": "grid"}}, "space.learning_rate.step"),
    (
        {
            "sampler": {"type": "grid"},
            "space": {"lr": {"type": "float", "low": 0.1, "high": 0.3}},
        },
        "space.lr.step",
    ),
    ({"objective": {"metric": "rmse", "direction": "minimize"}}, "objective.metric"),
    ({"objective": {"metric": "log_loss", "direction": "down"}}, "objective.direction"),
    ({"budget": {}}, "budget"),
    ({"budget": {"n_trials": 0}}, "budget.n_trials"),
    ({"n_parallel": 5}, "n_parallel"),
    ({"unknown": 1}, "unknown"),
]


async def test_invalid_requests_are_400_naming_the_field(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp = await experiment(client, auth)
    for changes, field in INVALID:
        body = tuning_body(exp, **changes)
        r = await client.post("/api/v1/tuning-jobs", json=body, headers=auth())
        assert_error(r, 400)
        assert any(f == field or f.startswith(f"{field}.") for f in _fields(r)), (changes, r.text)


async def test_roles_and_organizations(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    r = await client.post("/api/v1/tuning-jobs", json=tuning_body(exp), headers=auth("viewer"))
    assert_error(r, 403)
    for path in ("", "/trials", "/importances"):
        assert_error(await client.get(f"/api/v1/tuning-jobs/tun_nope{path}", headers=auth()), 404)
    assert_error(await client.post("/api/v1/tuning-jobs/tun_nope/cancel", headers=auth()), 404)
    assert_error(await client.get("/api/v1/tuning-jobs", headers={}), 401)
    r = await client.get("/api/v1/tuning-jobs?status=nope", headers=auth("viewer"))
    assert_error(r, 400)
    r = await client.get("/api/v1/tuning-jobs", headers=auth("viewer"))
    assert r.json() == {"data": [], "meta": {"page": 1, "per_page": 20, "total": 0}}


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("grid", optuna.samplers.GridSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
    ],
)
def test_each_sampler_is_built_seeded(name: str, cls: type) -> None:
    request = TuningCreate.model_validate(
        tuning_body(
            "exp_x",
            sampler={"type": name},
            space={
                "learning_rate": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                "booster": {"type": "categorical", "choices": ["gbtree", "dart"]},
            },
        )
    )
    study.check(request)
    assert isinstance(study.sampler(request), cls)


def test_pruners_and_grid() -> None:
    def build(**changes: Any) -> TuningCreate:
        return TuningCreate.model_validate(tuning_body("exp_x", **changes))

    assert isinstance(study.pruner(build()), optuna.pruners.MedianPruner)
    halving = build(pruner={"type": "successive_halving", "min_resource": 2})
    assert isinstance(study.pruner(halving), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(study.pruner(build(pruner={"type": "none"})), optuna.pruners.NopPruner)
    space = build(
        space={
            "a": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
            "b": {"type": "int", "low": 1, "high": 7, "step": 3},
            "c": {"type": "categorical", "choices": [True, None]},
        }
    ).space
    assert study.grid(space) == {"a": [0.1, 0.2, 0.3], "b": [1, 4, 7], "c": [True, None]}
    huge = build(space={"a": {"type": "float", "low": 0, "high": 1, "step": 1e-6}}).space
    with pytest.raises(Invalid):
        study.grid(huge)
    # A grid needs no budget: it ends when every point was tried.
    study.check(build(sampler={"type": "grid"}, budget={}, space=space))
