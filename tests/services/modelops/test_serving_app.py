"""The model server's app in process: input forms, signature checks, batching, metrics,
flavors, and version files materialized from the object store."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_helpers import (
    COLUMNS,
    SIGNATURE,
    expected,
    iris_model,
    metric,
    rows,
    write_mlflow_sklearn,
)

from inwire.kit.errors import Invalid, NotFound
from inwire.kit.storage import MemoryObjectStore
from inwire.services.modelops.models.files import version_prefix
from inwire.services.modelops.serving.batching import Batcher
from inwire.services.modelops.serving.bundle import COMPLETE_MARKER, materialize
from inwire.services.modelops.serving.flavors import (
    EstimatorModel,
    ModelLoadError,
    load_model,
)
from inwire.services.modelops.serving.payload import rows_from_body
from inwire.services.modelops.serving.server import ModelServer, build_server
from inwire.services.modelops.serving.validate import validate_inputs


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ModelServer]:
    app = build_server(write_mlflow_sklearn(tmp_path / "model"), max_batch=64)
    app.batcher.start()
    try:
        yield app
    finally:
        await app.batcher.close()


@pytest.fixture
async def client(server: ModelServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=server)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as c:
        yield c


# -- the HTTP surface -------------------------------------------------------------------------


async def test_predictions_equal_the_in_process_model(client: httpx.AsyncClient) -> None:
    records = rows(10, start=45)
    r = await client.post("/predict", json={"inputs": records})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected(records)}


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": rows(3, 60)},
        {"dataframe_split": {"columns": COLUMNS, "data": [list(r.values()) for r in rows(3, 60)]}},
        {"instances": rows(3, 60)},
        {"inputs": {c: [r[c] for r in rows(3, 60)] for c in COLUMNS}},
        {"inputs": [list(r.values()) for r in rows(3, 60)]},
    ],
    ids=["records", "split", "instances", "columns", "values"],
)
async def test_mlflow_input_forms(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected(rows(3, 60))


async def test_signature_violation_is_400_naming_the_field(client: httpx.AsyncClient) -> None:
    bad = rows(2)
    bad[1]["petal_width"] = "wide"
    del bad[0]["sepal_length"]
    r = await client.post("/predict", json={"inputs": bad})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert {d["field"] for d in error["details"]} == {"sepal_length", "petal_width"}
    assert "petal_width" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rows": []}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": rows(1), "extra": 1}, "extra"),
        ({"dataframe_split": {"columns": COLUMNS, "data": [[1.0]]}}, "dataframe_split.data[0]"),
        ([1, 2], "body"),
    ],
)
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, body: Any, field: str) -> None:
    r = await client.post("/predict", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["field"] == field


async def test_not_json_wrong_type_and_unknown_routes(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/predict", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_INPUT"
    r = await client.post("/predict", content=b"a=1", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert (await client.get("/predict")).status_code == 405
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200
    meta = (await client.get("/metadata")).json()
    assert meta["flavor"] == "sklearn"
    assert meta["signature"]["inputs"] == SIGNATURE["inputs"]


async def test_concurrent_requests_share_model_calls(client: httpx.AsyncClient) -> None:
    records = rows(40)
    answers = await asyncio.gather(
        *(client.post("/predict", json={"inputs": [r]}) for r in records)
    )
    assert [a.json()["predictions"][0] for a in answers] == expected(records)
    text = (await client.get("/metrics")).text
    calls = metric(text, "inwire_model_batch_requests_count")
    assert metric(text, "inwire_model_batch_requests_sum") == 40
    assert calls < 40  # some call answered several requests
    assert 'inwire_model_requests_total{status="200"} 40.0' in text


# -- pieces -----------------------------------------------------------------------------------


def test_validate_converts_orders_and_drops_unknown_columns() -> None:
    signature = {
        "inputs": [
            {"name": "b", "type": "double", "required": True},
            {"name": "a", "type": "long", "required": False},
            {"name": "tags", "type": "array", "items": {"type": "string"}, "required": False},
        ]
    }
    out = validate_inputs(signature, [{"a": 2.0, "b": 1, "zz": "x", "tags": ["t"]}, {"b": 0.5}])
    assert out == [{"b": 1.0, "a": 2, "tags": ["t"]}, {"b": 0.5, "a": None, "tags": None}]
    assert isinstance(out[0]["b"], float)
    with pytest.raises(Invalid) as info:
        validate_inputs(signature, [{"b": True, "tags": ["t", 3]}])
    assert [d["field"] for d in info.value.details] == ["b", "tags"]
    assert info.value.status == 400
    assert info.value.code == "INVALID_INPUT"
    with pytest.raises(Invalid):
        validate_inputs(None, [1, 2])  # type: ignore[list-item]
    assert validate_inputs(None, [{"x": 1}]) == [{"x": 1}]


def test_values_without_a_signature_need_names() -> None:
    with pytest.raises(Invalid) as info:
        rows_from_body({"inputs": [[1, 2]]}, None)
    assert info.value.details[0]["field"] == "inputs"


async def test_batcher_isolates_a_failing_request() -> None:
    calls: list[int] = []

    def predict(batch: list[dict[str, Any]]) -> list[Any]:
        calls.append(len(batch))
        if any(r.get("bad") for r in batch):
            raise ValueError("bad row")
        return [r["x"] * 2 for r in batch]

    batcher = Batcher(predict, max_batch=8, batch_wait_ms=1)
    batcher.start()
    try:
        results = await asyncio.gather(
            *(batcher.predict([{"x": i, "bad": i == 3}]) for i in range(6)),
            return_exceptions=True,
        )
    finally:
        await batcher.close()
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [[0], [2], [4], [8], [10]]
    assert max(calls) > 1  # they were batched before the failure split them


async def test_batcher_respects_max_batch() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def predict(batch: list[dict[str, Any]]) -> list[Any]:
        gate.wait(5)
        sizes.append(len(batch))
        return [0] * len(batch)

    batcher = Batcher(predict, max_batch=4, batch_wait_ms=0)
    batcher.start()
    try:
        pending = [asyncio.ensure_future(batcher.predict([{"x": i}])) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*pending)
    finally:
        await batcher.close()
    assert sum(sizes) == 10
    assert max(sizes) <= 4


def test_numeric_batches_skip_pandas_once_verified() -> None:
    model, _ = iris_model()
    served = EstimatorModel(model, "sklearn", None)
    assert served.columns == COLUMNS  # from feature_names_in_
    first = rows(5, 50)
    assert served.predict(first) == expected(first)
    assert served.matrix_ok is True
    later = rows(5, 120)
    assert served.predict(later) == expected(later)


def test_a_pipeline_selecting_columns_by_name_keeps_dataframes(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame(
        {"age": [20, 30, 40, 50, 60, 70] * 5, "plan": ["a", "b", "c"] * 10, "y": [0, 1] * 15}
    )
    pipe = make_pipeline(
        ColumnTransformer([("n", StandardScaler(), ["age"]), ("c", OneHotEncoder(), ["plan"])]),
        LogisticRegression(),
    ).fit(frame[["age", "plan"]], frame["y"])
    (tmp_path / "pipe.joblib").write_bytes(b"")
    import joblib

    joblib.dump(pipe, tmp_path / "pipe.joblib")
    served = load_model(tmp_path / "pipe.joblib")
    records = [{"age": 25, "plan": "b"}, {"age": 65, "plan": "c"}]
    assert served.predict(records) == pipe.predict(pd.DataFrame(records)).tolist()


def test_boosters_and_custom_models_load(tmp_path: Path) -> None:
    import lightgbm
    import numpy as np
    import xgboost

    _, features = iris_model()
    target = (features["petal_length"] > 3).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgboost.DMatrix(features, label=target),
        num_boost_round=3,
    )
    booster.save_model(tmp_path / "model.json")
    served = load_model(tmp_path / "model.json")
    records = rows(4, 48)
    want = booster.predict(xgboost.DMatrix(features.iloc[48:52]))
    assert np.allclose(served.predict(records), want)

    lgb = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(features, label=target),
        num_boost_round=3,
    )
    (tmp_path / "lgb").mkdir()
    lgb.save_model(tmp_path / "lgb" / "model.txt")
    served = load_model(tmp_path / "lgb")
    assert served.flavor == "lightgbm"
    assert np.allclose(served.predict(records), lgb.predict(features.iloc[48:52]))

    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "predict.py").write_text(
        "class Doubler:\n"
        "    def predict(self, rows):\n"
        "        return [r['x'] * 2 for r in rows]\n"
        "def load(model_dir):\n"
        "    return Doubler()\n"
    )
    served = load_model(custom)
    assert served.flavor == "python"
    assert served.predict([{"x": 2}, {"x": 5}]) == [4, 10]


def test_nothing_servable_says_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match=r"MLmodel file, a predict\.py"):
        load_model(tmp_path)
    with (tmp_path / "x.pkl").open("wb") as f:
        pickle.dump({"not": "a model"}, f)
    with pytest.raises(ModelLoadError, match="no predict"):
        load_model(tmp_path / "x.pkl")


async def test_materialize_downloads_once(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    prefix = version_prefix("org_a", "mdl_1", "ver_1")
    source = write_mlflow_sklearn(tmp_path / "src")
    for name in ("MLmodel", "model.pkl"):
        await store.put(prefix + "model/" + name, (source / name).read_bytes())
    dest = tmp_path / "cache" / "ver_1"
    root = await materialize(store, "org_a", "mdl_1", "ver_1", dest)
    assert root == dest / "model"  # the MLflow folder one level down
    assert (dest / COMPLETE_MARKER).is_file()
    assert json.loads(json.dumps(load_model(root).predict(rows(2)))) == expected(rows(2))
    await store.delete(prefix + "model/model.pkl")
    assert await materialize(store, "org_a", "mdl_1", "ver_1", dest) == root  # cached
    with pytest.raises(NotFound):
        await materialize(store, "org_a", "mdl_1", "ver_2", tmp_path / "cache" / "ver_2")
