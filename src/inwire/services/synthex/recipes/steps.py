"""Cleaning and transformation steps of recipes (PII steps are in ``pii``).

Every step is a pydantic model with a literal ``op``; it checks its parameters alone
(``static_issues``), checks them against the columns it receives (``check``), says what
the columns are afterwards (``output``) and transforms a LazyFrame (``transform``).

Statistics a step needs (means, quantiles, bin edges, categories) are computed from the
data at that point with one streaming aggregate query, then used as literals: the result
stays a lazy plan, and the fitted values are recorded for the version's lineage.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from inwire.services.synthex.recipes.columns import (
    NUMBERS,
    STORAGE,
    TEMPORAL,
    TEXT,
    Columns,
    Issue,
    RunContext,
    StepFailed,
    clashes,
    kind_of,
    missing,
    type_for,
    wrong_kind,
)
from inwire.services.synthex.recipes.expressions import (
    ExpressionError,
    Kind,
    check_regex,
    compile_expression,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    doubles = sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
    if doubles:
        raise ValueError(f"names appear more than once: {', '.join(doubles)}")
    return values


ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ColumnNames = Annotated[
    list[ColumnName], Field(min_length=1, max_length=2000), AfterValidator(_unique)
]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Scalar = str | bool | int | float


class StepBase(BaseModel):
    """What every step does; subclasses override the parts they need."""

    model_config = ConfigDict(extra="forbid")

    #: Steps whose ``transform`` reads the data (aggregates) before building the plan.
    fits: ClassVar[bool] = False

    def static_issues(self) -> list[Issue]:
        """Problems visible from the step alone (expressions, patterns, bounds)."""
        return []

    def check(self, columns: Columns) -> list[Issue]:
        """Problems of the step against the columns it receives."""
        return []

    def output(self, columns: Columns) -> Columns:
        """The columns after the step (called only when ``check`` found nothing)."""
        return columns

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        """The data after the step, and its columns."""
        exprs = self.exprs(columns, ctx)
        return (lf.with_columns(exprs) if exprs else lf), self.output(columns)

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        """Column expressions replacing or adding columns (the common case)."""
        return []


def _aggregate(lf: pl.LazyFrame, exprs: list[pl.Expr]) -> dict[str, Any]:
    """One streaming pass computing ``exprs`` (each aliased), as plain Python values."""
    if not exprs:
        return {}
    row = lf.select(exprs).collect(engine="streaming")
    return {name: row[name][0] if row.height else None for name in row.columns}


def _missing_aware(name: str, kind: Kind) -> pl.Expr:
    """The column with NaN read as missing (floats), so statistics skip both."""
    col = pl.col(name)
    return col.fill_nan(None) if kind == "float" else col


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# -- structure ---------------------------------------------------------------------------------


class Select(StepBase):
    """Keep only these columns, in this order."""

    op: Literal["select"]
    columns: ColumnNames

    def check(self, columns: Columns) -> list[Issue]:
        return missing(columns, self.columns)

    def output(self, columns: Columns) -> Columns:
        return columns.only(self.columns)

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        return lf.select(self.columns), self.output(columns)


class Drop(StepBase):
    """Remove these columns."""

    op: Literal["drop"]
    columns: ColumnNames

    def check(self, columns: Columns) -> list[Issue]:
        issues = missing(columns, self.columns)
        if not issues and not columns.open_prefixes and set(columns.names) <= set(self.columns):
            issues.append(Issue("this would drop every column", "columns"))
        return issues

    def output(self, columns: Columns) -> Columns:
        return columns.without(self.columns)

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        return lf.drop(self.columns), self.output(columns)


class Rename(StepBase):
    """Give columns new names: ``{"old": "new"}``."""

    op: Literal["rename"]
    columns: Annotated[dict[ColumnName, ColumnName], Field(min_length=1, max_length=2000)]

    def static_issues(self) -> list[Issue]:
        try:
            _unique(list(self.columns.values()))
        except ValueError as exc:
            return [Issue(f"new {exc}", "columns")]
        return []

    def check(self, columns: Columns) -> list[Issue]:
        issues = missing(columns, self.columns)
        staying = set(columns.names) - set(self.columns)
        issues += [
            Issue(f"a column named {new!r} already exists", "columns")
            for new in self.columns.values()
            if new in staying
        ]
        return issues

    def output(self, columns: Columns) -> Columns:
        return columns.renamed(self.columns)

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        return lf.rename(self.columns), self.output(columns)


_CAST_FROM: dict[ColumnType, frozenset[Kind]] = {
    ColumnType.integer: frozenset({"integer", "float", "boolean", "text"}),
    ColumnType.float: frozenset({"integer", "float", "boolean", "text"}),
    ColumnType.boolean: frozenset({"integer", "float", "boolean", "text"}),
    ColumnType.datetime: frozenset({"date", "datetime", "text"}),
}
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


class Cast(StepBase):
    """Change columns' types: ``{"age": "integer"}``; values that do not convert become null."""

    op: Literal["cast"]
    columns: Annotated[dict[ColumnName, ColumnType], Field(min_length=1, max_length=2000)]
    #: strftime format of text read as dates (``%d.%m.%Y``); default: recognised forms.
    format: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None

    def check(self, columns: Columns) -> list[Issue]:
        issues = missing(columns, self.columns)
        for name, target in self.columns.items():
            spec = columns.get(name)
            if spec is None:
                continue
            kind = kind_of(spec)
            allowed = _CAST_FROM.get(target)
            if allowed is not None and kind != "any" and kind not in allowed:
                issues.append(
                    Issue(
                        f"column {name!r} ({spec.type.value}) cannot become {target.value}",
                        "columns",
                    )
                )
        return issues

    def _storage(self, target: ColumnType, kind: Kind) -> str:
        if target == ColumnType.datetime:
            return STORAGE["date"] if kind == "date" else STORAGE["datetime"]
        if target in (ColumnType.integer, ColumnType.float, ColumnType.boolean):
            return STORAGE[target.value]
        if target in (ColumnType.categorical, ColumnType.identifier) and kind in (
            "text",
            "integer",
        ):
            return STORAGE[kind]  # the data stays as it is
        return STORAGE["text"]

    def output(self, columns: Columns) -> Columns:
        for name, target in self.columns.items():
            storage = self._storage(target, columns.kind(name))
            columns = columns.update(name, type=target, storage=storage)
        return columns

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        return [
            self._expr(name, target, columns.kind(name)).alias(name)
            for name, target in self.columns.items()
        ]

    def _expr(self, name: str, target: ColumnType, kind: Kind) -> pl.Expr:
        col = pl.col(name)
        text = col.cast(pl.String).str.strip_chars()
        if target == ColumnType.integer:
            if kind == "text":
                return text.cast(pl.Int64, strict=False)
            if kind == "float":
                return col.round(0).cast(pl.Int64, strict=False)
            return col.cast(pl.Int64, strict=False)
        if target == ColumnType.float:
            source = text if kind == "text" else col
            return source.cast(pl.Float64, strict=False)
        if target == ColumnType.boolean:
            if kind == "boolean":
                return col
            if kind in NUMBERS:
                return col != 0
            lowered = text.str.to_lowercase()
            return (
                pl.when(_one_of(lowered, _TRUE))
                .then(True)
                .when(_one_of(lowered, _FALSE))
                .then(False)
                .otherwise(None)
                .cast(pl.Boolean)
            )
        if target == ColumnType.datetime:
            if kind in TEMPORAL:
                return col
            return text.str.to_datetime(self.format, time_unit="us", strict=False)
        if target in (ColumnType.categorical, ColumnType.identifier) and kind in (
            "text",
            "integer",
        ):
            return col
        return col.cast(pl.String)


