"""Scikit-learn pieces of the built-in trainers' pipelines, pickled with the model.

Loading a model that uses them needs ``inwire`` installed (its ``requirements.txt`` says
so); the trainers only add them when the table has date columns or XGBoost classes that
are not numbered from 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin


class DatetimeParts(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Dates and datetimes to numbers: year, month, day, weekday, hour, epoch seconds.

    A scikit-learn transformer (``fit``/``transform``) taking a pandas or polars frame.
    """

    PARTS = ("year", "month", "day", "weekday", "hour", "epoch")

    def __init__(self) -> None:
        self.columns_: list[str] = []

    def fit(self, x: Any, y: Any = None) -> DatetimeParts:
        """Remember the column names."""
        self.columns_ = [str(c) for c in x.columns]
        return self

    def transform(self, x: Any) -> np.ndarray:
        """One row per input row, six numbers per column (NaN where the value is null)."""
        out = []
        for name in self.columns_:
            values = np.asarray(x[name], dtype="datetime64[s]")
            missing = np.isnat(values)
            days = values.astype("datetime64[D]")
            years = days.astype("datetime64[Y]")
            months = days.astype("datetime64[M]")
            cols = [
                years.astype(np.int64) + 1970,
                months.astype(np.int64) % 12 + 1,
                (days - months).astype(np.int64) + 1,
                (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday; Monday = 0
                (values - days).astype("timedelta64[h]").astype(np.int64),
                values.astype(np.int64),
            ]
            for col in cols:
                col = col.astype(np.float64)
                col[missing] = np.nan
                out.append(col)
        return np.column_stack(out) if out else np.empty((len(x), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<column>_<part>`` for every column and part."""
        return np.asarray([f"{c}_{p}" for c in self.columns_ for p in self.PARTS], dtype=object)


class LabelDecoded(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier fitted on class indices that predicts the original labels.

    XGBoost wants classes numbered from 0; this wrapper keeps the labels the table had.
    """

    def __init__(self, model: Any, classes: np.ndarray) -> None:
        self.model = model
        self.classes_ = classes

    def fit(self, x: Any, y: Any) -> LabelDecoded:
        """Refit the wrapped classifier on ``y``'s labels."""
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.model.fit(x, codes)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Always: it wraps a fitted model."""
        return True

    def predict(self, x: Any) -> np.ndarray:
        """The label of each row."""
        return np.asarray(self.classes_[np.asarray(self.model.predict(x), dtype=np.int64)])

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probability of each class (columns in ``classes_`` order)."""
        return np.asarray(self.model.predict_proba(x))
