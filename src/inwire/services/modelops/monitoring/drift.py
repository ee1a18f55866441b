"""Input drift: each feature of recent inputs against the reference (the training data).

Numbers: the population stability index over ten quantile bins of the reference, and the
two-sample Kolmogorov-Smirnov test. Categories: the PSI over the categories and Pearson's
chi-square test of the 2 x k table of counts. A feature drifts when its PSI reaches the
``psi`` threshold or its test's p-value falls below ``p_value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import stats

#: Proportions are floored at this before the PSI's logarithm (an empty bin on one side).
PSI_FLOOR = 1e-4
#: Quantile bins of the reference for a number's PSI.
PSI_BINS = 10


@dataclass(frozen=True)
class Thresholds:
    """When a feature drifts and when an alert is raised."""

    #: A feature whose PSI reaches this has drifted (0.1 small, 0.2 significant shift).
    psi: float = 0.2
    #: A feature whose KS / chi-square p-value is below this has drifted.
    p_value: float = 0.01
    #: Fewer recent rows (or reference rows) than this: no verdict.
    min_rows: int = 50
    #: An error rate above this over the checked period raises an ``error_rate`` alert.
    error_rate: float = 0.05

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Thresholds:
        """These thresholds with a deployment's overrides applied."""
        known = {f.name for f in fields(self)}
        changes = {k: v for k, v in (overrides or {}).items() if k in known and v is not None}
        values = {**asdict(self), **changes}
        values["min_rows"] = int(values["min_rows"])
        return Thresholds(**values)


def is_number(value: Any) -> bool:
    """A real number (booleans are categories)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def feature_kind(values: Sequence[Any]) -> str:
    """``number`` when every present value is a number, else ``category``."""
    present = [v for v in values if v is not None]
    return "number" if present and all(is_number(v) for v in present) else "category"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.clip(expected / max(expected.sum(), 1), PSI_FLOOR, None)
    a = np.clip(actual / max(actual.sum(), 1), PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (repeated quantiles merged)."""
    edges = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(edges)


def numeric_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """PSI over the reference's quantile bins and the two-sample KS test."""
    edges = quantile_edges(reference)
    ref_counts = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    cur_counts = np.bincount(
        np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1
    )
    ks = stats.ks_2samp(reference, current)
    return {
        "psi": psi(ref_counts.astype(float), cur_counts.astype(float)),
        "test": "ks",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "reference_mean": float(reference.mean()),
        "mean": float(current.mean()),
    }


def categorical_drift(reference: Sequence[str], current: Sequence[str]) -> dict[str, Any]:
    """PSI over the categories and the chi-square test of their counts."""
    categories, codes = np.unique(np.asarray(list(reference) + list(current)), return_inverse=True)
    k = len(categories)
    ref_counts = np.bincount(codes[: len(reference)], minlength=k).astype(float)
    cur_counts = np.bincount(codes[len(reference) :], minlength=k).astype(float)
    if k < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    top = np.argsort(-cur_counts)[:10]
    return {
        "psi": psi(ref_counts, cur_counts),
        "test": "chi2",
        "statistic": statistic,
        "p_value": p_value,
        "categories": int(k),
        "top": {str(categories[i]): int(cur_counts[i]) for i in top if cur_counts[i] > 0},
    }


def _numbers(values: Sequence[Any]) -> np.ndarray:
    array = np.asarray([float(v) for v in values if is_number(v)], dtype=np.float64)
    return array[np.isfinite(array)]


def compare(
    reference: Mapping[str, Sequence[Any]],
    rows: Sequence[Mapping[str, Any]],
    thresholds: Thresholds,
) -> list[dict[str, Any]]:
    """Every reference feature of ``rows`` against the reference, with its verdict."""
    out: list[dict[str, Any]] = []
    for feature, ref_values in reference.items():
        current = [row.get(feature) for row in rows]
        kind = feature_kind(ref_values)
        entry: dict[str, Any] = {"feature": feature, "kind": kind}
        if kind == "number":
            ref, cur = _numbers(ref_values), _numbers(current)
        else:
            ref_s = [str(v) for v in ref_values if v is not None]
            cur_s = [str(v) for v in current if v is not None]
        ref_n, cur_n = (len(ref), len(cur)) if kind == "number" else (len(ref_s), len(cur_s))
        entry.update(reference_rows=ref_n, rows=cur_n, missing=len(current) - cur_n)
        if ref_n < thresholds.min_rows or cur_n < thresholds.min_rows:
            entry.update(drifted=None, reason=f"fewer than {thresholds.min_rows} rows to compare")
            out.append(entry)
            continue
        result = numeric_drift(ref, cur) if kind == "number" else categorical_drift(ref_s, cur_s)
        entry.update(result)
        entry["drifted"] = bool(
            entry["psi"] >= thresholds.psi or entry["p_value"] < thresholds.p_value
        )
        out.append(_finite(entry))
    return out


def _finite(entry: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities (a constant column) as None, so the entry is valid JSON."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()
    }
