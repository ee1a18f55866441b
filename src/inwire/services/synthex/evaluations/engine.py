"""Quality and privacy of synthetic data, measured against the real data it imitates.

``evaluate(real, synthetic, schema, holdout=..., target=..., seed=...)`` is pure (polars
frames in, a JSON-ready dict out) and has five parts:

* **quality**: column shapes (KS complement for numbers and datetimes, TV complement for
  categories and booleans) and column-pair trends (correlation similarity for two numbers,
  contingency similarity otherwise); the overall score is the mean of the two, defined like
  SDMetrics' ``QualityReport`` so a benchmark can put both side by side;
* **detection**: a classifier two-sample test: how well gradient-boosted trees tell real
  rows from synthetic ones (cross-validated ROC AUC);
* **ml_utility** (with a ``target``): train on synthetic, test on real ("TSTR") against
  train on real, test on the same real rows ("TRTR");
* **privacy**: distance to closest record (DCR) of synthetic rows compared with a real
  holdout's, nearest-neighbour distance ratio (NNDR), exact copies, a distance-based
  membership-inference attack and an overfitting check.

``real`` is the data the generator learned from; ``holdout`` is real data it never saw.
Metrics that need a holdout say so in ``notes`` when there is none. Large tables are
sampled (seeded by ``seed``) to the caps in ``Limits``, so the cost stops growing with size.
Text and identifier columns carry no comparable distribution: only exact copies use text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from inwire.services.synthex.schema import ColumnType, Schema

#: Version of the report's layout; a reader can tell old reports from new ones.
REPORT_VERSION = 1

NUMERIC_TYPES = frozenset({ColumnType.integer, ColumnType.float, ColumnType.datetime})
CATEGORICAL_TYPES = frozenset({ColumnType.categorical, ColumnType.boolean})
#: Columns that take part in exact-copy checks only.
TEXT_TYPES = frozenset({ColumnType.text})

Progress = Callable[[float, str], None]


class EvaluationError(ValueError):
    """The inputs cannot be evaluated (no rows, no comparable columns, unusable target).

    ``field`` names the input at fault (``target``, ``synthetic``, ``real``), if one is.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Limits:
    """Sample caps and encoding limits; each part samples its own rows (seeded).

    The defaults keep a full evaluation to seconds on a laptop core whatever the table's
    size; sampling error at these sizes is well below the differences worth reading.
    """

    #: Rows of each table used for column shapes and pair trends.
    quality_rows: int = 200_000
    #: Pair trends read at most this many (pairs x rows): wide tables use fewer rows (100
    #: columns: 40,000 rows), never fewer than ``pair_min_rows``.
    pair_cells: int = 200_000_000
    pair_min_rows: int = 5_000
    #: Pairs count in the pair-trends score only when the real data relates them (as
    #: SDMetrics' QualityReport): |Pearson| above this for two numbers...
    pair_correlation_threshold: float = 0.5
    #: ...or Cramér's V above this for any other pair. 0 makes every pair count.
    pair_association_threshold: float = 0.3
    #: Equal-width bins of a number in a mixed pair's contingency table (as SDMetrics).
    pair_bins: int = 10
    #: Most frequent real categories kept per column in pair tables; the rest are "other".
    pair_categories: int = 100
    #: Rows of each table (real and synthetic) the detection classifier sees.
    detection_rows: int = 10_000
    #: Cross-validation folds of the detection classifier.
    detection_folds: int = 3
    #: Training rows of each ML-utility model, and most test rows.
    utility_rows: int = 50_000
    #: Most real rows searched for nearest neighbours (the privacy reference; also the
    #: most synthetic rows a membership attacker's distances are measured to).
    privacy_reference_rows: int = 1_000_000
    #: Most numbers (rows x encoded width) in one reference: bounds memory to ~80 MB.
    privacy_reference_cells: int = 20_000_000
    #: Synthetic and holdout rows whose distances are measured; members/non-members each.
    privacy_query_rows: int = 2_000
    #: Most frequent real categories one-hot encoded per column in the distance space.
    distance_categories: int = 30
    #: Categories a tree model sees per column (native categorical support caps at 255).
    tree_categories: int = 250
    #: CPU threads of models and neighbour search (OpenMP, BLAS). One by default: a job
    #: shares its machine with other workers, and OpenMP threads spinning for a busy core
    #: cost far more than they gain there.
    threads: int = 1
    #: Bins of the numeric distribution charts in the report.
    chart_bins: int = 20
    #: Categories shown per categorical column in the report.
    chart_categories: int = 10


@dataclass(frozen=True)
class _Column:
    name: str
    type: ColumnType
    kind: Literal["numeric", "categorical"]


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)


# -- small helpers -----------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _sample(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` rows of ``df``, drawn without replacement (the whole frame if smaller)."""
    if df.height <= n:
        return df
    return df.sample(n=n, seed=seed, shuffle=False)


def _as_float(series: pl.Series, column_type: ColumnType) -> pl.Series:
    """A numeric or datetime column as Float64 (datetimes in microseconds since 1970, UTC)."""
    dtype = series.dtype
    try:
        if dtype == pl.String and column_type == ColumnType.datetime:
            series = series.str.to_datetime(strict=False)
            dtype = series.dtype
        if dtype == pl.Date:
            series = series.cast(pl.Datetime("us"))
            dtype = series.dtype
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return series.cast(pl.Datetime("us")).to_physical().cast(pl.Float64)
        if isinstance(dtype, pl.Duration) or dtype == pl.Time:
            return series.to_physical().cast(pl.Float64)
        return series.cast(pl.Float64, strict=False)
    except (pl.exceptions.PolarsError, ValueError):
        # Not readable as a number at all: every value counts as missing.
        return pl.Series(series.name, [None] * series.len(), dtype=pl.Float64)


