"""Built-in trainers: scikit-learn, XGBoost and LightGBM on a table, saved as MLflow models.

Pure functions, no I/O except :func:`save_model` writing a folder. A trainer fits a
scikit-learn ``Pipeline``: preprocessing (numeric columns imputed with the median and
scaled, categorical ones imputed and one-hot encoded, dates and datetimes split into
numeric parts) then the estimator. The table is split into training and validation rows
(stratified for classification); metrics are computed on the validation rows.

Iterative learners report validation metrics as they go through ``report(step, metrics)``:
XGBoost and LightGBM after every boosting round (``log_loss`` and ``accuracy`` for
classification, ``rmse`` and ``mae`` for regression, as the library computes them),
scikit-learn ensembles grown with ``warm_start`` and the MLP after each stage or epoch (the
task's metrics). Non-iterative estimators report once, at the end. ``report`` returning
True stops the fit, which raises :class:`Pruned` (a tuning trial judged hopeless).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import pickle
import platform
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

Framework = Literal["sklearn", "xgboost", "lightgbm"]
Task = Literal["classification", "regression"]
Report = Callable[[int, dict[str, float]], bool]

CLASSIFICATION_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "mse", "r2", "mape")
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
SKLEARN_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": (
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "hist_gradient_boosting",
        "logistic_regression",
        "mlp",
        "knn",
        "decision_tree",
    ),
    "regression": (
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "hist_gradient_boosting",
        "linear",
        "ridge",
        "lasso",
        "mlp",
        "knn",
        "decision_tree",
    ),
}
#: Warm-start ensembles: the parameter that counts their stages, and its default.
_STAGED = {
    "random_forest": ("n_estimators", 100),
    "extra_trees": ("n_estimators", 100),
    "gradient_boosting": ("n_estimators", 100),
    "hist_gradient_boosting": ("max_iter", 100),
}
#: How many times a warm-started ensemble reports (it grows in this many slices).
_SLICES = 10


class InvalidSpec(ValueError):
    """The spec does not fit the table (unknown column, unsupported type, bad estimator)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class Pruned(Exception):
    """``report`` asked the fit to stop early: the trial was pruned."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pruned at step {step}")
        self.step = step


class TrainerSpec(BaseModel):
    """The built-in trainer part of a training job: what to fit on which columns."""

    model_config = ConfigDict(extra="forbid")

    framework: Framework
    task: Task
    #: scikit-learn only: the estimator's short name (default ``random_forest``).
    estimator: str | None = None
    target: str = Field(min_length=1)
    #: Feature columns; None means every column but the target.
    features: list[str] | None = None
    #: Metrics on the validation rows; None means the task's defaults.
    metrics: list[str] | None = None
    validation_split: float = Field(default=0.2, gt=0, lt=1)
    #: Hyperparameters passed to the estimator.
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0

    def metric_names(self) -> list[str]:
        """The metrics to compute, the task's defaults unless some were named."""
        return list(self.metrics) if self.metrics else list(DEFAULT_METRICS[self.task])


@dataclass
class TrainResult:
    """A fitted pipeline with its validation metrics and what a saved model needs."""

    model: Pipeline
    metrics: dict[str, float]
    framework: Framework
    task: Task
    #: The MLflow signature: ``{"inputs": [...], "outputs": [...]}`` column specs.
    signature: dict[str, list[dict[str, Any]]]
    features: list[str]
    #: A few input rows, in MLflow's pandas ``split`` orientation.
    input_example: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    #: Rows used to fit and to validate.
    rows: tuple[int, int] = (0, 0)
    #: Steps the learner ran (boosting rounds, stages, epochs); 1 when not iterative.
    steps: int = 1


def _stages(total: int) -> list[int]:
    """The ensemble sizes a warm-started estimator reports at (at most ``_SLICES``)."""
    return sorted({max(1, round(total * (i + 1) / _SLICES)) for i in range(_SLICES)})


def expected_steps(spec: TrainerSpec, params: dict[str, Any] | None = None) -> int | None:
    """How many times ``fit`` will call ``report`` (None when unknown): for progress bars."""
    merged = {**spec.params, **(params or {})}
    if spec.framework != "sklearn":
        rounds = merged.get("n_estimators", 100)
        return rounds if isinstance(rounds, int) else None
    name = spec.estimator or "random_forest"
    if name in _STAGED:
        param, default = _STAGED[name]
        total = merged.get(param, default)
        return len(_stages(total)) if isinstance(total, int) else None
    if name == "mlp":
        epochs = merged.get("max_iter", 200)
        return epochs if isinstance(epochs, int) else None
    return 1


