"""Loading a model from a folder, whatever its flavor, behind one ``predict(rows)``.

A served model is a folder (or a single file) holding one of:

- an MLflow model: an ``MLmodel`` YAML file naming its flavors. The ``sklearn`` flavor's
  model (skops, MLflow 3's default, with the types skops trusts; pickle or cloudpickle),
  the ``xgboost`` flavor's saved model (a Booster or the scikit-learn wrapper its
  ``model_class`` names), the ``lightgbm`` flavor's model (a Booster text file or a pickled
  wrapper), the ``onnx`` flavor's ``.onnx`` file (when ``onnxruntime`` is installed).
  The files are read here, without MLflow;
- a ``predict.py`` exposing ``load(model_dir)``, which returns an object with
  ``predict(rows)`` taking a list of records and returning one prediction per row;
- a plain model file: a pickle/joblib (``.pkl``, ``.pickle``, ``.joblib``) or ``.skops``
  file of anything with ``predict``, an XGBoost model (``.json`` holding a ``learner``,
  ``.ubj``), a LightGBM text model (``.txt``/``.lgb``), an ONNX model (``.onnx``).

Rows are records (``{"column": value}``). Models trained on a table get their columns in
the order they were fitted with (``feature_names_in_``, the booster's feature names, else
the signature's, else the first row's). A scikit-learn model is called with a pandas
DataFrame, as MLflow's pyfunc does, until the first all-numeric batch shows that a plain
float matrix gives the same predictions; from then on numeric batches skip pandas.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pickle
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from inwire.services.modelops.models.signatures import mlmodel_signature, parse_mlmodel


class ModelLoadError(Exception):
    """The folder holds no model this server can load, or loading it failed."""


class ServedModel(Protocol):
    """What a model server calls."""

    flavor: str

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row."""
        ...


def to_list(output: Any, n: int) -> list[Any]:
    """A model's output as a JSON-ready list with one entry per row."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):  # a DataFrame
        records: list[Any] = output.to_dict(orient="records")
        out = records
    elif hasattr(output, "tolist"):
        out = output.tolist()
    elif hasattr(output, "to_numpy"):  # a Series
        out = output.to_numpy().tolist()
    else:
        out = list(output)
    if len(out) != n:
        raise ValueError(f"the model returned {len(out)} predictions for {n} rows")
    return out


def _numeric(rows: list[dict[str, Any]], columns: list[str]) -> bool:
    for row in rows:
        for c in columns:
            v = row.get(c)
            if v is not None and (type(v) is bool or not isinstance(v, int | float)):
                return False
    return True


def _matrix(rows: list[dict[str, Any]], columns: list[str], dtype: Any = None) -> Any:
    import numpy as np

    return np.array(
        [[row.get(c) for c in columns] for row in rows], dtype=dtype or np.float64
    ).reshape(len(rows), len(columns))


class EstimatorModel:
    """Anything with a scikit-learn style ``predict(X)``: sklearn estimators and pipelines,
    XGBoost's and LightGBM's scikit-learn wrappers, pickled custom estimators."""

    def __init__(
        self,
        estimator: Any,
        flavor: str,
        columns: list[str] | None,
        method: str = "predict",
    ) -> None:
        self.estimator = estimator
        self.flavor = flavor
        names = getattr(estimator, "feature_names_in_", None)
        self.columns: list[str] | None = [str(n) for n in names] if names is not None else columns
        if names is not None:
            # Verified-equal matrices (below) reach a model fitted on a DataFrame without
            # names; scikit-learn would warn about it on every call.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self._call: Callable[[Any], Any] = getattr(estimator, method)
        #: None until decided: whether numeric batches may skip pandas.
        self.matrix_ok: bool | None = None

    def _frame(self, rows: list[dict[str, Any]]) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=self._columns(rows))

    def _columns(self, rows: list[dict[str, Any]]) -> list[str]:
        return self.columns if self.columns is not None else list(rows[0])

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row (DataFrame input, or a float matrix once verified)."""
        columns = self._columns(rows)
        if self.matrix_ok is not False and _numeric(rows, columns):
            if self.matrix_ok:
                return to_list(self._call(_matrix(rows, columns)), len(rows))
            return self._decide(rows, columns)
        return to_list(self._call(self._frame(rows)), len(rows))

    def _decide(self, rows: list[dict[str, Any]], columns: list[str]) -> list[Any]:
        """Predict from a DataFrame, and from a matrix; keep the matrix if they agree."""
        import numpy as np

        expected = to_list(self._call(self._frame(rows)), len(rows))
        try:
            fast = to_list(self._call(_matrix(rows, columns)), len(rows))
            a, b = np.asarray(expected), np.asarray(fast)
            same = a.shape == b.shape and (
                np.allclose(a, b, equal_nan=True)
                if a.dtype.kind in "fc" and b.dtype.kind in "fc"
                else bool((a == b).all())
            )
        except Exception:
            same = False
        self.matrix_ok = same
        return expected