# -- missing values and duplicates -------------------------------------------------------------


class FillMissing(StepBase):
    """Fill missing values (null, and NaN in float columns) of columns."""

    op: Literal["fill_missing"]
    columns: ColumnNames
    #: ``value`` (give ``value``), ``mean``, ``median`` (numbers), ``mode`` (most common
    #: value, the smallest on ties), ``forward``/``backward`` (the previous/next value).
    strategy: Literal["value", "mean", "median", "mode", "forward", "backward"]
    value: Scalar | None = None

    fits: ClassVar[bool] = True

    def static_issues(self) -> list[Issue]:
        if self.strategy == "value" and self.value is None:
            return [Issue("strategy 'value' needs a value", "value")]
        if self.strategy != "value" and self.value is not None:
            return [Issue(f"strategy {self.strategy!r} takes no value", "value")]
        return []

    def check(self, columns: Columns) -> list[Issue]:
        if self.strategy in ("mean", "median"):
            return wrong_kind(columns, self.columns, NUMBERS, f"{self.strategy} needs numbers")
        issues = missing(columns, self.columns)
        if self.strategy == "value" and not issues:
            for name in self.columns:
                problem = _value_problem(self.value, columns.kind(name))
                if problem:
                    issues.append(Issue(f"column {name!r}: {problem}", "value"))
        return issues

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        exprs: list[pl.Expr] = []
        if self.strategy in ("mean", "median", "mode"):
            aggs = []
            for name in self.columns:
                base = _missing_aware(name, columns.kind(name))
                if self.strategy == "mean":
                    agg = base.mean()
                elif self.strategy == "median":
                    agg = base.median()
                else:
                    agg = base.drop_nulls().mode().sort().first()
                aggs.append(agg.alias(name))
            fitted = _aggregate(lf, aggs)
            ctx.record(op=self.op, values={k: _plain(v) for k, v in fitted.items()})
        for name in self.columns:
            kind = columns.kind(name)
            base = _missing_aware(name, kind)
            if self.strategy in ("forward", "backward"):
                exprs.append(base.fill_null(strategy=self.strategy).alias(name))
                continue
            if self.strategy == "value":
                fill = _literal(self.value, kind)
            else:
                value = fitted[name]
                if value is None:
                    continue
                if kind == "integer" and self.strategy != "mode":
                    value = round(float(value))
                fill = pl.lit(value)
            exprs.append(base.fill_null(fill).alias(name))
        return (lf.with_columns(exprs) if exprs else lf), columns


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a fitted value."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _one_of(expr: pl.Expr, values: list[str]) -> pl.Expr:
    return expr.is_in(pl.Series(values, dtype=pl.String).implode())