def _normalise(df: pl.DataFrame, columns: Sequence[_Column], text: Sequence[str]) -> pl.DataFrame:
    """The compared columns in one representation: Float64 numbers, String categories."""
    out: list[pl.Series] = []
    for c in columns:
        s = df.get_column(c.name)
        if c.kind == "numeric":
            s = _as_float(s, c.type)
            s = s.fill_nan(None)
        else:
            s = s.cast(pl.String, strict=False)
        out.append(s.alias(c.name))
    out.extend(df.get_column(name).cast(pl.String, strict=False) for name in text)
    return pl.DataFrame(out)


def _plan(
    schema: Schema, tables: dict[str, Collection[str] | None]
) -> tuple[list[_Column], list[str], list[dict[str, str]]]:
    """Compared columns, text columns (exact copies only) and skipped columns with reasons.

    ``tables`` maps each role (real, synthetic, holdout) to its column names, or None.
    """
    columns: list[_Column] = []
    text: list[str] = []
    skipped: list[dict[str, str]] = []
    for spec in schema:
        absent = [
            role for role, names in tables.items() if names is not None and spec.name not in names
        ]
        if absent:
            skipped.append({"column": spec.name, "reason": f"missing in the {absent[0]} data"})
            continue
        if spec.type in NUMERIC_TYPES:
            columns.append(_Column(spec.name, spec.type, "numeric"))
        elif spec.type in CATEGORICAL_TYPES:
            columns.append(_Column(spec.name, spec.type, "categorical"))
        elif spec.type in TEXT_TYPES:
            text.append(spec.name)
            skipped.append(
                {"column": spec.name, "reason": "free text: compared for exact copies only"}
            )
        else:
            skipped.append(
                {"column": spec.name, "reason": "identifier: unique per row, no distribution"}
            )
    return columns, text, skipped


def _codes(series: pl.Series, vocabulary: Sequence[str]) -> np.ndarray:
    """Integer codes: a value's index in ``vocabulary``, ``len`` for others, ``len+1`` null."""
    k = len(vocabulary)
    coded = series.replace_strict(
        list(vocabulary), list(range(k)), default=k, return_dtype=pl.Int64
    )
    coded = pl.select(pl.when(series.is_null()).then(k + 1).otherwise(coded)).to_series()
    return coded.to_numpy().astype(np.int64, copy=False)


def _top_values(series: pl.Series, k: int) -> list[str]:
    """The ``k`` most frequent non-null values (ties broken by value, so stable)."""
    counts = (
        series.alias("value")  # a fixed name: a column may itself be called "n"
        .drop_nulls()
        .value_counts(name="n")
        .sort(["n", "value"], descending=[True, False])
        .head(k)
    )
    return [str(v) for v in counts.get_column("value").to_list()]


def _bins(values: np.ndarray, lo: float, hi: float, n_bins: int) -> np.ndarray:
    """Equal-width bin index in [0, n_bins) on [lo, hi]; values outside go to the end bins."""
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.int64)
    index = np.floor((values - lo) / (hi - lo) * n_bins)
    return np.clip(index, 0, n_bins - 1).astype(np.int64)


# -- column shapes -----------------------------------------------------------------------


