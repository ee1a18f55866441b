"""Built-in trainers: fitting on small tables, reporting, pruning, MLflow model folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from inwire.services.training.trainjobs import trainers
from inwire.services.training.trainjobs.trainers import InvalidSpec, Pruned, TrainerSpec


@pytest.fixture(scope="module")
def iris() -> pl.DataFrame:
    frame = pl.from_pandas(load_iris(as_frame=True).frame)
    names = ["setosa", "versicolor", "virginica"]
    start = pl.datetime(2024, 1, 1)
    return frame.with_columns(
        pl.col("target").map_elements(lambda i: names[i], return_dtype=pl.String).alias("species"),
        pl.Series("shop", ["north", "south", "east"] * 50),
        pl.datetime_range(start, start + pl.duration(hours=149), "1h", eager=True).alias("seen"),
    ).drop("target")


@pytest.fixture(scope="module")
def diabetes() -> pl.DataFrame:
    return pl.from_pandas(load_diabetes(as_frame=True).frame)


@pytest.fixture(scope="module")
def cancer() -> pl.DataFrame:
    return pl.from_pandas(load_breast_cancer(as_frame=True).frame).head(200)


def _load(directory: Path) -> Any:
    mlflow = pytest.importorskip("mlflow.pyfunc")
    return mlflow.load_model(str(directory))


@pytest.mark.parametrize(
    ("framework", "estimator", "params"),
    [
        ("sklearn", "random_forest", {"n_estimators": 10}),
        ("sklearn", "logistic_regression", {}),
        ("xgboost", None, {"n_estimators": 10}),
        ("lightgbm", None, {"n_estimators": 10}),
    ],
)
def test_classification_with_string_labels_dates_and_categories(
    iris: pl.DataFrame,
    framework: Any,
    estimator: str | None,
    params: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = TrainerSpec(
        framework=framework, task="classification", estimator=estimator, target="species"
    )
    steps: list[tuple[int, dict[str, float]]] = []
    result = trainers.fit(spec, iris, params=params, report=lambda s, m: bool(steps.append((s, m))))
    assert set(result.metrics) == {"accuracy", "f1", "roc_auc"}
    assert result.metrics["accuracy"] > 0.8
    assert result.rows == (120, 30)
    assert steps
    assert "accuracy" in steps[-1][1]
    assert result.params == params
    inputs = {c["name"]: c["type"] for c in result.signature["inputs"]}
    assert inputs["shop"] == "string"
    assert inputs["seen"] == "datetime"
    assert result.signature["outputs"] == [{"type": "string", "required": True}]

    trainers.save_model(result, tmp_path / "model")
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"MLmodel", "model.pkl", "requirements.txt", "input_example.json"} <= files
    requirements = (tmp_path / "model" / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements
    if framework != "sklearn":
        assert f"{framework}" in (tmp_path / "model" / "MLmodel").read_text()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = _load(tmp_path / "model")
    predicted = list(loaded.predict(iris.drop("species").to_pandas()))
    truth = iris["species"].to_list()
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth) > 0.8


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm"])
def test_regression_reports_every_round(
    diabetes: pl.DataFrame, framework: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = TrainerSpec(
        framework=framework,
        task="regression",
        estimator="gradient_boosting" if framework == "sklearn" else None,
        target="target",
        metrics=["rmse", "r2"],
        params={"n_estimators": 20},
    )
    steps: list[int] = []
    result = trainers.fit(spec, diabetes, report=lambda s, m: bool(steps.append(s)))
    assert set(result.metrics) == {"rmse", "r2"}
    assert result.metrics["r2"] > 0
    assert steps == list(range(10 if framework == "sklearn" else 20))
    trainers.save_model(result, tmp_path / "m")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    predicted = _load(tmp_path / "m").predict(diabetes.drop("target").head(3).to_pandas())
    assert len(predicted) == 3


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm"])
def test_report_returning_true_prunes(cancer: pl.DataFrame, framework: Any) -> None:
    spec = TrainerSpec(
        framework=framework,
        task="classification",
        estimator="mlp" if framework == "sklearn" else None,
        target="target",
        params={"max_iter": 20} if framework == "sklearn" else {"n_estimators": 20},
    )
    with pytest.raises(Pruned) as caught:
        trainers.fit(spec, cancer, report=lambda step, _: step >= 2)
    assert caught.value.step == 2


def test_binary_classification_without_report(cancer: pl.DataFrame) -> None:
    spec = TrainerSpec(framework="sklearn", task="classification", target="target")
    result = trainers.fit(spec, cancer, params={"n_estimators": 5}, report=None)
    assert 0.5 < result.metrics["roc_auc"] <= 1
    assert result.steps == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"target": "nope"}, "trainer.target"),
        ({"features": ["sepal length (cm)", "nope"]}, "trainer.features"),
        ({"metrics": ["rmse"]}, "trainer.metrics"),
        ({"estimator": "ridge"}, "trainer.estimator"),
        ({"params": {"no_such_param": 1}}, "trainer.params"),
    ],
)
def test_invalid_specs_name_the_field(
    iris: pl.DataFrame, changes: dict[str, Any], field: str
) -> None:
    spec = TrainerSpec(
        **{"framework": "sklearn", "task": "classification", "target": "species", **changes}
    )
    with pytest.raises(InvalidSpec) as caught:
        trainers.fit(spec, iris)
    assert caught.value.field == field


def test_regression_needs_a_numeric_target(iris: pl.DataFrame) -> None:
    spec = TrainerSpec(framework="xgboost", task="regression", target="species")
    with pytest.raises(InvalidSpec, match="numeric"):
        trainers.fit(spec, iris)


def test_expected_steps_match_the_reports(diabetes: pl.DataFrame) -> None:
    for framework, estimator, params in [
        ("sklearn", "random_forest", {"n_estimators": 7}),
        ("sklearn", "mlp", {"max_iter": 3}),
        ("sklearn", "ridge", {}),
        ("lightgbm", None, {"n_estimators": 6}),
    ]:
        spec = TrainerSpec(
            framework=framework,
            task="regression",
            estimator=estimator,
            target="target",
            params=params,
        )
        steps: list[int] = []

        def report(step: int, _: dict[str, float], steps: list[int] = steps) -> bool:
            steps.append(step)
            return False

        trainers.fit(spec, diabetes, report=report)
        assert trainers.expected_steps(spec) == len(steps), (framework, estimator, steps)