def validate(spec: TrainerSpec, columns: dict[str, str]) -> None:
    """Check ``spec`` against a table's columns (name to type name) before any data is read.

    Raises :class:`InvalidSpec` naming the field at fault.
    """
    if spec.target not in columns:
        raise InvalidSpec("trainer.target", f"The dataset has no column {spec.target!r}")
    for name in spec.features or []:
        if name not in columns:
            raise InvalidSpec("trainer.features", f"The dataset has no column {name!r}")
        if name == spec.target:
            raise InvalidSpec("trainer.features", "The target cannot also be a feature")
    allowed = CLASSIFICATION_METRICS if spec.task == "classification" else REGRESSION_METRICS
    for name in spec.metrics or []:
        if name not in allowed:
            raise InvalidSpec(
                "trainer.metrics",
                f"Unknown {spec.task} metric {name!r}; use {', '.join(allowed)}",
            )
    if spec.framework == "sklearn":
        names = SKLEARN_ESTIMATORS[spec.task]
        if spec.estimator is not None and spec.estimator not in names:
            raise InvalidSpec(
                "trainer.estimator",
                f"Unknown {spec.task} estimator {spec.estimator!r}; use {', '.join(names)}",
            )
    elif spec.estimator is not None:
        raise InvalidSpec("trainer.estimator", "Only the sklearn framework takes an estimator")


# -- preprocessing --------------------------------------------------------------------------


def _kind(dtype: pl.DataType) -> str | None:
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "numeric"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "categorical"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "datetime"
    return None


def _preprocessor(kinds: dict[str, str]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from inwire.services.training.trainjobs.transforms import DatetimeParts

    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    dated = [c for c, k in kinds.items() if k == "datetime"]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
        )
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=50, sparse_output=False
        )
        parts.append(
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="most_frequent"), encoder),
                categorical,
            )
        )
    if dated:
        parts.append(
            (
                "datetime",
                make_pipeline(DatetimeParts(), SimpleImputer(strategy="median"), StandardScaler()),
                dated,
            )
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def _frame_for_sklearn(frame: pl.DataFrame, kinds: dict[str, str]) -> Any:
    """A pandas frame when pandas is around (what MLflow's pyfunc passes at predict time),
    else the polars frame itself (scikit-learn reads both)."""
    cast = frame.with_columns(
        pl.col(c).cast(pl.String) for c, k in kinds.items() if k == "categorical"
    )
    try:
        return cast.to_pandas()
    except ModuleNotFoundError:
        return cast


# -- estimators -----------------------------------------------------------------------------


def _sklearn_estimator(spec: TrainerSpec, name: str, params: dict[str, Any]) -> Any:
    from sklearn import ensemble, linear_model, neighbors, neural_network, tree

    classify = spec.task == "classification"
    seeded: dict[str, Any] = {"random_state": spec.seed}
    table: dict[str, tuple[Any, bool]] = {
        "random_forest": (
            ensemble.RandomForestClassifier if classify else ensemble.RandomForestRegressor,
            True,
        ),
        "extra_trees": (
            ensemble.ExtraTreesClassifier if classify else ensemble.ExtraTreesRegressor,
            True,
        ),
        "gradient_boosting": (
            ensemble.GradientBoostingClassifier if classify else ensemble.GradientBoostingRegressor,
            True,
        ),
        "hist_gradient_boosting": (
            ensemble.HistGradientBoostingClassifier
            if classify
            else ensemble.HistGradientBoostingRegressor,
            True,
        ),
        "logistic_regression": (linear_model.LogisticRegression, True),
        "linear": (linear_model.LinearRegression, False),
        "ridge": (linear_model.Ridge, True),
        "lasso": (linear_model.Lasso, True),
        "mlp": (
            neural_network.MLPClassifier if classify else neural_network.MLPRegressor,
            True,
        ),
        "knn": (
            neighbors.KNeighborsClassifier if classify else neighbors.KNeighborsRegressor,
            False,
        ),
        "decision_tree": (
            tree.DecisionTreeClassifier if classify else tree.DecisionTreeRegressor,
            True,
        ),
    }
    cls, takes_seed = table[name]
    defaults: dict[str, Any] = {}
    if name == "logistic_regression":
        defaults["max_iter"] = 1000
    if name == "mlp":
        defaults["max_iter"] = 200
    kwargs = {**defaults, **(seeded if takes_seed else {}), **params}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InvalidSpec("trainer.params", f"{cls.__name__}: {exc}") from exc


# -- metrics --------------------------------------------------------------------------------


def compute_metrics(
    task: Task, names: list[str], y_true: Any, model: Any, x: Any
) -> dict[str, float]:
    """The named metrics of ``model`` on the rows ``x`` with truth ``y_true``."""
    from sklearn import metrics as m

    predicted = model.predict(x)
    out: dict[str, float] = {}
    if task == "regression":
        y = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(predicted, dtype=np.float64)
        for name in names:
            if name == "rmse":
                out[name] = math.sqrt(m.mean_squared_error(y, p))
            elif name == "mse":
                out[name] = float(m.mean_squared_error(y, p))
            elif name == "mae":
                out[name] = float(m.mean_absolute_error(y, p))
            elif name == "r2":
                out[name] = float(m.r2_score(y, p))
            elif name == "mape":
                out[name] = float(m.mean_absolute_percentage_error(y, p))
        return out
    labels = np.asarray(y_true)
    classes = list(getattr(model, "classes_", np.unique(labels)))
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    extra: dict[str, Any] = {"pos_label": classes[1]} if binary else {}
    proba = None
    if ({"roc_auc", "log_loss"} & set(names)) and hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)
    for name in names:
        if name == "accuracy":
            out[name] = float(m.accuracy_score(labels, predicted))
        elif name in ("f1", "precision", "recall"):
            fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}
            out[name] = float(
                fn[name](labels, predicted, average=average, zero_division=0, **extra)
            )
        elif name == "roc_auc" and proba is not None and len(np.unique(labels)) > 1:
            try:
                if binary:
                    out[name] = float(m.roc_auc_score(labels == classes[1], proba[:, 1]))
                else:
                    out[name] = float(
                        m.roc_auc_score(labels, proba, multi_class="ovr", labels=classes)
                    )
            except ValueError:  # a class absent from the validation rows
                continue
        elif name == "log_loss" and proba is not None:
            out[name] = float(m.log_loss(labels, proba, labels=classes))
    return out


