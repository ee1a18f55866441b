"""The profile of a table: what each column holds and how columns relate, as JSON.

``profile(data, schema)`` is pure (no I/O) and fast: the work is a few polars queries, each
computing many aggregations of every column in one parallel pass over the data:

1. counts, missing values, distinct values, moments, quantiles, string lengths, datetime
   ranges — over every row, exactly;
2. histograms (edges chosen from pass 1), top values and Pearson correlations of every
   numeric pair — over every row, exactly;
3. the expensive or row-by-row pieces — Spearman (ranks), Cramér's V, the correlation
   ratio, value patterns and PII detection — on a uniform random sample of
   ``sample_rows`` rows when the table is larger (the profile's ``sample`` says so).

Duplicate rows are counted exactly: rows are hashed, and only when the hashes show
duplicates are the rows themselves compared.

Missing means null, or NaN in a float column (NaN is reported separately too). Infinite
floats are counted and left out of moments, quantiles and histograms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from inwire.services.synthex.schema import PII_SEMANTICS, ColumnSpec, ColumnType, Schema

#: Version of the profile's JSON layout; bump when a field changes meaning.
PROFILE_FORMAT = 1

Kind = Literal["numeric", "boolean", "datetime", "text", "other"]

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p1", 0.01),
    ("p5", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
)


@dataclass(frozen=True)
class ProfileOptions:
    """How much a profile computes and when it raises alerts."""

    #: Rows of the uniform sample used for Spearman, Cramér's V, η, patterns and PII.
    sample_rows: int = 200_000
    #: Seed of that sample (the same table and seed give the same profile).
    seed: int = 0
    #: Bins of each histogram.
    bins: int = 20
    #: Most frequent values listed per column.
    top_values: int = 10
    #: Most columns of each kind (numeric, categorical) in the correlation matrices.
    max_correlation_columns: int = 30
    #: Categories kept per column for Cramér's V and η (the rest are merged as "other").
    max_levels: int = 50
    #: Rows of the sample whose values are read one by one for patterns and PII detection.
    pattern_rows: int = 20_000
    #: Most patterns listed per text column.
    top_patterns: int = 5
    #: Distinct values above which a categorical column is "high cardinality".
    high_cardinality: int = 50
    #: Absolute skewness above which a numeric column is "skewed".
    skew: float = 3.0
    #: Imbalance (1 - normalised entropy) above which a categorical column is "imbalanced".
    imbalance: float = 0.5
    #: Share of missing values from which a column has "many missing" values.
    missing_share: float = 0.2
    #: Share of zeros from which a numeric column gets a "zeros" note.
    zeros_share: float = 0.5
    #: Association strength (|r|, V, η) from which a pair is "highly correlated".
    high_correlation: float = 0.9
    #: Rows below which "likely identifier" is not claimed (every small table is unique).
    identifier_min_rows: int = 20


# -- types -------------------------------------------------------------------------------------


def _kind(dtype: pl.DataType) -> Kind:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype.is_numeric():
        return "numeric"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    return "other"


def _specs(schema: Schema, dtypes: dict[str, pl.DataType]) -> list[ColumnSpec]:
    """The schema in the data's column order; a column the schema lacks gets one from its
    storage type (a profile describes the data as it is)."""
    from inwire.services.synthex.data.infer import schema_from_dtypes

    declared = {c.name: c for c in schema}
    missing = {n: t for n, t in dtypes.items() if n not in declared}
    inferred = {c.name: c for c in schema_from_dtypes(missing)}
    return [declared.get(name) or inferred[name] for name in dtypes]


@dataclass
class _Column:
    index: int
    spec: ColumnSpec
    dtype: pl.DataType
    kind: Kind

    @property
    def name(self) -> str:
        return self.spec.name

    def key(self, stat: str) -> str:
        return f"{self.index}\x1f{stat}"

    @property
    def col(self) -> pl.Expr:
        return pl.col(self.name)

    @property
    def is_float(self) -> bool:
        return self.dtype.is_float()

    @property
    def values(self) -> pl.Expr:
        """The column's usable values: NaN as null; for numbers, infinities as null."""
        c = self.col
        if self.kind == "numeric" and not self.dtype.is_integer():
            c = c.cast(pl.Float64)
            return pl.when(c.is_finite()).then(c)
        if self.kind == "datetime":
            return c.dt.epoch("ms")
        if self.kind == "text":
            return c.cast(pl.String)
        return c