def _value_problem(value: Any, kind: Kind) -> str | None:
    if kind in ("any",) or value is None:
        return None
    if kind in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "needs a number"
        if kind == "integer" and not float(value).is_integer():
            return "needs a whole number"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else "needs true or false"
    if kind in TEMPORAL:
        if not isinstance(value, str):
            return "needs a date as text (YYYY-MM-DD)"
        try:
            _temporal(value)
        except ValueError:
            return f"{value!r} is not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"
        return None
    return None if isinstance(value, str) else "needs text (in quotes)"


def _temporal(value: str) -> date | datetime:
    text = value.strip()
    return date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text)


def _literal(value: Any, kind: Kind) -> pl.Expr:
    if kind in TEMPORAL and isinstance(value, str):
        return pl.lit(_temporal(value))
    if kind == "integer" and isinstance(value, float):
        return pl.lit(int(value))
    return pl.lit(value)


class DropMissing(StepBase):
    """Remove rows with missing values (in these columns; default all)."""

    op: Literal["drop_missing"]
    columns: ColumnNames | None = None
    #: ``any``: drop a row missing any of the columns; ``all``: only if all are missing.
    how: Literal["any", "all"] = "any"

    def check(self, columns: Columns) -> list[Issue]:
        return missing(columns, self.columns or [])

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        names = self.columns or columns.names
        gaps = []
        for name in names:
            col = pl.col(name)
            gaps.append(
                col.is_null() | col.is_nan() if columns.kind(name) == "float" else col.is_null()
            )
        gone = pl.any_horizontal(gaps) if self.how == "any" else pl.all_horizontal(gaps)
        return lf.filter(~gone), columns