# -- fitting --------------------------------------------------------------------------------


def _columns(spec: TrainerSpec, frame: pl.DataFrame) -> dict[str, str]:
    validate(spec, {name: str(dtype) for name, dtype in frame.schema.items()})
    features = spec.features or [c for c in frame.columns if c != spec.target]
    if not features:
        raise InvalidSpec("trainer.features", "The dataset has no feature column")
    kinds: dict[str, str] = {}
    for name in features:
        kind = _kind(frame.schema[name])
        if kind is None:
            raise InvalidSpec(
                "trainer.features",
                f"Column {name!r} has type {frame.schema[name]}, which cannot be a feature",
            )
        kinds[name] = kind
    return kinds


def _split(spec: TrainerSpec, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    from sklearn.model_selection import train_test_split

    index = np.arange(frame.height)
    stratify = None
    if spec.task == "classification":
        labels = frame[spec.target].to_numpy()
        _, counts = np.unique(labels.astype(str), return_counts=True)
        if counts.min() >= 2:
            stratify = labels
    try:
        fit_rows, val_rows = train_test_split(
            index, test_size=spec.validation_split, random_state=spec.seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidSpec("trainer.validation_split", str(exc)) from exc
    return frame[np.sort(fit_rows)], frame[np.sort(val_rows)]


def fit(
    spec: TrainerSpec,
    frame: pl.DataFrame,
    *,
    params: dict[str, Any] | None = None,
    report: Report | None = None,
) -> TrainResult:
    """Fit ``spec`` on ``frame``; ``params`` override ``spec.params``.

    Raises :class:`InvalidSpec` when the spec does not fit the table and :class:`Pruned`
    when ``report`` returned True.
    """
    from sklearn.pipeline import Pipeline

    kinds = _columns(spec, frame)
    features = list(kinds)
    frame = frame.select([*features, spec.target]).filter(pl.col(spec.target).is_not_null())
    if frame.height < 4:
        raise InvalidSpec("trainer.target", "Fewer than 4 rows have a target value")
    if spec.task == "regression" and not frame.schema[spec.target].is_numeric():
        raise InvalidSpec(
            "trainer.target", f"Regression needs a numeric target, not {spec.target!r}"
        )
    if spec.task == "classification" and frame[spec.target].n_unique() < 2:
        raise InvalidSpec("trainer.target", "Classification needs at least two classes")
    merged = {**spec.params, **(params or {})}
    train, valid = _split(spec, frame)
    x_train = _frame_for_sklearn(train.select(features), kinds)
    x_valid = _frame_for_sklearn(valid.select(features), kinds)
    y_train = train[spec.target].to_numpy()
    y_valid = valid[spec.target].to_numpy()
    names = spec.metric_names()
    prep = _preprocessor(kinds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        z_train = prep.fit_transform(x_train)
        z_valid = prep.transform(x_valid)
    if spec.framework == "xgboost":
        estimator, steps = _fit_xgboost(spec, merged, z_train, y_train, z_valid, y_valid, report)
    elif spec.framework == "lightgbm":
        estimator, steps = _fit_lightgbm(spec, merged, z_train, y_train, z_valid, y_valid, report)
    else:

        def score(model: Any) -> dict[str, float]:
            return compute_metrics(spec.task, names, y_valid, model, z_valid)

        estimator, steps = _fit_sklearn(spec, merged, z_train, y_train, score, report)
    pipeline = Pipeline([("preprocess", prep), ("model", estimator)])
    metrics = compute_metrics(spec.task, names, y_valid, pipeline, x_valid)
    if report is not None and spec.framework == "sklearn" and steps == 1 and report(0, metrics):
        raise Pruned(0)
    head = frame.select(features).head(5)
    return TrainResult(
        model=pipeline,
        metrics=metrics,
        framework=spec.framework,
        task=spec.task,
        signature=_signature(frame.select(features), frame[spec.target], spec.task),
        features=features,
        input_example=_example(head),
        params=merged,
        rows=(train.height, valid.height),
        steps=steps,
    )


def _fit_sklearn(
    spec: TrainerSpec,
    params: dict[str, Any],
    x: Any,
    y: Any,
    score: Callable[[Any], dict[str, float]],
    report: Report | None,
) -> tuple[Any, int]:
    from sklearn.exceptions import ConvergenceWarning

    name = spec.estimator or "random_forest"
    if name not in SKLEARN_ESTIMATORS[spec.task]:
        raise InvalidSpec("trainer.estimator", f"Unknown {spec.task} estimator {name!r}")
    model = _sklearn_estimator(spec, name, params)
    if report is None or (name not in _STAGED and name != "mlp"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(x, y)
        return model, 1
    if name == "mlp":
        epochs = int(model.max_iter)
        model.set_params(max_iter=1, warm_start=True)
        step = 0
        for step in range(epochs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                model.fit(x, y)
            if report(step, score(model)):
                raise Pruned(step)
        model.set_params(max_iter=epochs)
        return model, epochs
    param, default = _STAGED[name]
    total = int(params.get(param, default))
    if name == "hist_gradient_boosting":
        model.set_params(early_stopping=False)
    model.set_params(warm_start=True)
    sizes = _stages(total)
    for step, size in enumerate(sizes):
        model.set_params(**{param: size})
        model.fit(x, y)
        if report(step, score(model)):
            raise Pruned(step)
    return model, len(sizes)


def _fit_xgboost(
    spec: TrainerSpec,
    params: dict[str, Any],
    x: Any,
    y: Any,
    x_valid: Any,
    y_valid: Any,
    report: Report | None,
) -> tuple[Any, int]:
    import xgboost

    from inwire.services.training.trainjobs.transforms import LabelDecoded

    classify = spec.task == "classification"
    if classify:
        classes, codes = np.unique(np.concatenate([y, y_valid]), return_inverse=True)
        y, y_valid = codes[: len(y)], codes[len(y) :]
        multi = len(classes) > 2
        eval_metric = ["mlogloss", "merror"] if multi else ["logloss", "error"]
        names = {"mlogloss": "log_loss", "merror": "error", "logloss": "log_loss", "error": "error"}
    else:
        eval_metric = ["rmse", "mae"]
        names = {"rmse": "rmse", "mae": "mae"}
    state = {"pruned": -1, "rounds": 0}

    class Reporter(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            state["rounds"] = epoch + 1
            if report is None:
                return False
            last = {names[k]: float(v[-1]) for k, v in evals_log.get("validation_0", {}).items()}
            if "error" in last:
                last["accuracy"] = 1.0 - last.pop("error")
            if report(epoch, last):
                state["pruned"] = epoch
                return True
            return False

    kwargs: dict[str, Any] = {
        "n_estimators": 100,
        "random_state": spec.seed,
        "n_jobs": 1,
        "eval_metric": eval_metric,
        "callbacks": [Reporter()],
        **params,
    }
    cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise InvalidSpec("trainer.params", f"{cls.__name__}: {exc}") from exc
    try:
        model.fit(x, y, eval_set=[(x_valid, y_valid)], verbose=False)
    except xgboost.core.XGBoostError as exc:
        raise InvalidSpec("trainer.params", f"XGBoost: {str(exc).splitlines()[0]}") from exc
    model.callbacks = None  # the reporter is not part of the model (nor picklable)
    if state["pruned"] >= 0:
        raise Pruned(state["pruned"])
    if classify and not np.array_equal(classes, np.arange(len(classes))):
        return LabelDecoded(model, classes), state["rounds"]
    return model, state["rounds"]


def _fit_lightgbm(
    spec: TrainerSpec,
    params: dict[str, Any],
    x: Any,
    y: Any,
    x_valid: Any,
    y_valid: Any,
    report: Report | None,
) -> tuple[Any, int]:
    import lightgbm

    classify = spec.task == "classification"
    names = {
        "binary_logloss": "log_loss",
        "multi_logloss": "log_loss",
        "binary_error": "error",
        "multi_error": "error",
        "rmse": "rmse",
        "l2": "mse",
        "l1": "mae",
    }
    eval_metric: Any
    if classify:
        multi = len(np.unique(np.concatenate([y, y_valid]))) > 2
        eval_metric = (
            ["multi_logloss", "multi_error"] if multi else ["binary_logloss", "binary_error"]
        )
    else:
        eval_metric = ["rmse", "l1"]
    rounds = {"n": 0}

    def reporter(env: Any) -> None:
        rounds["n"] = env.iteration + 1
        if report is None:
            return
        last = {names.get(r[1], r[1]): float(r[2]) for r in env.evaluation_result_list}
        if "error" in last:
            last["accuracy"] = 1.0 - last.pop("error")
        if report(env.iteration, last):
            raise Pruned(env.iteration)

    kwargs: dict[str, Any] = {
        "n_estimators": 100,
        "random_state": spec.seed,
        "n_jobs": 1,
        "verbosity": -1,
        **params,
    }
    cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
    try:
        model = cls(**kwargs)
        with warnings.catch_warnings():
            # eval_set is deprecated for eval_X/eval_y, which do not encode string labels yet
            warnings.simplefilter("ignore")
            model.fit(
                x, y, eval_set=[(x_valid, y_valid)], eval_metric=eval_metric, callbacks=[reporter]
            )
    except lightgbm.basic.LightGBMError as exc:
        raise InvalidSpec("trainer.params", f"LightGBM: {exc}") from exc
    except TypeError as exc:
        raise InvalidSpec("trainer.params", f"{cls.__name__}: {exc}") from exc
    return model, rounds["n"]


# -- MLflow model ---------------------------------------------------------------------------


def _mlflow_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16):
        return "integer"
    if dtype.is_integer():
        return "long"
    if dtype == pl.Float32:
        return "float"
    if dtype.is_float() or dtype.is_numeric():
        return "double"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "datetime"
    return "string"


def _signature(x: pl.DataFrame, y: pl.Series, task: Task) -> dict[str, list[dict[str, Any]]]:
    inputs = [
        {"type": _mlflow_type(dtype), "name": name, "required": x[name].null_count() == 0}
        for name, dtype in x.schema.items()
    ]
    out_type = "double" if task == "regression" else _mlflow_type(y.dtype)
    if out_type == "integer":
        out_type = "long"
    return {"inputs": inputs, "outputs": [{"type": out_type, "required": True}]}


def _example(head: pl.DataFrame) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return {
        "columns": head.columns,
        "data": [[plain(v) for v in row] for row in head.iter_rows()],
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirements(result: TrainResult) -> list[str]:
    wanted = ["scikit-learn", "numpy", "scipy"]
    if result.framework == "xgboost":
        wanted.append("xgboost-cpu" if _version("xgboost-cpu") else "xgboost")
    if result.framework == "lightgbm":
        wanted.append("lightgbm")
    if _uses_inwire(result.model):
        wanted.append("inwire")
    out = []
    for name in wanted:
        version = _version(name)
        out.append(f"{name}=={version}" if version else name)
    return out


def _uses_inwire(model: Any) -> bool:
    """Whether unpickling the pipeline needs this module (datetime parts, label decoding)."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return b"inwire.services" in blob


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value)  # JSON scalars are valid YAML flow scalars


def _mlmodel(result: TrainResult, flavors: dict[str, dict[str, Any]]) -> str:
    lines = ["artifact_path: model", "flavors:"]
    for flavor, conf in flavors.items():
        lines.append(f"  {flavor}:")
        for key, value in conf.items():
            if isinstance(value, dict):
                lines.append(f"    {key}:")
                lines.extend(f"      {k}: {_yaml_scalar(v)}" for k, v in value.items())
            else:
                lines.append(f"    {key}: {_yaml_scalar(value)}")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    lines += [
        f"mlflow_version: {_yaml_scalar(_version('mlflow') or '3.17.2')}",
        f"model_uuid: {uuid.uuid4().hex}",
        "saved_input_example_info:",
        "  artifact_path: input_example.json",
        "  pandas_orient: split",
        "  serving_input_path: serving_input_example.json",
        "  type: dataframe",
        "signature:",
        f"  inputs: {_yaml_scalar(json.dumps(result.signature['inputs']))}",
        f"  outputs: {_yaml_scalar(json.dumps(result.signature['outputs']))}",
        "  params: null",
        f"utc_time_created: {_yaml_scalar(created)}",
    ]
    return "\n".join(lines) + "\n"


def save_model(result: TrainResult, directory: Path) -> None:
    """Write ``result`` as an MLflow model folder (what ``mlflow.<flavor>.save_model`` does).

    ``MLmodel`` lists the ``python_function`` flavor (loaded through ``mlflow.sklearn``:
    the whole pipeline, preprocessing included), the framework's flavor (XGBoost's or
    LightGBM's booster, which expects the preprocessed features) and the ``sklearn``
    flavor; then ``model.pkl``, ``requirements.txt`` with the installed versions,
    ``python_env.yaml``, ``conda.yaml``, ``input_example.json`` and the signature.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "model.pkl").open("wb") as f:
        pickle.dump(result.model, f, protocol=pickle.HIGHEST_PROTOCOL)
    python = platform.python_version()
    sklearn_version = _version("scikit-learn") or ""
    flavors: dict[str, dict[str, Any]] = {
        "python_function": {
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "loader_module": "mlflow.sklearn",
            "model_path": "model.pkl",
            "predict_fn": "predict",
            "python_version": python,
        }
    }
    booster = result.model.named_steps["model"]
    booster = getattr(booster, "model", booster)  # under LabelDecoded
    if result.framework == "xgboost":
        booster.get_booster().save_model(str(directory / "model.ubj"))
        flavors["xgboost"] = {
            "code": None,
            "data": "model.ubj",
            "model_class": "xgboost.core.Booster",
            "model_format": "ubj",
            "xgb_version": _version("xgboost-cpu") or _version("xgboost"),
        }
    elif result.framework == "lightgbm":
        booster.booster_.save_model(str(directory / "model.lgb"))
        flavors["lightgbm"] = {
            "code": None,
            "data": "model.lgb",
            "model_class": "lightgbm.basic.Booster",
            "lgb_version": _version("lightgbm"),
        }
    flavors["sklearn"] = {
        "code": None,
        "pickled_model": "model.pkl",
        "serialization_format": "pickle",
        "sklearn_version": sklearn_version,
    }
    requirements = _requirements(result)
    (directory / "MLmodel").write_text(_mlmodel(result, flavors))
    (directory / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (directory / "python_env.yaml").write_text(
        f"python: {python}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"
    )
    conda = [
        "name: mlflow-env",
        "channels:",
        "- conda-forge",
        "dependencies:",
        f"- python={python}",
        "- pip",
        "- pip:",
        *[f"  - {r}" for r in requirements],
    ]
    (directory / "conda.yaml").write_text("\n".join(conda) + "\n")
    (directory / "input_example.json").write_text(json.dumps(result.input_example))
    (directory / "serving_input_example.json").write_text(
        json.dumps({"dataframe_split": result.input_example}, indent=2)
    )