def ks_statistic(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs.

    The same number as ``scipy.stats.ks_2samp(...).statistic``, from two sorts and
    two ``searchsorted`` (Kolmogorov 1933, Smirnov 1948).
    """
    r = np.sort(real)
    s = np.sort(synthetic)
    points = np.concatenate([r, s])
    cdf_r = np.searchsorted(r, points, side="right") / r.size
    cdf_s = np.searchsorted(s, points, side="right") / s.size
    return float(np.max(np.abs(cdf_r - cdf_s)))


def _stats(values: np.ndarray, missing: float, column_type: ColumnType) -> dict[str, Any]:
    if values.size == 0:
        return {"missing": missing, "mean": None, "std": None, "min": None, "max": None}
    stats: dict[str, Any] = {
        "missing": missing,
        "mean": _num(values.mean()),
        "std": _num(values.std()),
        "min": _num(values.min()),
        "max": _num(values.max()),
    }
    if column_type == ColumnType.datetime:
        for key in ("mean", "min", "max"):
            stats[key] = _iso(stats[key])
        stats["std"] = None
    return stats


def _iso(microseconds: float | None) -> str | None:
    if microseconds is None:
        return None
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(microseconds))
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _numeric_shape(
    column: _Column, real: pl.Series, synthetic: pl.Series, limits: Limits
) -> dict[str, Any]:
    r = real.drop_nulls().to_numpy()
    s = synthetic.drop_nulls().to_numpy()
    entry: dict[str, Any] = {
        "column": column.name,
        "type": column.type.value,
        "metric": "ks_complement",
        "real": _stats(r, real.null_count() / max(real.len(), 1), column.type),
        "synthetic": _stats(s, synthetic.null_count() / max(synthetic.len(), 1), column.type),
    }
    if r.size == 0:
        entry.update(score=None, note="no values in the real data")
        return entry
    entry["score"] = 0.0 if s.size == 0 else 1.0 - ks_statistic(r, s)
    lo, hi = float(r.min()), float(r.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    n_bins = limits.chart_bins
    edges = np.linspace(lo, hi, n_bins + 1)
    entry["distribution"] = {
        "edges": [float(e) for e in edges],
        "real": _shares(_bins(r, lo, hi, n_bins), n_bins),
        "synthetic": _shares(_bins(s, lo, hi, n_bins), n_bins),
    }
    return entry


def _shares(codes: np.ndarray, n: int) -> list[float]:
    counts = np.bincount(codes, minlength=n)[:n]
    total = codes.size or 1
    return [float(c) / total for c in counts]


def _categorical_shape(
    column: _Column, real: pl.Series, synthetic: pl.Series, limits: Limits
) -> dict[str, Any]:
    # Missing values are a category of their own: a generator that drops them is wrong.
    name = "value"  # a fixed name: a column may itself be called "real" or "synthetic"
    shares_r = real.alias(name).value_counts(normalize=True, name="real")
    shares_s = synthetic.alias(name).value_counts(normalize=True, name="synthetic")
    both = shares_r.join(shares_s, on=name, how="full", coalesce=True, nulls_equal=True)
    both = both.with_columns(pl.col("real", "synthetic").fill_null(0.0))
    tvd = 0.5 * float((both["real"] - both["synthetic"]).abs().sum())
    top = both.filter(pl.col(name).is_not_null()).sort(
        ["real", name], descending=[True, False], nulls_last=True
    )
    shown = top.head(limits.chart_categories)
    labels = [str(v) for v in shown.get_column(name).to_list()]
    real_shares = [float(v) for v in shown["real"].to_list()]
    syn_shares = [float(v) for v in shown["synthetic"].to_list()]
    rest_r = float(top["real"].sum()) - sum(real_shares)
    rest_s = float(top["synthetic"].sum()) - sum(syn_shares)
    if top.height > shown.height:
        labels.append("(other)")
        real_shares.append(max(rest_r, 0.0))
        syn_shares.append(max(rest_s, 0.0))
    missing = both.filter(pl.col(name).is_null())
    miss_r = float(missing["real"].sum()) if missing.height else 0.0
    miss_s = float(missing["synthetic"].sum()) if missing.height else 0.0
    if miss_r or miss_s:
        labels.append("(missing)")
        real_shares.append(miss_r)
        syn_shares.append(miss_s)
    return {
        "column": column.name,
        "type": column.type.value,
        "metric": "tv_complement",
        "score": 1.0 - tvd if real.len() else None,
        "real": {"missing": miss_r, "categories": int(shares_r.drop_nulls().height)},
        "synthetic": {"missing": miss_s, "categories": int(shares_s.drop_nulls().height)},
        "distribution": {"categories": labels, "real": real_shares, "synthetic": syn_shares},
    }


def column_shapes(
    real: pl.DataFrame, synthetic: pl.DataFrame, columns: Sequence[_Column], limits: Limits
) -> dict[str, Any]:
    """Per-column similarity of the marginal distributions and their mean."""
    entries = []
    for c in columns:
        shape = _numeric_shape if c.kind == "numeric" else _categorical_shape
        entries.append(shape(c, real.get_column(c.name), synthetic.get_column(c.name), limits))
    return {"score": _mean([e["score"] for e in entries]), "columns": entries}


# -- column-pair trends ------------------------------------------------------------------


def pairwise_pearson(matrix: np.ndarray) -> np.ndarray:
    """Pearson correlations of every pair of columns, each on the rows where both are present.

    NaN marks missing values; a pair with a constant column (or < 2 shared rows) is NaN.
    Vectorised: sums over the pairwise-complete rows come from masked matrix products.
    """
    present = ~np.isnan(matrix)
    filled = np.where(present, matrix, 0.0)
    count = np.maximum(present.sum(axis=0), 1)
    mean = filled.sum(axis=0) / count
    std = np.sqrt((np.where(present, matrix - mean, 0.0) ** 2).sum(axis=0) / count)
    # Standardise first so the sums below do not lose precision to large magnitudes.
    scaled = np.where(present, (filled - mean) / np.where(std > 0, std, 1.0), 0.0)
    m = present.astype(np.float64)
    n = m.T @ m
    sx = scaled.T @ m  # sx[i, j]: sum of column i over rows where i and j are present
    sxx = (scaled**2).T @ m
    sxy = scaled.T @ scaled
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var_x = sxx - sx**2 / n
        var_y = var_x.T
        r = cov / np.sqrt(var_x * var_y)
    r[(n < 2) | (var_x <= 1e-12 * n) | (var_y <= 1e-12 * n)] = np.nan
    clipped: np.ndarray = np.clip(r, -1.0, 1.0)
    return clipped


def _pair_codes(
    real: pl.DataFrame, synthetic: pl.DataFrame, column: _Column, limits: Limits
) -> tuple[np.ndarray, np.ndarray, int]:
    """Both tables' column as small integer codes for contingency tables, and how many."""
    r = real.get_column(column.name)
    s = synthetic.get_column(column.name)
    if column.kind == "numeric":
        values = r.drop_nulls().to_numpy()
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        n = limits.pair_bins

        def coded(series: pl.Series) -> np.ndarray:
            array = series.to_numpy().astype(np.float64)
            codes = _bins(np.nan_to_num(array), lo, hi, n)
            return np.where(np.isnan(array), n, codes)

        return coded(r), coded(s), n + 1
    vocabulary = _top_values(r, limits.pair_categories)
    return _codes(r, vocabulary), _codes(s, vocabulary), len(vocabulary) + 2


def contingency_similarity(
    real_a: np.ndarray, real_b: np.ndarray, syn_a: np.ndarray, syn_b: np.ndarray, k_b: int
) -> float:
    """1 - total variation distance between the two joint distributions of code pairs."""
    joint_r = real_a * k_b + real_b
    joint_s = syn_a * k_b + syn_b
    size = int(max(joint_r.max(initial=0), joint_s.max(initial=0))) + 1
    p_r = np.bincount(joint_r, minlength=size) / max(joint_r.size, 1)
    p_s = np.bincount(joint_s, minlength=size) / max(joint_s.size, 1)
    return float(1.0 - 0.5 * np.abs(p_r - p_s).sum())


def column_pair_trends(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    columns: Sequence[_Column],
    limits: Limits,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-pair similarity of relationships between two columns, and their mean."""
    n_pairs = len(columns) * (len(columns) - 1) // 2
    rows = max(limits.pair_min_rows, limits.pair_cells // max(n_pairs, 1))
    # One seed for both: equal tables give equal samples (identical data still scores 1).
    real, synthetic = _sample(real, rows, seed + 4), _sample(synthetic, rows, seed + 4)
    numeric = [c for c in columns if c.kind == "numeric"]
    position = {c.name: i for i, c in enumerate(numeric)}
    if len(numeric) >= 2:
        corr_r = pairwise_pearson(real.select(c.name for c in numeric).to_numpy().astype(float))
        corr_s = pairwise_pearson(
            synthetic.select(c.name for c in numeric).to_numpy().astype(float)
        )
    codes = {c.name: _pair_codes(real, synthetic, c, limits) for c in columns}
    pairs: list[dict[str, Any]] = []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            if a.kind == "numeric" and b.kind == "numeric":
                rho_r = corr_r[position[a.name], position[b.name]]
                rho_s = corr_s[position[a.name], position[b.name]]
                entry: dict[str, Any] = {
                    "columns": [a.name, b.name],
                    "metric": "correlation_similarity",
                    "real": _num(rho_r),
                    "synthetic": _num(rho_s),
                }
                if math.isnan(rho_r):
                    entry.update(score=None, note="no correlation in the real data (constant)")
                else:
                    # A constant synthetic column has no linear trend: correlation 0.
                    synthetic_rho = 0.0 if math.isnan(rho_s) else float(rho_s)
                    entry["score"] = 1.0 - abs(float(rho_r) - synthetic_rho) / 2.0
                entry["contributes"] = bool(
                    entry["score"] is not None
                    and abs(float(rho_r)) > limits.pair_correlation_threshold
                )
            else:
                ra, sa, ka = codes[a.name]
                rb, sb, kb = codes[b.name]
                association = cramers_v(ra, rb, ka, kb)
                entry = {
                    "columns": [a.name, b.name],
                    "metric": "contingency_similarity",
                    "score": contingency_similarity(ra, rb, sa, sb, kb),
                    "real_association": association,
                    "contributes": association > limits.pair_association_threshold,
                }
            pairs.append(entry)
    contributing = [p["score"] for p in pairs if p["contributes"]]
    return {
        "score": _mean(contributing),
        "contributing_pairs": len(contributing),
        "score_all_pairs": _mean([p["score"] for p in pairs]),
        "rows": {"real": real.height, "synthetic": synthetic.height},
        "pairs": pairs,
    }


def cramers_v(a: np.ndarray, b: np.ndarray, k_a: int, k_b: int) -> float:
    """Cramér's V of two coded columns: sqrt(chi2 / (n * (min(rows, cols) - 1))) over the
    contingency table's non-empty rows and columns (Cramér 1946); 0 when either is constant.
    """
    table = np.bincount(a * k_b + b, minlength=k_a * k_b).reshape(k_a, k_b).astype(float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    if min(table.shape) < 2 or n == 0:
        return 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (min(table.shape) - 1)))


# -- features for tree models ------------------------------------------------------------


def _tree_matrix(
    frames: Sequence[pl.DataFrame],
    columns: Sequence[_Column],
    vocabulary_from: pl.DataFrame,
    limits: Limits,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Feature matrices for histogram gradient boosting, and which features are categorical.

    Numbers stay numbers (NaN when missing, handled natively); categories become codes of
    the ``tree_categories`` most frequent values of ``vocabulary_from`` (others share one).
    """
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    categorical: list[bool] = []
    for c in columns:
        if c.kind == "numeric":
            for block, df in zip(blocks, frames, strict=True):
                block.append(df.get_column(c.name).to_numpy().astype(np.float64))
            categorical.append(False)
            continue
        vocabulary = _top_values(vocabulary_from.get_column(c.name), limits.tree_categories)
        k = len(vocabulary)
        for block, df in zip(blocks, frames, strict=True):
            codes = _codes(df.get_column(c.name), vocabulary).astype(np.float64)
            codes[codes == k + 1] = np.nan
            block.append(codes)
        categorical.append(True)
    matrices = [
        np.column_stack(b) if b else np.zeros((df.height, 0))
        for b, df in zip(blocks, frames, strict=True)
    ]
    return matrices, np.array(categorical, dtype=bool)


def _boosting_params(categorical: np.ndarray, seed: int) -> dict[str, Any]:
    return {
        "max_iter": 100,
        "learning_rate": 0.1,
        "categorical_features": categorical if categorical.any() else None,
        "early_stopping": False,
        "random_state": seed,
    }


# -- detection ---------------------------------------------------------------------------


def detection(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    columns: Sequence[_Column],
    limits: Limits,
    seed: int,
) -> dict[str, Any]:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample
    tests"): cross-validated ROC AUC of gradient-boosted trees separating real from synthetic.

    Score = 1 - max(0, 2·AUC - 1): 1 when the classifier does no better than chance
    (AUC ≤ 0.5), 0 when it separates the two perfectly. Equal rows of each are drawn.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = min(real.height, synthetic.height, limits.detection_rows)
    base = {"method": "hist_gradient_boosting", "folds": limits.detection_folds, "rows": n}
    if n < 10 * limits.detection_folds or not columns:
        return {**base, "auc": None, "score": None, "note": "too few rows or columns to test"}
    r = _sample(real, n, seed + 11)
    s = _sample(synthetic, n, seed + 12)
    both = pl.concat([r, s], how="vertical_relaxed")
    (x,), categorical = _tree_matrix([both], columns, both, limits)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    model = HistGradientBoostingClassifier(**_boosting_params(categorical, seed))
    folds = StratifiedKFold(n_splits=limits.detection_folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, scores))
    return {**base, "auc": auc, "score": 1.0 - max(0.0, 2.0 * auc - 1.0)}


# -- ML utility --------------------------------------------------------------------------


def _classification_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(x)
    scores: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "roc_auc": None,
    }
    labels = np.unique(y)
    if labels.size < 2:
        return scores
    known = {label: i for i, label in enumerate(model.classes_)}
    proba = model.predict_proba(x)
    # Classes the model never saw get probability 0 (it cannot predict them).
    p = np.zeros((x.shape[0], labels.size))
    for j, label in enumerate(labels):
        if label in known:
            p[:, j] = proba[:, known[label]]
    if labels.size == 2:
        scores["roc_auc"] = float(roc_auc_score(y == labels[1], p[:, 1]))
    else:
        totals = p.sum(axis=1, keepdims=True)
        p = np.where(totals > 0, p / np.where(totals > 0, totals, 1), 1.0 / labels.size)
        scores["roc_auc"] = float(
            roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
        )
    return scores


