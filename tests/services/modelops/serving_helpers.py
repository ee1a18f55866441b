"""Helpers of the model-serving tests: a small scikit-learn model, written as an MLflow
model folder the way ``mlflow.sklearn.save_model(serialization_format="pickle")`` lays it
out, and rows to send it."""

from __future__ import annotations

import json
import pickle
from functools import cache
from pathlib import Path
from typing import Any

#: The iris columns, renamed to identifiers.
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SIGNATURE: dict[str, Any] = {
    "inputs": [{"type": "double", "name": c, "required": True} for c in COLUMNS],
    "outputs": [{"type": "long", "required": True}],
    "params": None,
}


@cache
def iris_model() -> tuple[Any, Any]:
    """A logistic regression fitted on iris as a DataFrame (so it knows its column names),
    and that DataFrame."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    frame = load_iris(as_frame=True).frame
    features = frame.iloc[:, :4].set_axis(COLUMNS, axis=1)
    model = LogisticRegression(max_iter=500).fit(features, frame["target"])
    return model, features


def rows(n: int = 5, start: int = 0) -> list[dict[str, float]]:
    """``n`` iris rows as records."""
    _, features = iris_model()
    records: list[dict[str, float]] = features.iloc[start : start + n].to_dict("records")
    return records


def write_mlflow_sklearn(folder: Path, model: Any | None = None) -> Path:
    """``model`` (the iris model by default) as an MLflow sklearn model folder."""
    model = model if model is not None else iris_model()[0]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "model.pkl").open("wb") as f:
        pickle.dump(model, f)
    inputs = json.dumps(SIGNATURE["inputs"])
    (folder / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        "    predict_fn: predict\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: pickle\n"
        "signature:\n"
        f"  inputs: '{inputs}'\n"
        '  outputs: \'[{"type": "long", "required": true}]\'\n'
    )
    return folder


def expected(records: list[dict[str, Any]]) -> list[Any]:
    """What the in-process iris model predicts for ``records``."""
    import pandas as pd

    model, _ = iris_model()
    out: list[Any] = model.predict(pd.DataFrame(records, columns=COLUMNS)).tolist()
    return out


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")