class Dedupe(StepBase):
    """Remove duplicate rows (equal in these columns; default all), keeping the order."""

    op: Literal["dedupe"]
    columns: ColumnNames | None = None
    #: Which of equal rows stays: ``first``, ``last``, or ``none`` (drop them all).
    keep: Literal["first", "last", "none"] = "first"

    def check(self, columns: Columns) -> list[Issue]:
        return missing(columns, self.columns or [])

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        return lf.unique(subset=self.columns, keep=self.keep, maintain_order=True), columns


# -- expressions -------------------------------------------------------------------------------


def _expression_issue(text: str, columns: Columns | None) -> tuple[Any, list[Issue]]:
    try:
        compiled = compile_expression(text, None if columns is None else columns.kinds())
    except ExpressionError as exc:
        return None, [Issue(str(exc), "expr")]
    return compiled, []


class Filter(StepBase):
    """Keep the rows where ``expr`` is true (false or missing drops the row)."""

    op: Literal["filter"]
    expr: Expression

    def static_issues(self) -> list[Issue]:
        return _expression_issue(self.expr, None)[1]

    def check(self, columns: Columns) -> list[Issue]:
        compiled, issues = _expression_issue(self.expr, columns)
        if compiled is not None and compiled.kind not in ("boolean", "any", "null"):
            issues.append(Issue(f"a filter must be true or false, not {compiled.kind}", "expr"))
        return issues

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        compiled = compile_expression(self.expr, columns.kinds())
        return lf.filter(compiled.expr), columns


_DERIVE_FITS: dict[ColumnType, frozenset[Kind]] = {
    ColumnType.integer: frozenset({"integer", "null"}),
    ColumnType.float: frozenset({"integer", "float", "null"}),
    ColumnType.boolean: frozenset({"boolean", "null"}),
    ColumnType.datetime: frozenset({"date", "datetime", "null"}),
}


class Derive(StepBase):
    """Add (or replace) ``column`` computed from ``expr`` for each row."""

    op: Literal["derive"]
    column: ColumnName
    expr: Expression
    #: The new column's logical type; default: from the expression's result.
    type: ColumnType | None = None

    def static_issues(self) -> list[Issue]:
        return _expression_issue(self.expr, None)[1]

    def check(self, columns: Columns) -> list[Issue]:
        compiled, issues = _expression_issue(self.expr, columns)
        if compiled is not None and self.type is not None:
            fits = _DERIVE_FITS.get(self.type)
            if fits is not None and compiled.kind != "any" and compiled.kind not in fits:
                issues.append(
                    Issue(
                        f"the expression gives {compiled.kind}, not {self.type.value}; "
                        "convert it with int(), float() or str()",
                        "type",
                    )
                )
            if fits is None and compiled.kind in TEMPORAL:
                issues.append(Issue(f"a date cannot be {self.type.value}; use str()", "type"))
        return issues

    def output(self, columns: Columns) -> Columns:
        compiled = compile_expression(self.expr, columns.kinds())
        kind: Kind = compiled.kind
        ctype = self.type or type_for(kind)
        storage = STORAGE.get(kind, "")
        return columns.put(ColumnSpec(name=self.column, type=ctype, storage=storage))

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        compiled = compile_expression(self.expr, columns.kinds())
        return [compiled.expr.alias(self.column)]


# -- numbers -----------------------------------------------------------------------------------