class XGBoosterModel:
    """A raw ``xgboost.Booster``: rows to a float matrix, ``inplace_predict``."""

    flavor = "xgboost"

    def __init__(self, booster: Any, columns: list[str] | None) -> None:
        self.booster = booster
        self.columns = list(booster.feature_names or []) or columns

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row."""
        columns = self.columns or list(rows[0])
        return to_list(self.booster.inplace_predict(_matrix(rows, columns)), len(rows))


class LGBBoosterModel:
    """A raw ``lightgbm.Booster``: rows to a float matrix."""

    flavor = "lightgbm"

    def __init__(self, booster: Any, columns: list[str] | None) -> None:
        self.booster = booster
        names = [n for n in booster.feature_name() if not n.startswith("Column_")]
        self.columns = names or columns

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row."""
        columns = self.columns or list(rows[0])
        return to_list(self.booster.predict(_matrix(rows, columns)), len(rows))


class OnnxModel:
    """An ONNX graph on onnxruntime: one float tensor input ``[n, columns]``, or one
    ``[n, 1]`` input per column when the graph names its inputs after the columns."""

    flavor = "onnx"

    def __init__(self, path: Path, columns: list[str] | None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ModelLoadError("ONNX models need onnxruntime, which is not installed") from exc
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.columns = columns

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row (the graph's first output)."""
        import numpy as np

        dtype = np.float64 if "double" in self.inputs[0].type else np.float32
        if len(self.inputs) == 1:
            columns = self.columns or list(rows[0])
            feeds = {self.inputs[0].name: _matrix(rows, columns, dtype)}
        else:
            feeds = {
                i.name: _matrix(rows, [i.name], np.float64 if "double" in i.type else np.float32)
                for i in self.inputs
            }
        return to_list(self.session.run(None, feeds)[0], len(rows))


class CustomModel:
    """What a ``predict.py``'s ``load(model_dir)`` returned."""

    flavor = "python"

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "predict", None)):
            raise ModelLoadError("predict.py's load() must return an object with predict(rows)")
        self.model = model

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row."""
        return to_list(self.model.predict(rows), len(rows))


# -- loading ----------------------------------------------------------------------------------


def _unpickle(path: Path) -> Any:
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as f:
        head = f.read(2)
        f.seek(0)
        if head[:1] != b"\x80":
            import joblib  # joblib's own compressed containers

            return joblib.load(path)
        try:
            return pickle.load(f)
        except (AttributeError, ModuleNotFoundError, ImportError, TypeError):
            import cloudpickle

            f.seek(0)
            return cloudpickle.load(f)


def _skops(path: Path, trusted: list[str] | None) -> Any:
    """A model saved in skops' format (MLflow 3's default for scikit-learn): only types
    skops trusts, plus those the MLmodel lists, are rebuilt."""
    try:
        import skops.io
    except ImportError as exc:
        raise ModelLoadError("skops-format models need the skops package") from exc
    return skops.io.load(path, trusted=trusted or None)


def _load_custom(model_dir: Path) -> CustomModel:
    script = model_dir / "predict.py"
    name = f"inwire_served_model_{abs(hash(str(script)))}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(model_dir))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    load = getattr(module, "load", None)
    if not callable(load):
        raise ModelLoadError("predict.py must define load(model_dir)")
    return CustomModel(load(str(model_dir)))


def _xgboost(path: Path, model_class: str | None, columns: list[str] | None) -> ServedModel:
    import xgboost

    if model_class and model_class.startswith("xgboost.") and not model_class.endswith("Booster"):
        module, _, cls = model_class.rpartition(".")
        model = getattr(importlib.import_module(module), cls)()
        model.load_model(str(path))
        return EstimatorModel(model, "xgboost", columns)
    return XGBoosterModel(xgboost.Booster(model_file=str(path)), columns)


def _lightgbm(path: Path, columns: list[str] | None) -> ServedModel:
    if path.suffix in (".pkl", ".pickle", ".joblib"):
        return EstimatorModel(_unpickle(path), "lightgbm", columns)
    import lightgbm

    return LGBBoosterModel(lightgbm.Booster(model_file=str(path)), columns)


def _from_mlmodel(model_dir: Path, mlmodel: dict[str, Any], columns: list[str] | None) -> Any:
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    method = str(pyfunc.get("predict_fn") or "predict")
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        path = model_dir / str(conf.get("pickled_model") or "model.pkl")
        if conf.get("serialization_format") == "skops":
            estimator = _skops(path, conf.get("skops_trusted_types"))
        else:
            estimator = _unpickle(path)
        return EstimatorModel(estimator, "sklearn", columns, method)
    if "xgboost" in flavors:
        conf = flavors["xgboost"]
        return _xgboost(model_dir / str(conf["data"]), conf.get("model_class"), columns)
    if "lightgbm" in flavors:
        return _lightgbm(model_dir / str(flavors["lightgbm"]["data"]), columns)
    if "onnx" in flavors:
        return OnnxModel(model_dir / str(flavors["onnx"]["data"]), columns)
    if (model_dir / "predict.py").is_file():
        return _load_custom(model_dir)
    listed = ", ".join(map(str, flavors)) or "none"
    raise ModelLoadError(
        f"The MLmodel's flavors ({listed}) are not servable without MLflow; log the model "
        "with the sklearn, xgboost, lightgbm or onnx flavor, or add a predict.py"
    )


def _is_xgboost_json(path: Path) -> bool:
    try:
        return "learner" in json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, TypeError):
        return False


def _is_lightgbm_text(path: Path) -> bool:
    with path.open("rb") as f:
        return f.readline().strip() == b"tree"


def _from_file(path: Path, columns: list[str] | None) -> ServedModel | None:
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle", ".joblib", ".skops"):
        estimator = _skops(path, None) if suffix == ".skops" else _unpickle(path)
        if not callable(getattr(estimator, "predict", None)):
            raise ModelLoadError(f"{path.name} holds a {type(estimator).__name__}, no predict")
        return EstimatorModel(estimator, "sklearn", columns)
    if suffix == ".ubj" or (suffix == ".json" and _is_xgboost_json(path)):
        return _xgboost(path, None, columns)
    if suffix in (".txt", ".lgb") and _is_lightgbm_text(path):
        return _lightgbm(path, columns)
    if suffix == ".onnx":
        return OnnxModel(path, columns)
    return None


def read_mlmodel(model_dir: Path) -> dict[str, Any] | None:
    """The folder's MLmodel file as a dict, or None without one."""
    path = model_dir / "MLmodel"
    return parse_mlmodel(path.read_bytes()) if path.is_file() else None