def _regression_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import mean_absolute_error, r2_score

    predicted = model.predict(x)
    return {
        "r2": _num(r2_score(y, predicted)),
        "mae": _num(mean_absolute_error(y, predicted)),
    }


def ml_utility(
    train_real: pl.DataFrame,
    synthetic: pl.DataFrame,
    test: pl.DataFrame,
    columns: Sequence[_Column],
    target: _Column,
    *,
    test_source: str,
    limits: Limits,
    seed: int,
) -> dict[str, Any]:
    """Train on synthetic, test on real (TSTR) against train on real, test on real (TRTR).

    The same model (histogram gradient boosting) and the same real test rows for both; the
    ratio of the headline metrics (macro F1 for classification, R² for regression) says how
    much predictive value survives synthesis (Esteban et al. 2017; Jordon et al. 2021).
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    task = "classification" if target.kind == "categorical" else "regression"
    features = [c for c in columns if c.name != target.name]

    def labelled(df: pl.DataFrame, n: int, salt: int) -> pl.DataFrame:
        return _sample(df.filter(pl.col(target.name).is_not_null()), n, seed + salt)

    real_train = labelled(train_real, limits.utility_rows, 21)
    syn_train = labelled(synthetic, limits.utility_rows, 22)
    test_rows = labelled(test, limits.utility_rows, 23)
    headline = "f1_macro" if task == "classification" else "r2"
    result: dict[str, Any] = {
        "target": target.name,
        "task": task,
        "model": "hist_gradient_boosting",
        "metric": headline,
        "test_source": test_source,
        "rows": {
            "real_train": real_train.height,
            "synthetic_train": syn_train.height,
            "test": test_rows.height,
        },
    }
    if test_rows.height < 2 or real_train.height < 2:
        return {**result, "real": None, "synthetic": None, "ratio": None,
                "note": "too few labelled real rows"}  # fmt: skip
    (x_real, x_syn, x_test), categorical = _tree_matrix(
        [real_train, syn_train, test_rows], features, real_train, limits
    )

    def labels(df: pl.DataFrame) -> np.ndarray:
        series = df.get_column(target.name)
        return series.to_numpy() if task == "regression" else series.to_numpy().astype(str)

    y_real, y_syn, y_test = labels(real_train), labels(syn_train), labels(test_rows)
    scores = _classification_scores if task == "classification" else _regression_scores

    def scored(x: np.ndarray, y: np.ndarray) -> dict[str, float | None] | None:
        if y.size < 2:
            return None
        if x.shape[1] == 0 or (task == "classification" and np.unique(y).size < 2):
            # Nothing to learn from (no features, or one class): predict the majority/mean.
            dummy = DummyClassifier() if task == "classification" else DummyRegressor()
            blank = np.zeros((y.size, 1))
            return scores(dummy.fit(blank, y), np.zeros((x_test.shape[0], 1)), y_test)
        params = _boosting_params(categorical, seed)
        if task == "classification":
            model: Any = HistGradientBoostingClassifier(**params).fit(x, y)
        else:
            model = HistGradientBoostingRegressor(**params).fit(x, y)
        return scores(model, x_test, y_test)

    real_scores = scored(x_real, y_real)
    syn_scores = scored(x_syn, y_syn)
    ratio = None
    if real_scores and syn_scores:
        a, b = real_scores.get(headline), syn_scores.get(headline)
        if a is not None and b is not None and a > 0:
            ratio = b / a
    return {**result, "real": real_scores, "synthetic": syn_scores, "ratio": ratio}


# -- privacy -----------------------------------------------------------------------------


class DistanceSpace:
    """Rows as points whose Euclidean distance is a Gower-like mixed-type distance.

    Each number is divided by its range in the real data (as Gower 1971) and each category
    one-hot encoded with weight 1/√2, so a different category adds exactly 1 to the squared
    distance, like a number a whole range away. A missing number is placed at the median
    with an indicator that adds 1 when only one side is missing. The distance is the root
    mean square over columns, 0 for equal rows and about 1 for rows unlike in every column.
    Only the ``distance_categories`` most frequent real values get their own slot; rarer
    values share one (they look alike, so distances err on the close, cautious side).
    Points are float32 (half the memory); distances are computed in float64.
    """

    def __init__(
        self,
        fit_on: pl.DataFrame,
        columns: Sequence[_Column],
        frames: Sequence[pl.DataFrame],
        limits: Limits,
    ) -> None:
        self.columns = list(columns)
        self.numeric: dict[str, tuple[float, float, float, bool]] = {}
        self.vocabulary: dict[str, list[str]] = {}
        for c in self.columns:
            values = fit_on.get_column(c.name).drop_nulls()
            if c.kind == "numeric":
                array = values.to_numpy().astype(np.float64)
                lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
                median = float(np.median(array)) if array.size else 0.0
                has_nulls = any(df.get_column(c.name).null_count() for df in frames)
                self.numeric[c.name] = (lo, (hi - lo) or 1.0, median, has_nulls)
            else:
                self.vocabulary[c.name] = _top_values(values, limits.distance_categories)

    @property
    def width(self) -> int:
        """How many numbers encode one row."""
        numbers = sum(2 if has_nulls else 1 for *_, has_nulls in self.numeric.values())
        return numbers + sum(len(v) + 2 for v in self.vocabulary.values())

    def transform(self, df: pl.DataFrame) -> np.ndarray:
        """The rows of ``df`` as points (one row per row)."""
        points = np.zeros((df.height, self.width), dtype=np.float32)
        at = 0
        for c in self.columns:
            s = df.get_column(c.name)
            if c.kind == "numeric":
                lo, scale, median, has_nulls = self.numeric[c.name]
                values = s.to_numpy().astype(np.float64)
                missing = np.isnan(values)
                points[:, at] = (np.where(missing, median, values) - lo) / scale
                at += 1
                if has_nulls:
                    points[:, at] = missing
                    at += 1
            else:
                vocabulary = self.vocabulary[c.name]
                points[np.arange(df.height), at + _codes(s, vocabulary)] = math.sqrt(0.5)
                at += len(vocabulary) + 2
        points /= math.sqrt(max(len(self.columns), 1))
        return points


def _neighbours(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Distances from each query row to its ``k`` nearest reference rows, nearest first.

    Exact search (scikit-learn picks a k-d tree for few dimensions, else blocked brute
    force); distances below 1e-6 are rounding noise of equal rows and become 0.
    """
    from sklearn.neighbors import NearestNeighbors

    k = min(k, reference.shape[0])
    index = NearestNeighbors(n_neighbors=k).fit(reference)
    distances = np.asarray(index.kneighbors(queries, return_distance=True)[0], dtype=np.float64)
    distances[distances < 1e-6] = 0.0
    return distances


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return dict.fromkeys(("min", "p5", "p25", "median", "mean", "p95", "zero_share"))
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.95])
    return {
        "min": _num(values.min()),
        "p5": _num(q[0]),
        "p25": _num(q[1]),
        "median": _num(q[2]),
        "mean": _num(values.mean()),
        "p95": _num(q[3]),
        "zero_share": float(np.mean(values == 0)),
    }