class ClipOutliers(StepBase):
    """Limit numbers to a range learnt from the data: clip them to it, or make them missing."""

    op: Literal["clip_outliers"]
    columns: ColumnNames
    #: ``iqr``: [Q1 - factor·IQR, Q3 + factor·IQR] (Tukey's fences); ``zscore``: mean ±
    #: threshold·std; ``quantile``: [lower quantile, upper quantile].
    method: Literal["iqr", "zscore", "quantile"] = "iqr"
    factor: float = Field(default=1.5, gt=0, le=100)
    threshold: float = Field(default=3.0, gt=0, le=100)
    lower: float = Field(default=0.01, ge=0, le=1)
    upper: float = Field(default=0.99, ge=0, le=1)
    #: ``clip``: move outliers to the nearest bound; ``null``: make them missing.
    action: Literal["clip", "null"] = "clip"

    fits: ClassVar[bool] = True

    def static_issues(self) -> list[Issue]:
        if self.method == "quantile" and self.lower >= self.upper:
            return [Issue("lower must be below upper", "lower")]
        return []

    def check(self, columns: Columns) -> list[Issue]:
        return wrong_kind(columns, self.columns, NUMBERS, "clip_outliers needs numbers")

    def _bounds(self, name: str, kind: Kind) -> list[pl.Expr]:
        col = _missing_aware(name, kind)
        if self.method == "iqr":
            q1, q3 = col.quantile(0.25, "linear"), col.quantile(0.75, "linear")
            low, high = q1 - self.factor * (q3 - q1), q3 + self.factor * (q3 - q1)
        elif self.method == "zscore":
            low = col.mean() - self.threshold * col.std()
            high = col.mean() + self.threshold * col.std()
        else:
            low, high = col.quantile(self.lower, "linear"), col.quantile(self.upper, "linear")
        return [low.alias(f"{name}\x00low"), high.alias(f"{name}\x00high")]

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        aggs = [e for n in self.columns for e in self._bounds(n, columns.kind(n))]
        fitted = _aggregate(lf, aggs)
        exprs, bounds = [], {}
        for name in self.columns:
            low, high = _number(fitted[f"{name}\x00low"]), _number(fitted[f"{name}\x00high"])
            if low is None or high is None:
                continue
            integer = columns.kind(name) == "integer"
            if integer:
                low, high = float(math.ceil(low)), float(math.floor(high))
            bounds[name] = [low, high]
            col = pl.col(name)
            lo = pl.lit(int(low) if integer else low)
            hi = pl.lit(int(high) if integer else high)
            if self.action == "clip":
                exprs.append(col.clip(lo, hi).alias(name))
            else:
                exprs.append(pl.when((col < lo) | (col > hi)).then(None).otherwise(col).alias(name))
        ctx.record(op=self.op, bounds=bounds)
        return (lf.with_columns(exprs) if exprs else lf), columns


class Normalize(StepBase):
    """Rescale numbers: z-score, min-max to [0, 1], or robust (median and IQR)."""

    op: Literal["normalize"]
    columns: ColumnNames
    method: Literal["zscore", "minmax", "robust"] = "zscore"

    fits: ClassVar[bool] = True

    def check(self, columns: Columns) -> list[Issue]:
        return wrong_kind(columns, self.columns, NUMBERS, "normalize needs numbers")

    def output(self, columns: Columns) -> Columns:
        for name in self.columns:
            columns = columns.update(
                name, type=ColumnType.float, storage=STORAGE["float"], semantic=None
            )
        return columns

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        aggs = []
        for name in self.columns:
            col = _missing_aware(name, columns.kind(name)).cast(pl.Float64)
            if self.method == "zscore":
                center, scale = col.mean(), col.std()
            elif self.method == "minmax":
                center, scale = col.min(), col.max() - col.min()
            else:
                center = col.median()
                scale = col.quantile(0.75, "linear") - col.quantile(0.25, "linear")
            aggs += [center.alias(f"{name}\x00center"), scale.alias(f"{name}\x00scale")]
        fitted = _aggregate(lf, aggs)
        exprs, params = [], {}
        for name in self.columns:
            mid = _number(fitted[f"{name}\x00center"]) or 0.0
            spread = _number(fitted[f"{name}\x00scale"]) or 0.0
            params[name] = {"center": mid, "scale": spread}
            col = _missing_aware(name, columns.kind(name)).cast(pl.Float64)
            if spread > 0:
                exprs.append(((col - mid) / spread).alias(name))
            else:
                # No spread: every value is the centre, which maps to 0.
                exprs.append(pl.when(col.is_not_null()).then(0.0).otherwise(None).alias(name))
        ctx.record(op=self.op, method=self.method, params=params)
        return lf.with_columns(exprs), self.output(columns)