def default_signature(model_dir: Path) -> dict[str, Any] | None:
    """The signature of the MLmodel file in ``model_dir``, if any."""
    mlmodel = read_mlmodel(model_dir) if model_dir.is_dir() else None
    return mlmodel_signature(mlmodel) if mlmodel else None


def load_model(path: Path, signature: dict[str, Any] | None = None) -> ServedModel:
    """The model in ``path`` (a folder or a file), ready to ``predict(rows)``.

    Raises ``ModelLoadError`` saying what was expected when nothing servable is there.
    """
    inputs = (signature or {}).get("inputs") or []
    names = [c["name"] for c in inputs if isinstance(c, dict) and isinstance(c.get("name"), str)]
    columns = names or None
    try:
        if path.is_file():
            model = _from_file(path, columns)
            if model is None:
                raise ModelLoadError(f"{path.name} is not a model file this server can load")
            return model
        if not path.is_dir():
            raise ModelLoadError(f"{path} does not exist")
        mlmodel = read_mlmodel(path)
        if mlmodel is not None:
            loaded: ServedModel = _from_mlmodel(path, mlmodel, columns)
            return loaded
        if (path / "predict.py").is_file():
            return _load_custom(path)
        for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
            if candidate.name.startswith("."):
                continue
            found = _from_file(candidate, columns)
            if found is not None:
                return found
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"loading the model failed: {type(exc).__name__}: {exc}") from exc
    raise ModelLoadError(
        f"No model in {path}: expected an MLmodel file, a predict.py, or a .pkl/.joblib, "
        ".json/.ubj (XGBoost), .txt (LightGBM) or .onnx file"
    )