def _ratio(distances: np.ndarray) -> np.ndarray:
    """Nearest / second-nearest distance; 1 when both are 0 (duplicates: nothing stands out)."""
    if distances.shape[1] < 2:
        return np.ones(distances.shape[0])
    d1, d2 = distances[:, 0], distances[:, 1]
    return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)


def _histogram(series: dict[str, np.ndarray], n_bins: int) -> dict[str, Any]:
    """Shares of each series in equal bins from 0 to the largest 99th percentile."""
    values = [v for v in series.values() if v.size]
    top = max((float(np.quantile(v, 0.99)) for v in values), default=1.0)
    top = top if top > 0 else 1.0
    out: dict[str, Any] = {"edges": [float(e) for e in np.linspace(0.0, top, n_bins + 1)]}
    for name, v in series.items():
        out[name] = _shares(_bins(v, 0.0, top, n_bins), n_bins)
    return out


def _against_holdout(synthetic: np.ndarray, holdout: np.ndarray) -> dict[str, Any]:
    """How the synthetic rows' values compare with the holdout's, at its 5th percentile.

    Rows drawn afresh from the real distribution fall below the holdout's 5th percentile
    as often as the holdout itself does (``expected_close_share``, 5% up to ties); a
    synthetic share well above it means synthetic rows hug particular real records.
    """
    p5 = float(np.quantile(holdout, 0.05))
    return {
        "holdout_p5": p5,
        "close_share": float(np.mean(synthetic < p5)),
        "expected_close_share": float(np.mean(holdout < p5)),
    }