def _edge_text(value: float) -> str:
    return f"{value:.6g}"


class Bin(StepBase):
    """Turn a number into a range label: equal-width, quantile (equal-count) or given edges.

    Bins are ``[low, high)``, the last one ``[low, high]``; values outside given edges
    become missing. ``labels`` name the bins instead of the ranges.
    """

    op: Literal["bin"]
    column: ColumnName
    method: Literal["equal_width", "quantile", "edges"] = "equal_width"
    bins: int = Field(default=5, ge=2, le=100)
    edges: Annotated[list[float], Field(min_length=2, max_length=101)] | None = None
    labels: (
        Annotated[list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=100)]
        | None
    ) = None
    #: Put the labels into a new column of this name (default: replace the column).
    into: ColumnName | None = None

    fits: ClassVar[bool] = True

    def _count(self) -> int:
        return len(self.edges) - 1 if self.method == "edges" and self.edges else self.bins

    def static_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        if self.method == "edges":
            if not self.edges:
                issues.append(Issue("method 'edges' needs edges", "edges"))
            elif any(not math.isfinite(e) for e in self.edges) or any(
                b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)
            ):
                issues.append(Issue("edges must be finite and strictly increasing", "edges"))
        elif self.edges is not None:
            issues.append(
                Issue(f"method {self.method!r} computes its edges; remove edges", "edges")
            )
        if self.labels is not None and len(self.labels) != self._count():
            issues.append(Issue(f"{len(self.labels)} labels for {self._count()} bins", "labels"))
        return issues

    def check(self, columns: Columns) -> list[Issue]:
        issues = wrong_kind(columns, [self.column], NUMBERS, "bin needs numbers", "column")
        if self.into is not None:
            issues += clashes(columns, [self.into], "into", allowed=[self.column])
        return issues

    def output(self, columns: Columns) -> Columns:
        spec = ColumnSpec(
            name=self.into or self.column, type=ColumnType.categorical, storage=STORAGE["text"]
        )
        return columns.put(spec)

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        n = self._count()
        col = _missing_aware(self.column, columns.kind(self.column)).cast(pl.Float64)
        if self.method == "edges":
            edges = [float(e) for e in self.edges or []]
        else:
            if self.method == "equal_width":
                aggs = [col.min().alias("min"), col.max().alias("max")]
            else:
                aggs = [col.quantile(i / n, "linear").alias(str(i)) for i in range(n + 1)]
            fitted = _aggregate(lf, aggs)
            if self.method == "equal_width":
                low, high = _number(fitted["min"]), _number(fitted["max"])
                edges = (
                    [low + (high - low) * i / n for i in range(n + 1)]
                    if low is not None and high is not None
                    else []
                )
            else:
                found = [_number(fitted[str(i)]) for i in range(n + 1)]
                edges = [e for e in found if e is not None]
                edges = edges if len(edges) == n + 1 else []
        ctx.record(op=self.op, column=self.column, edges=edges)
        target = self.into or self.column
        if not edges:
            expr = pl.lit(None, dtype=pl.String)
        else:
            index = (
                pl.sum_horizontal([(col >= e).cast(pl.Int32) for e in edges[1:-1]])
                if n > 1
                else pl.lit(0)
            )
            labels = self.labels or [
                f"[{_edge_text(edges[i])}, {_edge_text(edges[i + 1])}{']' if i == n - 1 else ')'}"
                for i in range(n)
            ]
            chosen = index.replace_strict(list(range(n)), labels, return_dtype=pl.String)
            inside = (col >= edges[0]) & (col <= edges[-1])
            expr = pl.when(inside).then(chosen).otherwise(None)
        return lf.with_columns(expr.alias(target)), self.output(columns)


