"""The MLflow-compatible API: the stock mlflow client against a real Model Training server.

The client runs in a subprocess (``mlflow_scenario.py``, an ordinary MLflow script), against
Model Training served by uvicorn on a free port, with ModelOps in process as its registry.
Error shapes, roles and organizations are checked over the same API in process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from inwire.services.modelops.app import create_app as create_modelops
from inwire.services.modelops.settings import ModelOpsSettings
from inwire.services.training.app import create_app
from inwire.services.training.settings import TrainingSettings

SCENARIO = Path(__file__).with_name("mlflow_scenario.py")
API = "/api/2.0/mlflow"


async def run_scenario(
    tracking_uri: str, token: str, experiment: str, *extra: str, home: Path
) -> dict[str, Any]:
    """Run the MLflow script in a subprocess (this loop keeps serving); its JSON line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INWIRE_", "MLFLOW_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_TRACKING_TOKEN=token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        HOME=str(home),
        NO_PROXY="*",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCENARIO),
        experiment,
        *extra,
        env=env,
        cwd=home,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, stderr.decode()[-5000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def gateway_support() -> ModuleType:
    """The gateway tests' helpers (real Core, gateway and uvicorn servers), by file path:
    pytest puts each test folder on sys.path, not the tests root."""
    module = sys.modules.get("gateway_support")
    if module is None:
        path = Path(__file__).parents[2] / "gateway" / "gateway_support.py"
        spec = importlib.util.spec_from_file_location("gateway_support", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["gateway_support"] = module
        spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def training_with_registry(
    training_settings: TrainingSettings, tmp_path: Path, **peers: Any
) -> AsyncIterator[str]:
    """Model Training on a real port with ModelOps (same object store) in process."""
    modelops = create_modelops(
        ModelOpsSettings(
            **{
                **training_settings.model_dump(
                    include={"home", "storage_url", "events_url", "jwks_url", "log_json"}
                ),
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'modelops.db'}",
                "log_level": "WARNING",
            }
        )
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(modelops.router.lifespan_context(modelops))
        app = create_app(training_settings, {"modelops": modelops, **peers})
        yield await stack.enter_async_context(gateway_support().serving(app))


@pytest.mark.slow
async def test_mlflow_script_runs_unchanged_against_inwire(
    training_settings: TrainingSettings, token_factory: Callable[..., str], tmp_path: Path
) -> None:
    async with training_with_registry(training_settings, tmp_path) as url:
        seen = await run_scenario(
            url, token_factory("member", "a"), "iris", "--register", home=tmp_path
        )
        assert seen["same_predictions"]
        assert seen["pyfunc_predictions"]
        assert seen["status"] == "FINISHED"
        assert seen["params"] == {"extra": "1", "max_iter": "300"}
        assert {"training_score", "loss"} <= set(seen["metrics"])
        assert seen["tags"] == {"team": "risk"}
        assert seen["history"] == [[0, 1.0], [1, 0.5], [2, 1 / 3]]
        assert seen["search"] == [seen["run_id"]]
        assert seen["search_none"] == 0
        assert "models" in seen["artifacts"]
        assert seen["version"] == "1"
        assert seen["registered_predictions"]
        assert seen["alias_predictions"]
        assert seen["alias"] == "1"
        assert seen["stage"] == "Production"
        assert seen["models"] == ["iris-model"]
        assert seen["versions"] == [["iris-model", "1", seen["run_id"]]]

        # The same experiment is invisible to another organization, read-only to a viewer.
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client:
            other = {"Authorization": f"Bearer {token_factory('admin', 'b')}"}
            r = await client.get(
                f"{API}/experiments/get-by-name", params={"experiment_name": "iris"}, headers=other
            )
            assert r.status_code == 404
            assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            r = await client.get(
                f"{API}/runs/get", params={"run_id": seen["run_id"]}, headers=other
            )
            assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            r = await client.get(
                f"{API}/registered-models/get", params={"name": "iris-model"}, headers=other
            )
            assert r.status_code == 404
            viewer = {"Authorization": f"Bearer {token_factory('viewer', 'a')}"}
            r = await client.get(
                f"{API}/runs/get", params={"run_id": seen["run_id"]}, headers=viewer
            )
            assert r.status_code == 200
            assert r.json()["run"]["info"]["status"] == "FINISHED"
            r = await client.post(
                f"{API}/runs/set-tag",
                json={"run_id": seen["run_id"], "key": "k", "value": "v"},
                headers=viewer,
            )
            assert r.status_code == 403
            assert r.json()["error_code"] == "PERMISSION_DENIED"


@pytest.mark.slow
# What this test is about (credentials, the gateway) does not depend on the database, and the
# scenario itself runs on both in the test above: SQLite only, to spare CI two mlflow runs.
@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_an_api_key_is_a_tracking_token_directly_and_through_the_gateway(
    training_settings: TrainingSettings, tmp_path: Path
) -> None:
    support = gateway_support()
    (tmp_path / "core").mkdir()
    with support.start_core(tmp_path / "core") as core:
        _, key = core.create_key("member")
        settings = training_settings.model_copy(
            update={"jwks_url": f"{core.url}/.well-known/jwks.json", "core_url": core.url}
        )
        async with training_with_registry(settings, tmp_path) as url:
            seen = await run_scenario(url, key, "direct", home=tmp_path)
            assert seen["same_predictions"]
            assert seen["search"] == [seen["run_id"]]
            async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client:
                r = await client.get(
                    f"{API}/experiments/get-by-name",
                    params={"experiment_name": "direct"},
                    headers={"Authorization": "Bearer iwk_not_a_real_key"},
                )
                _error(r, 401, "UNAUTHENTICATED")
            upstreams = [
                support.Upstream("core", "/core", core.url),
                support.Upstream("training", "/training", url),
            ]
            async with support.run_gateway(upstreams) as gateway:
                seen = await run_scenario(
                    f"{gateway.url}/training", key, "gateway", "--register", home=tmp_path
                )
                assert seen["same_predictions"]
                assert seen["registered_predictions"]
                assert seen["versions"] == [["gateway-model", "1", seen["run_id"]]]


# -- the API in process: errors, roles, organizations ------------------------------------------


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert body["message"]


@pytest.fixture
def mlflow_headers(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("member")


async def _experiment(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    r = await client.post(f"{API}/experiments/create", json={"name": name}, headers=headers)
    assert r.status_code == 200, r.text
    experiment_id: str = r.json()["experiment_id"]
    return experiment_id


async def _run(client: httpx.AsyncClient, headers: dict[str, str], experiment_id: str) -> str:
    r = await client.post(
        f"{API}/runs/create",
        json={"experiment_id": experiment_id, "start_time": 1700000000123, "tags": []},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    run_id: str = r.json()["run"]["info"]["run_id"]
    return run_id


async def test_get_by_name_of_a_missing_experiment_is_resource_does_not_exist(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    r = await client.get(
        f"{API}/experiments/get-by-name",
        params={"experiment_name": "nope"},
        headers=mlflow_headers,
    )
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")


async def test_experiment_names_are_unique_resource_already_exists(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    await _experiment(client, mlflow_headers, "dup")
    r = await client.post(f"{API}/experiments/create", json={"name": "dup"}, headers=mlflow_headers)
    _error(r, 400, "RESOURCE_ALREADY_EXISTS")


async def test_experiment_lifecycle_search_and_tags(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    first = await _experiment(client, mlflow_headers, "alpha")
    await _experiment(client, mlflow_headers, "beta")
    r = await client.post(
        f"{API}/experiments/set-experiment-tag",
        json={"experiment_id": first, "key": "team", "value": "risk"},
        headers=mlflow_headers,
    )
    assert r.status_code == 200
    r = await client.post(
        f"{API}/experiments/search",
        json={"filter": "tags.team = 'risk'", "max_results": 10},
        headers=mlflow_headers,
    )
    assert [e["name"] for e in r.json()["experiments"]] == ["alpha"]
    r = await client.post(
        f"{API}/experiments/search",
        json={"max_results": 1, "order_by": ["name DESC"]},
        headers=mlflow_headers,
    )
    page = r.json()
    assert [e["name"] for e in page["experiments"]] == ["beta"]
    r = await client.post(
        f"{API}/experiments/search",
        json={"max_results": 1, "order_by": ["name DESC"], "page_token": page["next_page_token"]},
        headers=mlflow_headers,
    )
    assert [e["name"] for e in r.json()["experiments"]] == ["alpha"]
    r = await client.post(
        f"{API}/experiments/delete", json={"experiment_id": first}, headers=mlflow_headers
    )
    assert r.status_code == 200
    r = await client.get(
        f"{API}/experiments/get", params={"experiment_id": first}, headers=mlflow_headers
    )
    assert r.json()["experiment"]["lifecycle_stage"] == "deleted"
    r = await client.post(
        f"{API}/experiments/restore", json={"experiment_id": first}, headers=mlflow_headers
    )
    r = await client.post(
        f"{API}/experiments/update",
        json={"experiment_id": first, "new_name": "gamma"},
        headers=mlflow_headers,
    )
    r = await client.get(
        f"{API}/experiments/get", params={"experiment_id": first}, headers=mlflow_headers
    )
    got = r.json()["experiment"]
    assert (got["name"], got["lifecycle_stage"]) == ("gamma", "active")
    assert got["tags"] == [{"key": "team", "value": "risk"}]


async def test_runs_log_and_read_back_in_mlflow_shapes(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    experiment_id = await _experiment(client, mlflow_headers, "shapes")
    run_id = await _run(client, mlflow_headers, experiment_id)
    r = await client.post(
        f"{API}/runs/log-batch",
        json={
            "run_id": run_id,
            "metrics": [
                {"key": "rmse", "value": 0.5, "timestamp": 1700000000123, "step": 0},
                {"key": "rmse", "value": "NaN", "timestamp": 1700000000124, "step": 1},
            ],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "mlflow.runName", "value": "named"}],
        },
        headers=mlflow_headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{API}/runs/log-parameter",
        json={"run_id": run_id, "key": "lr", "value": "0.2"},
        headers=mlflow_headers,
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = await client.post(
        f"{API}/runs/update",
        json={"run_id": run_id, "status": "FINISHED", "end_time": 1700000009999},
        headers=mlflow_headers,
    )
    info = r.json()["run_info"]
    assert (info["status"], info["end_time"], info["start_time"]) == (
        "FINISHED",
        1700000009999,
        1700000000123,
    )
    assert info["run_name"] == "named"
    r = await client.get(f"{API}/runs/get", params={"run_id": run_id}, headers=mlflow_headers)
    run = r.json()["run"]
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert run["data"]["metrics"] == [
        {"key": "rmse", "value": "NaN", "timestamp": 1700000000124, "step": 1}
    ]
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
    r = await client.get(
        f"{API}/metrics/get-history",
        params={"run_id": run_id, "metric_key": "rmse", "max_results": 1},
        headers=mlflow_headers,
    )
    page = r.json()
    assert page["metrics"] == [{"key": "rmse", "value": 0.5, "timestamp": 1700000000123, "step": 0}]
    r = await client.get(
        f"{API}/metrics/get-history",
        params={"run_id": run_id, "metric_key": "rmse", "page_token": page["next_page_token"]},
        headers=mlflow_headers,
    )
    assert [m["step"] for m in r.json()["metrics"]] == [1]
    r = await client.post(f"{API}/runs/delete", json={"run_id": run_id}, headers=mlflow_headers)
    r = await client.post(
        f"{API}/runs/search",
        json={"experiment_ids": [experiment_id], "run_view_type": "DELETED_ONLY"},
        headers=mlflow_headers,
    )
    assert [x["info"]["lifecycle_stage"] for x in r.json()["runs"]] == ["deleted"]
    r = await client.post(
        f"{API}/runs/log-metric",
        json={"run_id": run_id, "key": "x", "value": 1, "timestamp": 1, "step": 0},
        headers=mlflow_headers,
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")


async def test_search_runs_pages_and_rejects_bad_filters(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    experiment_id = await _experiment(client, mlflow_headers, "search")
    for value in (0.3, 0.1, 0.2):
        run_id = await _run(client, mlflow_headers, experiment_id)
        await client.post(
            f"{API}/runs/log-metric",
            json={"run_id": run_id, "key": "rmse", "value": value, "timestamp": 5, "step": 0},
            headers=mlflow_headers,
        )
    body = {
        "experiment_ids": [experiment_id],
        "filter": "metrics.rmse < 0.25",
        "order_by": ["metrics.rmse ASC"],
        "max_results": 1,
    }
    r = await client.post(f"{API}/runs/search", json=body, headers=mlflow_headers)
    first = r.json()
    r = await client.post(
        f"{API}/runs/search",
        json={**body, "page_token": first["next_page_token"]},
        headers=mlflow_headers,
    )
    second = r.json()
    values = [x["data"]["metrics"][0]["value"] for x in first["runs"] + second["runs"]]
    assert values == [0.1, 0.2]
    assert "next_page_token" not in second
    r = await client.post(
        f"{API}/runs/search",
        json={"experiment_ids": [experiment_id], "filter": "metrics.rmse <"},
        headers=mlflow_headers,
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")


async def test_mlflow_routes_answer_errors_in_mlflow_shape(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    r = await client.get(f"{API}/experiments/get", params={"experiment_id": "x"})
    _error(r, 401, "UNAUTHENTICATED")
    r = await client.post(f"{API}/experiments/create", json={"name": "v"}, headers=auth("viewer"))
    _error(r, 403, "PERMISSION_DENIED")
    r = await client.post(f"{API}/experiments/create", json={"name": ""}, headers=auth("member"))
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = await client.post(f"{API}/experiments/create", content=b"{not json", headers=auth("member"))
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = await client.get(f"{API}/runs/get", params={"run_id": "run_missing"}, headers=auth())
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = await client.post(f"{API}/no/such/endpoint", json={}, headers=auth())
    _error(r, 404, "ENDPOINT_NOT_FOUND")
    r = await client.get(f"{API}/registered-models/get", params={"name": "x"})
    _error(r, 401, "UNAUTHENTICATED")


async def test_another_organization_cannot_see_runs_models_or_artifacts(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]]
) -> None:
    mine = auth("member", "a")
    other = auth("admin", "b")
    experiment_id = await _experiment(client, mine, "private")
    run_id = await _run(client, mine, experiment_id)
    r = await client.post(
        f"{API}/logged-models",
        json={"experiment_id": experiment_id, "name": "m", "source_run_id": run_id},
        headers=mine,
    )
    model = r.json()["model"]["info"]
    assert model["model_id"].startswith("m-")
    base = "/api/2.0/mlflow-artifacts/artifacts"
    r = await client.put(
        f"{base}/{experiment_id}/{run_id}/artifacts/a.txt", content=b"hi", headers=mine
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"{base}/{experiment_id}/models/{model['model_id']}/artifacts/MLmodel",
        content=b"flavors: {}",
        headers=mine,
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"{base}/{experiment_id}/{run_id}/artifacts/a.txt", headers=mine)
    assert r.content == b"hi"
    r = await client.get(base, params={"path": f"{experiment_id}/{run_id}/artifacts"}, headers=mine)
    assert r.json()["files"] == [
        {"path": "models", "is_dir": True},
        {"path": "a.txt", "is_dir": False, "file_size": 2},
    ]
    r = await client.patch(
        f"{API}/logged-models/{model['model_id']}",
        json={"status": "LOGGED_MODEL_READY"},
        headers=mine,
    )
    assert r.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    for response in (
        await client.get(f"{base}/{experiment_id}/{run_id}/artifacts/a.txt", headers=other),
        await client.get(f"{API}/logged-models/{model['model_id']}", headers=other),
        await client.get(
            f"{API}/experiments/get", params={"experiment_id": experiment_id}, headers=other
        ),
        await client.put(
            f"{base}/{experiment_id}/{run_id}/artifacts/b.txt", content=b"x", headers=other
        ),
    ):
        _error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    r = await client.get(f"{base}/{experiment_id}/{run_id}/artifacts/../../x", headers=mine)
    assert r.status_code in (400, 404)


async def test_default_experiment_zero_is_made_on_first_run(
    client: httpx.AsyncClient, mlflow_headers: dict[str, str]
) -> None:
    run_id = await _run(client, mlflow_headers, "0")
    r = await client.get(
        f"{API}/experiments/get", params={"experiment_id": "0"}, headers=mlflow_headers
    )
    assert r.json()["experiment"]["name"] == "Default"
    r = await client.get(f"{API}/runs/get", params={"run_id": run_id}, headers=mlflow_headers)
    assert r.json()["run"]["info"]["experiment_id"] == r.json()["run"]["info"]["experiment_id"]


async def test_server_info_says_no_multipart(app: FastAPI, client: httpx.AsyncClient) -> None:
    r = await client.get("/api/3.0/mlflow/server-info")
    assert r.json()["multipart_uploads_enabled"] is False