def exact_copies(
    real: pl.DataFrame, synthetic: pl.DataFrame, holdout: pl.DataFrame | None, names: list[str]
) -> dict[str, Any]:
    """Share of synthetic rows equal to some real row in every compared column (all rows).

    The holdout's share of rows that also appear in the real data is the natural rate of
    repeated rows, the baseline to compare with.
    """
    reference = real.select(names).unique()

    def share(df: pl.DataFrame) -> float:
        hits = df.select(names).join(reference, on=names, how="semi", nulls_equal=True).height
        return hits / max(df.height, 1)

    rate = share(synthetic)
    return {
        "rate": rate,
        "rows": round(rate * synthetic.height),
        "columns": len(names),
        "holdout_rate": share(holdout) if holdout is not None else None,
    }


def privacy(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    holdout: pl.DataFrame | None,
    columns: Sequence[_Column],
    text: Sequence[str],
    limits: Limits,
    seed: int,
) -> dict[str, Any]:
    """Distance-based privacy metrics; see ``DistanceSpace`` for the distance.

    Distances are measured from samples of ``privacy_query_rows`` synthetic (and holdout)
    rows to all real rows, up to ``privacy_reference_rows`` rows and
    ``privacy_reference_cells`` numbers: the closest record of a copied row is found
    whenever the real table fits in the reference, which is why only queries are sampled.
    """
    notes: list[str] = []
    result: dict[str, Any] = {
        "exact_copies": exact_copies(
            real, synthetic, holdout, [c.name for c in columns] + list(text)
        ),
        "distance": None,
        "dcr": None,
        "nndr": None,
        "membership": None,
        "overfitting": None,
        "notes": notes,
    }
    if not columns:
        notes.append("no numeric or categorical columns: distances not computed")
        return result
    frames = [real, synthetic] + ([holdout] if holdout is not None else [])
    space = DistanceSpace(_sample(real, limits.quality_rows, seed + 30), columns, frames, limits)
    reference_rows = max(
        1, min(limits.privacy_reference_rows, limits.privacy_reference_cells // space.width)
    )
    train = _sample(real, reference_rows, seed + 31)
    reference = space.transform(train)
    syn_queries = space.transform(_sample(synthetic, limits.privacy_query_rows, seed + 32))
    syn_nn = _neighbours(reference, syn_queries, 2)
    syn_dcr, syn_nndr = syn_nn[:, 0], _ratio(syn_nn)
    result["distance"] = {
        "metric": "gower_euclidean",
        "width": space.width,
        "reference_rows": train.height,
        "synthetic_rows": syn_queries.shape[0],
        "holdout_rows": None,
    }
    if train.height < real.height:
        notes.append(
            f"distances are to {train.height:,} of the {real.height:,} real rows (the "
            "reference cap): a copy of a row outside them is not seen as close, exact "
            "copies are counted over all rows"
        )
    dcr: dict[str, Any] = {"synthetic": _summary(syn_dcr), "holdout": None}
    nndr: dict[str, Any] = {"synthetic": _summary(syn_nndr), "holdout": None}
    result.update(dcr=dcr, nndr=nndr)
    if holdout is None or holdout.height < 2:
        notes.append(
            "no holdout (real rows the generator did not see): DCR and NNDR have no "
            "baseline; membership inference and the overfitting check need one"
        )
        dcr["histogram"] = _histogram({"synthetic": syn_dcr}, limits.chart_bins)
        return result

    hold_queries = space.transform(_sample(holdout, limits.privacy_query_rows, seed + 33))
    result["distance"]["holdout_rows"] = hold_queries.shape[0]
    hold_nn = _neighbours(reference, hold_queries, 2)
    hold_dcr, hold_nndr = hold_nn[:, 0], _ratio(hold_nn)
    del reference
    dcr.update(holdout=_summary(hold_dcr), **_against_holdout(syn_dcr, hold_dcr))
    dcr["histogram"] = _histogram({"synthetic": syn_dcr, "holdout": hold_dcr}, limits.chart_bins)
    nndr.update(holdout=_summary(hold_nndr), **_against_holdout(syn_nndr, hold_nndr))
    result["membership"] = membership_attack(
        real, holdout, space.transform(_sample(synthetic, reference_rows, seed + 43)),
        space, limits, seed,
    )  # fmt: skip
    result["overfitting"] = overfitting(
        syn_dcr, train.height, holdout, syn_queries, space, reference_rows, seed
    )
    return result


def membership_attack(
    real: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic_points: np.ndarray,
    space: DistanceSpace,
    limits: Limits,
    seed: int,
) -> dict[str, Any]:
    """A distance-based membership-inference attack (after Hilprecht et al. 2019, "Monte
    Carlo and reconstruction membership inference attacks"; Chen et al. 2020, "GAN-Leaks"):
    holding the synthetic data and a real record, guess "it was in the training data" the
    closer the record lies to a synthetic row.

    AUC of that guess over equal numbers of training members and holdout non-members: 0.5
    is chance. Risk = max(0, 2·AUC - 1), from 0 (no better than chance) to 1 (certain).
    """
    from sklearn.metrics import roc_auc_score

    m = min(real.height, holdout.height, limits.privacy_query_rows)
    members = space.transform(_sample(real, m, seed + 41))
    non_members = space.transform(_sample(holdout, m, seed + 42))
    d_members = _neighbours(synthetic_points, members, 1)[:, 0]
    d_non = _neighbours(synthetic_points, non_members, 1)[:, 0]
    y = np.concatenate([np.ones(m), np.zeros(m)])
    auc = float(roc_auc_score(y, -np.concatenate([d_members, d_non])))
    return {
        "attack": "distance_to_closest_synthetic",
        "members": m,
        "non_members": m,
        "synthetic_rows": synthetic_points.shape[0],
        "auc": auc,
        "risk": max(0.0, 2.0 * auc - 1.0),
    }


def overfitting(
    syn_to_train: np.ndarray,
    train_rows: int,
    holdout: pl.DataFrame,
    synthetic_points: np.ndarray,
    space: DistanceSpace,
    max_rows: int,
    seed: int,
) -> dict[str, Any]:
    """Share of synthetic rows whose closest real record is a training row, not a holdout one.

    For a row drawn afresh from the real distribution, every training or holdout record is
    equally likely to be its nearest (exchangeability), so the share expected is
    ``train / (train + holdout)`` (ties count half). Score = min(1, (1 - share) /
    (1 - expected)): 1 at or below the expected share, 0 when every synthetic row sits
    closer to training rows.
    """
    hold = _sample(holdout, max_rows, seed + 52)
    d_hold = _neighbours(space.transform(hold), synthetic_points, 1)[:, 0]
    closer, tied = syn_to_train < d_hold, syn_to_train == d_hold
    share = float(np.mean(closer) + 0.5 * np.mean(tied))
    expected = train_rows / (train_rows + hold.height)
    return {
        "train_rows": train_rows,
        "holdout_rows": hold.height,
        "closer_to_train_share": share,
        "expected_share": expected,
        "score": min(1.0, max(0.0, (1.0 - share) / (1.0 - expected))),
    }


# -- the report --------------------------------------------------------------------------


def evaluate(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    *,
    holdout: pl.DataFrame | None = None,
    target: str | None = None,
    seed: int = 0,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compare ``synthetic`` with ``real`` (described by ``schema``); a JSON-ready report.

    ``holdout`` is real data the generator never saw (the privacy baseline and the ML
    utility test set). ``target`` names the column ML utility predicts. ``seed`` fixes every
    sample and model, so the same inputs give the same report (timings aside).
    Raises ``EvaluationError`` for inputs that cannot be compared.
    """
    limits = limits or Limits()
    # Load scikit-learn's native libraries first: a thread limit applies to loaded ones only.
    import sklearn.ensemble
    import sklearn.neighbors  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=limits.threads):
        return _evaluate(real, synthetic, schema, holdout, target, seed, limits, progress)


def _evaluate(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    holdout: pl.DataFrame | None,
    target: str | None,
    seed: int,
    limits: Limits,
    progress: Progress | None,
) -> dict[str, Any]:
    report_progress = progress or (lambda _f, _m: None)
    timer = _Timer()
    if real.height == 0:
        raise EvaluationError("The real data has no rows", field="real")
    if synthetic.height == 0:
        raise EvaluationError("The synthetic data has no rows", field="synthetic")
    columns, text, skipped, target_column = _checked_plan(
        schema,
        real.columns,
        synthetic.columns,
        holdout.columns if holdout is not None else None,
        target,
    )

    started = time.perf_counter()
    real_n = _normalise(real, columns, text)
    syn_n = _normalise(synthetic, columns, text)
    hold_n = _normalise(holdout, columns, text) if holdout is not None else None
    timer.measure("prepare", started)

    report_progress(0.05, "column shapes")
    started = time.perf_counter()
    # One seed for both: equal tables give equal samples (identical data still scores 1).
    real_q = _sample(real_n, limits.quality_rows, seed + 1)
    syn_q = _sample(syn_n, limits.quality_rows, seed + 1)
    shapes = column_shapes(real_q, syn_q, columns, limits)
    timer.measure("column_shapes", started)

    report_progress(0.2, "column-pair trends")
    started = time.perf_counter()
    trends = column_pair_trends(real_q, syn_q, columns, limits, seed)
    timer.measure("column_pair_trends", started)
    parts = [s for s in (shapes["score"], trends["score"]) if s is not None]
    quality_score = float(np.mean(parts)) if parts else None

    report_progress(0.35, "detection")
    started = time.perf_counter()
    detected = detection(real_n, syn_n, columns, limits, seed)
    timer.measure("detection", started)

    utility = None
    if target_column is not None:
        report_progress(0.55, "ML utility")
        started = time.perf_counter()
        if hold_n is not None and hold_n.height >= 2:
            train, test, source = real_n, hold_n, "holdout"
        else:
            shuffled = real_n.sample(fraction=1.0, seed=seed + 3, shuffle=True)
            cut = max(1, int(shuffled.height * 0.8))
            # The generator saw these test rows: utility may read a little optimistic.
            train, test, source = shuffled[:cut], shuffled[cut:], "split_of_real"
        utility = ml_utility(
            train, syn_n, test, columns, target_column,
            test_source=source, limits=limits, seed=seed,
        )  # fmt: skip
        timer.measure("ml_utility", started)

    report_progress(0.75, "privacy")
    started = time.perf_counter()
    private = privacy(real_n, syn_n, hold_n, columns, text, limits, seed)
    timer.measure("privacy", started)
    report_progress(1.0, "done")

    return {
        "version": REPORT_VERSION,
        "seed": seed,
        "rows": {
            "real": real.height,
            "synthetic": synthetic.height,
            "holdout": holdout.height if holdout is not None else None,
        },
        "columns": {
            "compared": [{"column": c.name, "type": c.type.value} for c in columns],
            "skipped": skipped,
        },
        "target": target,
        "summary": {
            "quality": quality_score,
            "column_shapes": shapes["score"],
            "column_pair_trends": trends["score"],
            "detection": detected["score"],
            "ml_utility_ratio": utility["ratio"] if utility else None,
            "exact_copy_rate": private["exact_copies"]["rate"],
            "dcr_close_share": (private["dcr"] or {}).get("close_share"),
            "membership_risk": (private["membership"] or {}).get("risk"),
        },
        "quality": {
            "score": quality_score,
            "column_shapes": shapes,
            "column_pair_trends": trends,
        },
        "detection": detected,
        "ml_utility": utility,
        "privacy": private,
        "limits": asdict(limits),
        "timings": timer.timings,
    }


def check_inputs(
    schema: Schema,
    synthetic_columns: Collection[str],
    holdout_columns: Collection[str] | None = None,
    target: str | None = None,
) -> None:
    """Raise ``EvaluationError`` now for inputs ``evaluate`` would refuse (no comparable
    column, an unusable target), from column names alone: a request checks before queuing."""
    real_columns = [c.name for c in schema]
    _checked_plan(schema, real_columns, synthetic_columns, holdout_columns, target)


def _checked_plan(
    schema: Schema,
    real_columns: Collection[str],
    synthetic_columns: Collection[str],
    holdout_columns: Collection[str] | None,
    target: str | None,
) -> tuple[list[_Column], list[str], list[dict[str, str]], _Column | None]:
    columns, text, skipped = _plan(
        schema,
        {"real": set(real_columns), "synthetic": set(synthetic_columns), "holdout": (
            set(holdout_columns) if holdout_columns is not None else None
        )},
    )  # fmt: skip
    if not columns and not text:
        raise EvaluationError(
            "No column of the real data's schema can be compared with the synthetic data "
            "(none of the same name, or only identifiers)",
            field="synthetic",
        )
    return columns, text, skipped, _target(target, schema, columns, skipped)


def _target(
    target: str | None,
    schema: Schema,
    columns: Sequence[_Column],
    skipped: Sequence[dict[str, str]],
) -> _Column | None:
    """The ML-utility target's column; EvaluationError says why a name cannot be one."""
    if target is None:
        return None
    for c in columns:
        if c.name == target:
            if c.type == ColumnType.datetime:
                raise EvaluationError(
                    f"Target {target!r} is a datetime; pick a numeric, categorical or "
                    "boolean column",
                    field="target",
                )
            return c
    for s in skipped:
        if s["column"] == target:
            raise EvaluationError(
                f"Target {target!r} cannot be predicted: {s['reason']}", field="target"
            )
    known = ", ".join(c.name for c in schema)
    raise EvaluationError(
        f"Target {target!r} is not a column of the schema ({known})", field="target"
    )