# -- categories and dates ----------------------------------------------------------------------


class OneHot(StepBase):
    """One 0/1 column per category, named ``<prefix>_<value>``.

    ``categories`` fixes the columns (other values get all zeros); without it the
    ``max_categories`` most frequent values of the data are used and, if there are more,
    a ``<prefix>_other`` column marks the rest. Missing values get all zeros.
    """

    op: Literal["one_hot"]
    column: ColumnName
    categories: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=200)]],
            Field(min_length=1, max_length=1000),
            AfterValidator(_unique),
        ]
        | None
    ) = None
    prefix: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    max_categories: int = Field(default=20, ge=1, le=1000)
    drop_original: bool = True

    fits: ClassVar[bool] = True

    @property
    def _prefix(self) -> str:
        return self.prefix or self.column

    def check(self, columns: Columns) -> list[Issue]:
        issues = wrong_kind(
            columns,
            [self.column],
            frozenset({"text", "integer", "boolean"}),
            "one_hot needs categories (text, whole numbers or true/false)",
            "column",
        )
        if self.categories is not None:
            names = [f"{self._prefix}_{c}" for c in self.categories]
            issues += clashes(columns, names, "categories")
        return issues

    def _with(self, columns: Columns, categories: list[str], other: bool) -> Columns:
        names = [f"{self._prefix}_{c}" for c in categories] + (
            [f"{self._prefix}_other"] if other else []
        )
        for name in names:
            columns = columns.put(
                ColumnSpec(name=name, type=ColumnType.integer, storage=STORAGE["flag"])
            )
        return columns.without([self.column]) if self.drop_original else columns

    def output(self, columns: Columns) -> Columns:
        if self.categories is not None:
            return self._with(columns, self.categories, other=False)
        opened = columns.opened(self._prefix)
        return opened.without([self.column]) if self.drop_original else opened

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        text = pl.col(self.column).cast(pl.String)
        other = False
        if self.categories is not None:
            categories = list(self.categories)
        else:
            counts = (
                lf.select(text.alias("value"))
                .drop_nulls()
                .group_by("value")
                .len()
                .collect(engine="streaming")
                .sort(["len", "value"], descending=[True, False])
            )
            values = counts["value"].to_list()
            categories = sorted(values[: self.max_categories])
            other = len(values) > self.max_categories
            clash = clashes(
                columns,
                [f"{self._prefix}_{c}" for c in categories]
                + ([f"{self._prefix}_other"] if other else []),
                "prefix",
            )
            if clash:
                raise StepFailed(clash)
        ctx.record(op=self.op, column=self.column, categories=categories, other=other)
        exprs = [
            (text == c).fill_null(False).cast(pl.Int8).alias(f"{self._prefix}_{c}")
            for c in categories
        ]
        if other:
            exprs.append(
                (text.is_not_null() & ~_one_of(text, categories))
                .cast(pl.Int8)
                .alias(f"{self._prefix}_other")
            )
        out = lf.with_columns(exprs)
        if self.drop_original:
            out = out.drop(self.column)
        return out, self._with(columns, categories, other)


DatePart = Literal[
    "year", "quarter", "month", "week", "day", "weekday", "day_of_year", "hour", "minute", "second"
]
_PARTS: dict[str, Any] = {
    "year": lambda e: e.dt.year(),
    "quarter": lambda e: e.dt.quarter(),
    "month": lambda e: e.dt.month(),
    "week": lambda e: e.dt.week(),
    "day": lambda e: e.dt.day(),
    "weekday": lambda e: e.dt.weekday(),
    "day_of_year": lambda e: e.dt.ordinal_day(),
    "hour": lambda e: e.dt.hour(),
    "minute": lambda e: e.dt.minute(),
    "second": lambda e: e.dt.second(),
}
_TIME_PARTS = {"hour", "minute", "second"}


