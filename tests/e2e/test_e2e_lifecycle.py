"""The lifecycle of docs/quickstart.md, step by step, through the gateway of a real ``inwire up``.

Import a dataset into Synthex, generate a synthetic copy, train on it in Model Training,
register the model in ModelOps, deploy it, roll a second version out as a canary, send
predictions, promote the canary, and promote the version to production in the registry.
Every call is one the quickstart shows (same paths, same bodies).
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import running_platform
from sklearn.datasets import load_iris

pytestmark = pytest.mark.slow

SX, TR, MO = "/synthex/api/v1", "/training/api/v1", "/modelops/api/v1"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_csv() -> bytes:
    """The quickstart's iris.csv: four measurements and the species as a word."""
    data = load_iris()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*FEATURES, "species"])
    for row, label in zip(data.data, data.target, strict=True):
        writer.writerow([*(f"{v:.1f}" for v in row), data.target_names[label]])
    return out.getvalue().encode()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def wait_for(
    client: httpx.Client, path: str, done: set[str], *, timeout: float = 240
) -> dict[str, Any]:
    """GET ``path`` until its ``status`` is in ``done`` (fails on failed/cancelled)."""
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = ok(client.get(path))
        status = data["status"]
        assert status not in {"failed", "cancelled"}, data
        if status in done:
            return data
        assert time.monotonic() < deadline, f"{path} still {status}: {data}"
        time.sleep(0.5)


def train(
    client: httpx.Client, experiment_id: str, dataset_id: str, trainer: dict[str, Any]
) -> str:
    """Run a built-in training job to the end; its run id."""
    job = ok(
        client.post(
            f"{TR}/training-jobs",
            json={
                "experiment_id": experiment_id,
                "dataset": {"id": dataset_id, "version": "latest"},
                "trainer": trainer,
            },
        ),
        202,
    )
    wait_for(client, f"{TR}/training-jobs/{job['id']}", {"succeeded"})
    run_id: str = job["run_id"]
    return run_id


def test_dataset_to_synthetic_to_model_to_canary_to_production(tmp_path: Path) -> None:
    with running_platform(tmp_path) as platform, platform.client(timeout=60) as client:
        client.headers.update(platform.login(client))

        # 1. Import iris.csv into Synthex.
        upload = ok(
            client.post(
                f"{SX}/datasets",
                files={"file": ("iris.csv", iris_csv(), "text/csv")},
                data={"name": "iris"},
            ),
            202,
        )
        dataset_id = upload["dataset"]["id"]
        wait_for(client, f"{SX}/jobs/{upload['job']['id']}", {"succeeded"})
        real = ok(client.get(f"{SX}/datasets/{dataset_id}/versions/latest"))
        assert real["rows"] == 150

        # 2. A synthetic copy: 2,000 rows from a Gaussian copula.
        generator = ok(
            client.post(
                f"{SX}/generators",
                json={"name": "iris-copula", "dataset_id": dataset_id, "method": "gaussian_copula"},
            ),
            201,
        )
        started = ok(
            client.post(
                f"{SX}/generators/{generator['id']}/generate", json={"rows": 2000, "seed": 7}
            ),
            202,
        )
        generation = wait_for(
            client,
            f"{SX}/generators/{generator['id']}/generations/{started['generation']['id']}",
            {"succeeded"},
        )
        synthetic_id = generation["output_dataset_id"]
        assert ok(client.get(f"{SX}/datasets/{synthetic_id}/versions/latest"))["rows"] == 2000
        assert generation["evaluation"]["summary"]["quality"] > 0.7

        # 3. Train on the synthetic copy: a random forest, then a gradient-boosted challenger.
        experiment = ok(client.post(f"{TR}/experiments", json={"name": "iris"}), 201)
        trainer = {"framework": "sklearn", "task": "classification", "target": "species"}
        first_run = train(client, experiment["id"], synthetic_id, trainer)
        second_run = train(
            client, experiment["id"], synthetic_id, {**trainer, "framework": "lightgbm"}
        )
        run = ok(client.get(f"{TR}/runs/{first_run}"))
        assert run["status"] == "finished"
        synthetic_version = ok(client.get(f"{SX}/datasets/{synthetic_id}/versions/latest"))
        assert run["source"]["dataset_version_id"] == synthetic_version["id"]

        # 4. Register both runs' models.
        ok(client.post(f"{MO}/models", json={"name": "iris"}), 201)
        for run_id, number in ((first_run, 1), (second_run, 2)):
            version = ok(
                client.post(
                    f"{MO}/models/iris/versions",
                    json={"source": {"run_id": run_id, "artifact_path": "model"}},
                ),
                201,
            )
            assert version["version"] == number
            assert version["signature"]["inputs"]
            assert version["lineage"]["run_id"] == run_id

        # 5. Deploy version 1, then roll version 2 out as a 20 % canary (steps by hand).
        deployment = ok(
            client.post(
                f"{MO}/deployments",
                json={
                    "name": "iris",
                    "model": "iris",
                    "version": 1,
                    "strategy": "canary",
                    "strategy_params": {"steps": [20, 100], "interval_seconds": 3600},
                },
            ),
            201,
        )
        dep = f"{MO}/deployments/{deployment['id']}"
        wait_for(client, dep, {"ready"})
        ok(client.patch(dep, json={"version": 2}))
        deadline = time.monotonic() + 120
        while ok(client.get(dep))["traffic"] != {"1": 80, "2": 20}:
            assert time.monotonic() < deadline, ok(client.get(dep))
            time.sleep(0.5)

        # 6. Predictions: validated, answered by both versions, about one in five by v2.
        flower = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        bad = client.post(f"{dep}/predict", json={"inputs": [{**flower, "petal_width": "wide"}]})
        assert bad.status_code == 400, bad.text
        assert "petal_width" in bad.text
        served: Counter[int] = Counter()
        for _ in range(200):
            answer = client.post(f"{dep}/predict", json={"inputs": [flower]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["predictions"] == ["setosa"]
            served[body["version"]] += 1
        # 20 % of 200: mean 40, standard deviation ~5.7; 4 sigma either way.
        assert 17 <= served[2] <= 63, served

        # 7. Promote the canary to all traffic, and version 2 to production in the registry.
        ok(client.post(f"{dep}/promote"))
        deadline = time.monotonic() + 120
        while ok(client.get(dep))["traffic"] != {"2": 100}:
            assert time.monotonic() < deadline, ok(client.get(dep))
            time.sleep(0.5)
        answer = client.post(f"{dep}/predict", json={"inputs": [flower]})
        assert answer.json()["version"] == 2
        promoted = ok(
            client.post(f"{MO}/models/iris/versions/2/stage", json={"stage": "Production"})
        )
        assert promoted["stage"] == "Production"
        history = ok(client.get(f"{MO}/models/iris/production-history"))
        assert [h["version"] for h in history] == [2]

        # Deleting stops its model servers; the record stays, stopped, for its history.
        assert client.delete(dep).status_code == 204
        assert ok(client.get(dep))["status"] == "stopped"
        stopped = client.post(f"{dep}/predict", json={"inputs": [flower]})
        assert stopped.status_code == 409, stopped.text