# -- JSON helpers --------------------------------------------------------------------------------


def _num(value: Any) -> float | int | None:
    """A JSON-safe number (None for NaN, infinity or missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


#: Longest text kept of one value (a top value): keeps a stored profile small.
VALUE_CHARS = 200


def _json_value(value: Any) -> Any:
    """A value of the data (a top value) as JSON: numbers, strings, booleans, ISO dates."""
    if isinstance(value, str):
        return value if len(value) <= VALUE_CHARS else value[: VALUE_CHARS - 1] + "…"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _iso(epoch_ms: float | None, *, day: bool = False) -> str | None:
    """Milliseconds since 1970 as ISO 8601 (a date alone for ``day``)."""
    if epoch_ms is None or not math.isfinite(epoch_ms):
        return None
    moment = datetime(1970, 1, 1) + timedelta(milliseconds=float(epoch_ms))
    return moment.date().isoformat() if day else moment.isoformat()


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


# -- pass 1: counts, moments, quantiles ------------------------------------------------------


def _first_pass(c: _Column) -> list[pl.Expr]:
    col, v = c.col, c.values
    exprs = [
        col.null_count().alias(c.key("nulls")),
        (c.col.fill_nan(None) if c.is_float else v)
        .drop_nulls()
        .n_unique()
        .alias(c.key("distinct")),
    ]
    if c.is_float:
        exprs += [
            col.is_nan().sum().alias(c.key("nan")),
            col.is_infinite().sum().alias(c.key("infinite")),
        ]
    if c.kind == "numeric":
        exprs += [
            v.min().cast(pl.Float64).alias(c.key("min")),
            v.max().cast(pl.Float64).alias(c.key("max")),
            v.mean().alias(c.key("mean")),
            v.std().alias(c.key("std")),
            v.skew().alias(c.key("skewness")),
            v.kurtosis().alias(c.key("kurtosis")),
            v.cast(pl.Float64).sum().alias(c.key("sum")),
            (v == 0).sum().alias(c.key("zeros")),
            (v < 0).sum().alias(c.key("negatives")),
            v.cast(pl.Float64)
            .quantile([q for _, q in QUANTILES], interpolation="linear")
            .alias(c.key("quantiles")),
        ]
    elif c.kind == "boolean":
        exprs.append(col.sum().alias(c.key("true")))
    elif c.kind == "datetime":
        exprs += [
            v.min().cast(pl.Float64).alias(c.key("min")),
            v.max().cast(pl.Float64).alias(c.key("max")),
            v.cast(pl.Float64).median().alias(c.key("median")),
        ]
    elif c.kind == "text":
        length = v.str.len_chars()
        exprs += [
            length.min().cast(pl.Float64).alias(c.key("len_min")),
            length.max().cast(pl.Float64).alias(c.key("len_max")),
            length.mean().alias(c.key("len_mean")),
            length.median().alias(c.key("len_median")),
            (v.str.strip_chars() == "").sum().alias(c.key("blank")),
        ]
    return exprs


# -- pass 2: histograms, top values, Pearson ------------------------------------------------------


def _edges(low: float, high: float, bins: int, integer: bool) -> list[float]:
    """Histogram edges over [low, high]: unit-wide bins for a small integer range."""
    if low == high:
        return [low - 0.5, high + 0.5]
    if integer and high - low + 1 <= bins:
        return [low - 0.5 + i for i in range(int(high - low) + 2)]
    step = (high - low) / bins
    return [low + i * step for i in range(bins)] + [high]


def _histogram_expr(value: pl.Expr, edges: list[float], alias: str) -> pl.Expr:
    """Counts per bin as a list (bins are (a, b], the first one [a, b], as in polars)."""
    return value.cast(pl.Float64).hist(bins=edges).implode().alias(alias)


#: Columns with at most this many distinct values get their full value counts (for
#: imbalance); others only their top values.
_FULL_COUNTS = 1000


def _wants_top_values(c: _Column, count: int, distinct: int) -> bool:
    if c.kind == "other" or count == 0:
        return False
    if distinct == count and distinct > 1:
        return False  # every value once: a list of 1s says nothing "distinct" does not
    return not (c.kind == "numeric" and c.is_float and distinct > max(count // 2, 1000))


def _top_value_expr(c: _Column, distinct: int, k: int) -> pl.Expr:
    v = c.col.fill_nan(None) if c.is_float else c.col
    if c.kind == "text":
        v = v.cast(pl.String)
    counts = v.drop_nulls().value_counts(sort=True, name="count")
    if distinct > _FULL_COUNTS:
        counts = counts.head(k)
    return counts.implode().alias(c.key("top"))


def _histogram_plan(c: _Column, s: dict[str, Any], bins: int) -> list[float] | None:
    if c.kind in ("numeric", "datetime") and s.get("_min") is not None:
        integer = c.kind == "numeric" and c.dtype.is_integer()
        return _edges(s["_min"], s["_max"], bins, integer)
    return None


# -- sample: Spearman, Cramér's V, η, patterns, PII -----------------------------------------------


def _sample(
    lf: pl.LazyFrame, data: pl.DataFrame | pl.LazyFrame, rows: int, opts: ProfileOptions
) -> pl.DataFrame:
    """A uniform random sample of ``opts.sample_rows`` rows (all rows when fewer)."""
    if rows <= opts.sample_rows:
        return data if isinstance(data, pl.DataFrame) else lf.collect()
    if isinstance(data, pl.DataFrame):
        return data.sample(n=opts.sample_rows, seed=opts.seed)
    picked = np.random.default_rng(opts.seed).choice(rows, size=opts.sample_rows, replace=False)
    marker = "\x1frow"
    return (
        lf.with_row_index(marker)
        .filter(pl.col(marker).is_in(pl.Series(np.sort(picked)).cast(pl.UInt32).implode()))
        .drop(marker)
        .collect()
    )


def _codes(series: pl.Series, max_levels: int) -> np.ndarray:
    """Category codes 0..L-1 (the ``max_levels - 1`` most frequent, then "other"); -1 missing."""
    values = series.fill_nan(None) if series.dtype.is_float() else series
    counts = values.drop_nulls().value_counts(sort=True, name="count")
    levels = counts[:, 0].head(max_levels - 1) if counts.height > max_levels else counts[:, 0]
    codes = values.replace_strict(
        levels,
        pl.int_range(0, levels.len(), eager=True),
        default=levels.len(),
        return_dtype=pl.Int64,
    )
    return pl.select(pl.when(values.is_null()).then(-1).otherwise(codes)).to_series().to_numpy()


def cramers_v(a: np.ndarray, b: np.ndarray) -> float | None:
    """Bias-corrected Cramér's V of two code arrays (-1 = missing, dropped pairwise).

    Bergsma, "A bias-correction for Cramér's V and Tschuprow's T", J. Korean Stat. Soc. 2013:
    the same correction pandas-profiling and ydata use. None when a column is constant.
    """
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    n = a.size
    if n < 2:
        return None
    rows, cols = int(a.max()) + 1, int(b.max()) + 1
    table = np.bincount(a * cols + b, minlength=rows * cols).reshape(rows, cols)
    # Levels absent from the pairs kept (all their partners missing) are not levels here.
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype(np.float64)
    r, k = table.shape
    if r < 2 or k < 2:
        return None
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = chi2 / n
    phi2_corr = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    r_corr = r - (r - 1) ** 2 / (n - 1)
    k_corr = k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corr - 1, r_corr - 1)
    if denominator <= 0:
        return None
    return min(1.0, math.sqrt(phi2_corr / denominator))


def correlation_ratio(x: np.ndarray, groups: np.ndarray) -> float | None:
    """η: how much of a number's variance its category explains (sqrt of between/total).

    ``x`` is float with NaN for missing, ``groups`` codes with -1 for missing (Fisher's
    correlation ratio; 0 = the category says nothing about the number, 1 = it fixes it).
    """
    keep = ~np.isnan(x) & (groups >= 0)
    x, g = x[keep], groups[keep]
    if x.size < 2:
        return None
    total = float(((x - x.mean()) ** 2).sum())
    if total <= 0:
        return None
    n_g = np.bincount(g)
    sums = np.bincount(g, weights=x)
    present = n_g > 0
    means = sums[present] / n_g[present]
    between = float((n_g[present] * (means - x.mean()) ** 2).sum())
    return min(1.0, math.sqrt(between / total))


def _shape_expr(value: pl.Expr) -> pl.Expr:
    """A value's shape: digits as 9, letters as A/a (runs as A+/a+), spaces collapsed.

    "75001" → "99999", "John Smith" → "Aa+ Aa+", "AB-123" → "A+-999".
    """
    return (
        value.str.replace_all(r"[0-9]", "9")
        .str.replace_all(r"[\p{Ll}\p{Lm}\p{Lo}]", "a")
        .str.replace_all(r"[\p{Lu}\p{Lt}]", "A")
        .str.replace_all(r"A{2,}", "A+")
        .str.replace_all(r"a{2,}", "a+")
        .str.replace_all(r"\s+", " ")
        .str.slice(0, 40)
    )


def _patterns(series: pl.Series, top: int) -> dict[str, Any]:
    values = series.cast(pl.String).drop_nulls()
    if values.is_empty():
        return {"distinct": 0, "top": []}
    shapes = pl.select(_shape_expr(pl.lit(values))).to_series()
    counts = shapes.value_counts(sort=True, name="count")
    total = values.len()
    return {
        "distinct": counts.height,
        "top": [
            {"pattern": p, "count": int(n), "share": _round(n / total)}
            for p, n in counts.head(top).iter_rows()
        ],
    }


def _pii(c: _Column, sample: pl.Series) -> dict[str, Any] | None:
    """The column's PII hint: its declared semantic, or one detected in the sample."""
    if c.spec.semantic:
        if c.spec.semantic in PII_SEMANTICS:
            return {"semantic": c.spec.semantic, "source": "schema"}
        return None
    if c.kind not in ("text", "numeric", "datetime"):
        return None
    from inwire.services.synthex.data.infer import semantic_of

    detected = semantic_of(c.name, c.spec.type, sample)
    if detected in PII_SEMANTICS:
        return {"semantic": detected, "source": "detected"}
    return None