class DateParts(StepBase):
    """Add whole-number columns ``<prefix>_<part>`` from a date (weekday: Monday=1 … 7;
    week: ISO week)."""

    op: Literal["date_parts"]
    column: ColumnName
    parts: Annotated[list[DatePart], Field(min_length=1), AfterValidator(_unique)]
    prefix: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    drop_original: bool = False

    def _names(self) -> list[str]:
        prefix = self.prefix or self.column
        return [f"{prefix}_{part}" for part in self.parts]

    def check(self, columns: Columns) -> list[Issue]:
        issues = wrong_kind(columns, [self.column], TEMPORAL, "date_parts needs dates", "column")
        return issues + clashes(columns, self._names(), "parts")

    def output(self, columns: Columns) -> Columns:
        for name in self._names():
            columns = columns.put(
                ColumnSpec(name=name, type=ColumnType.integer, storage=STORAGE["integer"])
            )
        return columns.without([self.column]) if self.drop_original else columns

    def transform(
        self, lf: pl.LazyFrame, columns: Columns, ctx: RunContext
    ) -> tuple[pl.LazyFrame, Columns]:
        col = pl.col(self.column)
        timed = col.cast(pl.Datetime("us")) if columns.kind(self.column) == "date" else col
        exprs = [
            _PARTS[part](timed if part in _TIME_PARTS else col).cast(pl.Int64).alias(name)
            for part, name in zip(self.parts, self._names(), strict=True)
        ]
        out = lf.with_columns(exprs)
        if self.drop_original:
            out = out.drop(self.column)
        return out, self.output(columns)


# -- text --------------------------------------------------------------------------------------


class Replacement(BaseModel):
    """One find-and-replace of ``clean_text``."""

    model_config = ConfigDict(extra="forbid")

    pattern: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    #: The new text; with ``regex``, ``$1``/``${name}`` insert captured groups.
    replacement: Annotated[str, StringConstraints(max_length=1000)] = ""
    #: Read ``pattern`` as a regular expression (Rust ``regex`` syntax); else literal text.
    regex: bool = True


class CleanText(StepBase):
    """Tidy text columns. In this order: strip accents, replacements, collapse whitespace,
    trim, change case, empty text to missing."""

    op: Literal["clean_text"]
    columns: ColumnNames
    trim: bool = True
    case: Literal["lower", "upper", "title"] | None = None
    collapse_whitespace: bool = False
    strip_accents: bool = False
    replace: Annotated[list[Replacement], Field(max_length=50)] = []
    empty_to_null: bool = False

    def static_issues(self) -> list[Issue]:
        issues = []
        for i, item in enumerate(self.replace):
            problem = check_regex(item.pattern) if item.regex else None
            if problem:
                issues.append(Issue(problem, f"replace[{i}].pattern"))
        return issues

    def check(self, columns: Columns) -> list[Issue]:
        return wrong_kind(columns, self.columns, TEXT, "clean_text needs text; cast it first")

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        out = []
        for name in self.columns:
            expr = pl.col(name).cast(pl.String)
            if self.strip_accents:
                # Decompose (NFKD), then drop combining marks: "Crème" → "Creme".
                expr = expr.str.normalize("NFKD").str.replace_all(r"\p{Mn}", "")
            for item in self.replace:
                expr = expr.str.replace_all(item.pattern, item.replacement, literal=not item.regex)
            if self.collapse_whitespace:
                expr = expr.str.replace_all(r"\s+", " ")
            if self.trim:
                expr = expr.str.strip_chars()
            if self.case == "lower":
                expr = expr.str.to_lowercase()
            elif self.case == "upper":
                expr = expr.str.to_uppercase()
            elif self.case == "title":
                expr = expr.str.to_titlecase()
            if self.empty_to_null:
                expr = pl.when(expr == "").then(None).otherwise(expr)
            out.append(expr.alias(name))
        return out