def _matrix(names: Sequence[str], values: dict[tuple[str, str], float | None]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for a in names:
        row: list[Any] = []
        for b in names:
            if a == b:
                row.append(1.0)
            else:
                row.append(_round(values.get((a, b), values.get((b, a)))))
        out.append(row)
    return out


def _pair_corr(
    lf: pl.LazyFrame, names: Sequence[str], exprs: dict[str, pl.Expr]
) -> dict[tuple[str, str], float | None]:
    """Pearson of every pair of ``exprs`` (pairwise complete), in one query.

    Each expression is evaluated once (a column of its own), then paired.
    """
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    if not pairs:
        return {}
    columns = {n: f"\x1f{i}" for i, n in enumerate(names)}
    row = (
        lf.select([exprs[n].alias(columns[n]) for n in names])
        .select([pl.corr(columns[a], columns[b]).alias(f"{i}") for i, (a, b) in enumerate(pairs)])
        .collect()
        .row(0)
    )
    return {pair: _num(value) for pair, value in zip(pairs, row, strict=True)}


# -- the profile -------------------------------------------------------------------------------


def profile(
    data: pl.LazyFrame | pl.DataFrame,
    schema: Schema,
    options: ProfileOptions | None = None,
) -> dict[str, Any]:
    """The profile of ``data`` (JSON-ready): table facts, columns, correlations, alerts."""
    opts = options or ProfileOptions()
    clock = _Clock()
    lf = data.lazy() if isinstance(data, pl.DataFrame) else data
    dtypes = dict(lf.collect_schema())
    specs = _specs(schema, dtypes)
    cols = [
        _Column(i, spec, dtypes[spec.name], _kind(dtypes[spec.name]))
        for i, spec in enumerate(specs)
    ]
    by_name = {c.name: c for c in cols}

    # Pass 1 -- one query: counts, moments, quantiles, lengths, ranges, row hashes.
    first = (
        lf.select(
            pl.len().alias("\x1frows"),
            pl.struct(pl.all()).hash(0).n_unique().alias("\x1fhashes"),
            *[e for c in cols for e in _first_pass(c)],
        )
        .collect()
        .row(0, named=True)
    )
    rows = int(first["\x1frows"])
    stats = {c.name: _first_stats(c, first, rows) for c in cols}
    clock.lap("counts")

    # Pass 2 -- one query: histograms, top values, Pearson of numeric pairs.
    numeric, categorical, left_out = _correlation_columns(cols, stats, opts)
    pearson_pairs = [(a, b) for i, a in enumerate(numeric) for b in numeric[i + 1 :]]
    edges: dict[str, list[float]] = {}
    second_exprs: list[pl.Expr] = []
    for c in cols:
        second_exprs += _second_pass(c, stats[c.name], edges, opts)
    second_exprs += [
        pl.corr(by_name[a].values, by_name[b].values).alias(f"\x1fpearson{i}")
        for i, (a, b) in enumerate(pearson_pairs)
    ]
    second = lf.select(second_exprs).collect().row(0, named=True) if second_exprs else {}
    for c in cols:
        _second_stats(c, stats[c.name], second, edges, opts)
    pearson = {pair: _num(second[f"\x1fpearson{i}"]) for i, pair in enumerate(pearson_pairs)}
    duplicates = _duplicate_rows(lf, rows, int(first["\x1fhashes"]))
    clock.lap("distributions")

    # On the sample: Spearman, Cramér's V, η, then patterns and PII.
    sample = _sample(lf, data, rows, opts)
    spearman = _pair_corr(
        sample.lazy(), numeric, {n: by_name[n].values.rank("average") for n in numeric}
    )
    codes = {n: _codes(sample[n], opts.max_levels) for n in categorical}
    cramer = {
        (a, b): cramers_v(codes[a], codes[b])
        for i, a in enumerate(categorical)
        for b in categorical[i + 1 :]
    }
    numbers = {
        n: sample.select(by_name[n].values.cast(pl.Float64)).to_series().to_numpy() for n in numeric
    }
    eta = {(a, b): correlation_ratio(numbers[a], codes[b]) for a in numeric for b in categorical}
    correlations = _correlations(numeric, categorical, left_out, pearson, spearman, cramer, eta)
    clock.lap("correlations")

    # Patterns and PII look at values one by one: a smaller slice of the (random) sample.
    values = sample.head(opts.pattern_rows)
    for c in cols:
        s = stats[c.name]
        if c.kind == "text" and s["count"] > 0:
            s["text"]["patterns"] = _patterns(values[c.name], opts.top_patterns)
        s["pii"] = _pii(c, values[c.name])
    clock.lap("patterns")

    table = _table_facts(cols, stats, rows, duplicates)
    alerts = _alerts(cols, stats, table, correlations, opts)
    return {
        "format": PROFILE_FORMAT,
        "table": table,
        "columns": [_public(stats[c.name]) for c in cols],
        "correlations": correlations,
        "alerts": alerts,
        "sample": {
            "rows": sample.height,
            "of_rows": rows,
            "sampled": sample.height < rows,
            "seed": opts.seed,
            "used_for": ["spearman", "cramers_v", "correlation_ratio"],
            "pattern_rows": values.height,
        },
        "options": asdict(opts),
        "timings": clock.laps,
        "elapsed_seconds": clock.total(),
    }


class _Clock:
    """Seconds spent per phase (reported, so slow profiles can be explained)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def _second_pass(
    c: _Column, s: dict[str, Any], edges: dict[str, list[float]], opts: ProfileOptions
) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    plan = _histogram_plan(c, s, opts.bins)
    if plan is not None:
        edges[c.name] = plan
        exprs.append(_histogram_expr(c.values, plan, c.key("hist")))
    if c.kind == "text" and s["count"] > 0:
        plan = _edges(s["_len_min"], s["_len_max"], opts.bins, integer=True)
        edges[c.key("len")] = plan
        exprs.append(_histogram_expr(c.values.str.len_chars(), plan, c.key("len_hist")))
    if _wants_top_values(c, s["count"], s["distinct"]):
        exprs.append(_top_value_expr(c, s["distinct"], opts.top_values))
    return exprs


def _first_stats(c: _Column, r: dict[str, Any], rows: int) -> dict[str, Any]:
    nulls = int(r[c.key("nulls")])
    nan = int(r.get(c.key("nan")) or 0)
    missing = nulls + nan
    count = rows - missing
    distinct = int(r[c.key("distinct")])
    s: dict[str, Any] = {
        "name": c.name,
        "type": c.spec.type.value,
        "semantic": c.spec.semantic,
        "storage": str(c.dtype),
        "kind": c.kind,
        "count": count,
        "missing": missing,
        "missing_share": _round(missing / rows) if rows else 0.0,
        "distinct": distinct,
        "distinct_share": _round(distinct / count) if count else 0.0,
        "unique": count > 0 and distinct == count,
    }
    if c.is_float:
        s["nan"] = nan
    if c.kind == "numeric":
        infinite = int(r.get(c.key("infinite")) or 0)
        quantiles = r[c.key("quantiles")] or [None] * len(QUANTILES)
        q = {name: _num(v) for (name, _), v in zip(QUANTILES, quantiles, strict=True)}
        s["_min"], s["_max"] = _num(r[c.key("min")]), _num(r[c.key("max")])
        finite = count - infinite
        s["numeric"] = {
            "min": s["_min"],
            "max": s["_max"],
            "mean": _num(r[c.key("mean")]),
            "std": _num(r[c.key("std")]),
            "skewness": _num(r[c.key("skewness")]),
            "kurtosis": _num(r[c.key("kurtosis")]),
            "sum": _num(r[c.key("sum")]),
            "zeros": int(r[c.key("zeros")] or 0),
            "zeros_share": _round(int(r[c.key("zeros")] or 0) / finite) if finite else 0.0,
            "negatives": int(r[c.key("negatives")] or 0),
            "infinite": infinite,
            "quantiles": q,
            "iqr": (
                _num(q["p75"] - q["p25"]) if q["p75"] is not None and q["p25"] is not None else None
            ),
        }
    elif c.kind == "boolean":
        true = int(r[c.key("true")] or 0)
        s["boolean"] = {
            "true": true,
            "false": count - true,
            "true_share": _round(true / count) if count else None,
        }
    elif c.kind == "datetime":
        s["_min"], s["_max"] = _num(r[c.key("min")]), _num(r[c.key("max")])
        span = None if s["_min"] is None else (s["_max"] - s["_min"]) / 86_400_000
        day = c.dtype == pl.Date
        s["datetime"] = {
            "min": _iso(s["_min"], day=day),
            "max": _iso(s["_max"], day=day),
            "median": _iso(_num(r[c.key("median")]), day=day),
            "range_days": _round(span, 3),
        }
    elif c.kind == "text":
        s["_len_min"], s["_len_max"] = _num(r[c.key("len_min")]), _num(r[c.key("len_max")])
        s["text"] = {
            "length": {
                "min": s["_len_min"],
                "max": s["_len_max"],
                "mean": _num(r[c.key("len_mean")]),
                "median": _num(r[c.key("len_median")]),
            },
            "blank": int(r[c.key("blank")] or 0),
        }
    return s


def _second_stats(
    c: _Column,
    s: dict[str, Any],
    r: dict[str, Any],
    edges: dict[str, list[float]],
    opts: ProfileOptions,
) -> None:
    hist = r.get(c.key("hist"))
    if hist is not None:
        e = edges[c.name]
        counts = [int(x) for x in hist]
        if c.kind == "datetime":
            s["datetime"]["histogram"] = {"edges": [_iso(x) for x in e], "counts": counts}
        else:
            tidy = [float(f"{x:.12g}") for x in e]
            s["numeric"]["histogram"] = {"edges": tidy, "counts": counts}
    lengths = r.get(c.key("len_hist"))
    if lengths is not None:
        s["text"]["length"]["histogram"] = {
            "edges": edges[c.key("len")],
            "counts": [int(x) for x in lengths],
        }
    top = r.get(c.key("top"))
    if top is None:
        s["top_values"] = []
        return
    pairs = [(item[next(iter(item))], int(item["count"])) for item in top]
    categories = c.kind in ("text", "boolean") or c.spec.type == ColumnType.categorical
    if categories and s["distinct"] <= _FULL_COUNTS and s["count"] > 0:
        shares = np.array([n for _, n in pairs], dtype=np.float64) / s["count"]
        entropy = float(-(shares * np.log(shares)).sum())
        levels = len(pairs)
        s["entropy"] = _round(entropy)
        s["imbalance"] = _round(1 - entropy / math.log(levels)) if levels > 1 else None
    shown = pairs[: opts.top_values]
    s["top_values"] = [
        {"value": _json_value(v), "count": n, "share": _round(n / s["count"]) if s["count"] else 0}
        for v, n in shown
    ]
    s["other_count"] = s["count"] - sum(n for _, n in shown)


def _correlation_columns(
    cols: list[_Column], stats: dict[str, dict[str, Any]], opts: ProfileOptions
) -> tuple[list[str], list[str], list[str]]:
    """Columns of the numeric and the categorical matrices, and those left out by the cap."""
    numeric: list[str] = []
    categorical: list[str] = []
    for c in cols:
        if stats[c.name]["distinct"] < 2:
            continue  # a constant has no correlation
        if c.spec.type in (ColumnType.integer, ColumnType.float) and c.kind == "numeric":
            numeric.append(c.name)
        elif c.spec.type in (ColumnType.categorical, ColumnType.boolean) and c.kind != "other":
            categorical.append(c.name)
    cap = opts.max_correlation_columns
    left_out = numeric[cap:] + categorical[cap:]
    return numeric[:cap], categorical[:cap], left_out


def _correlations(
    numeric: list[str],
    categorical: list[str],
    left_out: list[str],
    pearson: dict[tuple[str, str], float | None],
    spearman: dict[tuple[str, str], float | None],
    cramer: dict[tuple[str, str], float | None],
    eta: dict[tuple[str, str], float | None],
) -> dict[str, Any]:
    """The matrices, one mixed [0, 1] association matrix, and the strongest pairs."""
    mixed: dict[tuple[str, str], float | None] = {}
    pairs: list[dict[str, Any]] = []
    for (a, b), v in spearman.items():
        mixed[(a, b)] = None if v is None else abs(v)
    mixed.update(cramer)
    mixed.update(eta)
    measure = {**dict.fromkeys(pearson, "pearson"), **dict.fromkeys(cramer, "cramers_v")}
    measure.update(dict.fromkeys(eta, "correlation_ratio"))
    for pair, m in measure.items():
        source = pearson if m == "pearson" else cramer if m == "cramers_v" else eta
        value = source.get(pair)
        if value is not None:
            pairs.append({"a": pair[0], "b": pair[1], "measure": m, "value": _round(value)})
    pairs.sort(key=lambda p: -abs(p["value"]))
    everything = numeric + categorical
    return {
        "pearson": {"columns": numeric, "matrix": _matrix(numeric, pearson)},
        "spearman": {"columns": numeric, "matrix": _matrix(numeric, spearman)},
        "cramers_v": {"columns": categorical, "matrix": _matrix(categorical, cramer)},
        "correlation_ratio": {
            "rows": numeric,
            "columns": categorical,
            "matrix": [[_round(eta.get((a, b))) for b in categorical] for a in numeric],
        },
        # |Spearman| for two numbers, Cramér's V for two categories, η for one of each.
        "associations": {"columns": everything, "matrix": _matrix(everything, mixed)},
        "top_pairs": pairs[:20],
        "left_out": left_out,
    }


def _duplicate_rows(lf: pl.LazyFrame, rows: int, distinct_hashes: int) -> int:
    """Rows equal to an earlier row, exactly: rows are compared only when hashes repeat."""
    if distinct_hashes == rows:
        return 0  # equal rows hash equally, so no two rows are equal
    return rows - int(lf.select(pl.struct(pl.all()).n_unique()).collect().item())


def _table_facts(
    cols: list[_Column], stats: dict[str, dict[str, Any]], rows: int, duplicates: int
) -> dict[str, Any]:
    cells = rows * len(cols)
    missing = sum(stats[c.name]["missing"] for c in cols)
    types: dict[str, int] = {}
    for c in cols:
        types[c.spec.type.value] = types.get(c.spec.type.value, 0) + 1
    return {
        "rows": rows,
        "columns": len(cols),
        "missing_cells": missing,
        "missing_share": _round(missing / cells) if cells else 0.0,
        "duplicate_rows": duplicates,
        "duplicate_share": _round(duplicates / rows) if rows else 0.0,
        "types": types,
    }


def _public(s: dict[str, Any]) -> dict[str, Any]:
    """A column's stats without the working fields (``_min``, …)."""
    return {k: v for k, v in s.items() if not k.startswith("_")}


def _alert(
    kind: str, message: str, *, column: str | None = None, value: Any = None, level: str = "warning"
) -> dict[str, Any]:
    return {"kind": kind, "column": column, "level": level, "message": message, "value": value}


def _alerts(
    cols: list[_Column],
    stats: dict[str, dict[str, Any]],
    table: dict[str, Any],
    correlations: dict[str, Any],
    opts: ProfileOptions,
) -> list[dict[str, Any]]:
    """Things a person should look at before using the data, most serious first."""
    out: list[dict[str, Any]] = []
    rows = table["rows"]
    if table["duplicate_rows"]:
        out.append(
            _alert(
                "duplicates",
                f"{table['duplicate_rows']:,} rows repeat an earlier row "
                f"({table['duplicate_share'] * 100:.1f}%)",
                value=table["duplicate_rows"],
            )
        )
    for c in cols:
        s = stats[c.name]
        name = c.name
        if rows and s["count"] == 0:
            out.append(_alert("all_missing", "every value is missing", column=name, value=1.0))
            continue
        if rows and s["distinct"] == 1:
            message = "a single value" + (" besides missing ones" if s["missing"] else "")
            out.append(_alert("constant", message, column=name, value=s["distinct"]))
        if s["missing_share"] and s["missing_share"] >= opts.missing_share:
            out.append(
                _alert(
                    "many_missing",
                    f"{s['missing_share'] * 100:.1f}% of values are missing",
                    column=name,
                    value=s["missing_share"],
                )
            )
        if c.spec.type == ColumnType.categorical and s["distinct"] > opts.high_cardinality:
            out.append(
                _alert(
                    "high_cardinality",
                    f"{s['distinct']:,} distinct values for a categorical column",
                    column=name,
                    value=s["distinct"],
                )
            )
        if c.spec.type == ColumnType.identifier or (
            s["unique"]
            and s["count"] >= opts.identifier_min_rows
            and c.kind in ("numeric", "text")
            and not c.is_float
        ):
            out.append(
                _alert(
                    "likely_identifier",
                    "declared an identifier"
                    if c.spec.type == ColumnType.identifier
                    else "every value is different: probably a key, not a feature",
                    column=name,
                    value=s["distinct_share"],
                    level="info",
                )
            )
        if s.get("pii"):
            out.append(
                _alert(
                    "likely_pii",
                    f"personal data ({s['pii']['semantic']}, {s['pii']['source']})",
                    column=name,
                    value=s["pii"]["semantic"],
                )
            )
        numeric = s.get("numeric")
        if numeric:
            skew = numeric["skewness"]
            if skew is not None and abs(skew) > opts.skew and s["distinct"] > 2:
                out.append(
                    _alert("skewed", f"skewness {skew:.2f}", column=name, value=_round(skew, 3))
                )
            if numeric["infinite"]:
                out.append(
                    _alert(
                        "infinite",
                        f"{numeric['infinite']:,} infinite values",
                        column=name,
                        value=numeric["infinite"],
                    )
                )
            if numeric["zeros_share"] >= opts.zeros_share and s["distinct"] > 1:
                out.append(
                    _alert(
                        "zeros",
                        f"{numeric['zeros_share'] * 100:.1f}% of values are zero",
                        column=name,
                        value=numeric["zeros_share"],
                        level="info",
                    )
                )
        imbalance = s.get("imbalance")
        if (
            imbalance is not None
            and imbalance > opts.imbalance
            and c.spec.type in (ColumnType.categorical, ColumnType.boolean)
        ):
            out.append(
                _alert(
                    "imbalanced",
                    f"imbalance {imbalance:.2f}: a few values dominate",
                    column=name,
                    value=imbalance,
                )
            )
    for pair in correlations["top_pairs"]:
        if abs(pair["value"]) >= opts.high_correlation:
            out.append(
                _alert(
                    "high_correlation",
                    f"{pair['a']} and {pair['b']}: {pair['measure']} {pair['value']:.2f}",
                    column=pair["a"],
                    value=pair["value"],
                    level="info",
                )
            )
    order = {"warning": 0, "info": 1}
    out.sort(key=lambda a: order.get(a["level"], 2))
    return out
