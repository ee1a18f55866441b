"""What every synthesis method is, and the column encoding the methods share.

A method is a class with a ``name``, a pydantic ``Params`` model and ``fit``/``sample`` on
polars frames (`Synthesizer`). Methods see only the columns they model: identifiers,
bounds, fixed combinations, inequalities and conditions are applied once around any method
by ``generators.constraints``. Methods are found by name in ``generators.methods.METHODS``
and imported only when used, so PyTorch is loaded only for the neural methods.

The encoding helpers (`TableEncoding`) turn a frame into the two matrices most methods work
on and back again, keeping each column's storage dtype:

- *continuous* columns (integer, float, datetime): float64, datetimes by their physical
  value (epoch in the column's own unit), missing values NaN;
- *discrete* columns (categorical, boolean, text): int64 codes into the categories seen,
  missing values ``-1``.

Decoding rounds integer columns, clips every continuous column to the range seen in the
data, and maps codes back to the original values, so a method cannot emit a type, a bound
or a category the data did not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import polars as pl
from pydantic import BaseModel

from inwire.kit.errors import Invalid
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

#: How a method reports progress: a fraction from 0 to 1 and a message.
Progress = Callable[[float, str], None]
#: How a method asks whether its job was cancelled (checked between steps).
Cancelled = Callable[[], bool]

#: Types modelled as numbers.
CONTINUOUS_TYPES = frozenset({ColumnType.integer, ColumnType.float, ColumnType.datetime})
#: Types modelled as categories of the values seen.
DISCRETE_TYPES = frozenset({ColumnType.categorical, ColumnType.boolean, ColumnType.text})
#: Types no method models: the constraints layer makes fresh values for them.
GENERATED_TYPES = frozenset({ColumnType.identifier})


class FitCancelled(Exception):
    """A fit stopped because its job was cancelled."""


@runtime_checkable
class Synthesizer(Protocol):
    """A synthesis method: learns a table, then samples new rows like it.

    Built as ``Method(params)`` with a ``Params`` instance, a dict (validated; a
    ``pydantic.ValidationError`` names the field) or None for the defaults. ``fit`` gets
    the modelled columns only (no identifiers) with their schema; ``sample`` returns
    exactly ``n`` rows with the same columns and dtypes. The same seed gives the same fit
    and the same rows. ``conditions`` (column → value) are a hint a method may use to
    sample such rows directly; the constraints layer keeps only rows that meet them, so a
    method that ignores them stays correct (just slower).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: Any = None) -> None:
        """A synthesizer with ``params`` (a ``Params``, a dict to validate, or None)."""
        ...

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> None:
        """Learn ``data``; call ``progress`` now and then and stop when ``cancelled()``."""
        ...

    def sample(
        self, n: int, *, seed: int | None, conditions: dict[str, Any] | None = None
    ) -> pl.DataFrame:
        """``n`` synthetic rows."""
        ...


def impossible_condition(column: str, value: Any, why: str) -> Invalid:
    """The 400 for a condition no synthetic row can meet, naming the column."""
    return Invalid(
        f"No row can have {column} = {value!r}: {why}.",
        code="CONDITION_IMPOSSIBLE",
        details=[{"field": f"conditions.{column}", "reason": why}],
    )


def check_cancel(cancelled: Cancelled | None) -> None:
    """Raise `FitCancelled` if the job was cancelled."""
    if cancelled is not None and cancelled():
        raise FitCancelled("the fit was cancelled")


def is_continuous(spec: ColumnSpec, dtype: pl.DataType) -> bool:
    """Whether a column is modelled as a number: a continuous type stored as one."""
    return spec.type in CONTINUOUS_TYPES and (dtype.is_numeric() or dtype.is_temporal())


# --------------------------------------------------------------------------------------
# Column encoding


@dataclass
class ContinuousColumn:
    """A numeric or temporal column as float64, with what decoding needs."""

    name: str
    dtype: pl.DataType
    #: Whole numbers (integer type or integer/temporal storage): decoding rounds.
    whole: bool
    low: float
    high: float
    #: Share of missing values in the data.
    missing: float


@dataclass
class DiscreteColumn:
    """A categorical, boolean or text column as codes into the categories seen."""

    name: str
    dtype: pl.DataType
    #: The distinct non-missing values, in first-seen order of their sorted frequency.
    categories: pl.Series
    #: Share of each category among non-missing values.
    frequencies: np.ndarray
    missing: float


@dataclass
class TableEncoding:
    """How a frame maps to a float matrix (continuous) and a code matrix (discrete).

    Built from the data with `TableEncoding.fit`; ``encode`` and ``decode`` then convert
    any frame with the same columns. ``columns`` keeps the frame's column order.
    """

    columns: list[str]
    continuous: list[ContinuousColumn] = field(default_factory=list)
    discrete: list[DiscreteColumn] = field(default_factory=list)

    @classmethod
    def fit(cls, data: pl.DataFrame, schema: Schema) -> TableEncoding:
        """Learn types, ranges, categories and missing shares of ``data``'s columns.

        Columns of ``data`` missing from ``schema`` are treated by their storage dtype;
        schema entries without a column in ``data`` are ignored.
        """
        specs = {c.name: c for c in schema}
        encoding = cls(columns=list(data.columns))
        n = max(data.height, 1)
        discrete: list[str] = []
        for name in data.columns:
            series = data.get_column(name)
            spec = specs.get(name) or ColumnSpec(name=name, type=type_of_dtype(series.dtype))
            if not is_continuous(spec, series.dtype):
                discrete.append(name)
                continue
            values = to_float(series)
            present = np.isfinite(values)
            finite = values[present]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0, 0)
            whole = spec.type == ColumnType.integer or not series.dtype.is_float()
            missing = 1.0 - finite.size / n
            encoding.continuous.append(
                ContinuousColumn(name, series.dtype, whole, low, high, missing)
            )
        # Every discrete column's categories in one query (a query per column costs more
        # than the counting): most frequent first, ties by value, so the order (and with
        # it every code) is the same on every run.
        counts = data.select(_category_counts(name) for name in discrete) if discrete else None
        for name in discrete:
            assert counts is not None
            table = counts.get_column(name)[0]
            frequency = table.struct.field(COUNT).to_numpy().astype(np.float64)
            total = max(float(frequency.sum()), 1.0)
            encoding.discrete.append(
                DiscreteColumn(
                    name,
                    data.schema[name],
                    table.struct.field(name).alias(name),
                    frequency / total,
                    1.0 - total / n if data.height else 0.0,
                )
            )
        return encoding

    @property
    def continuous_names(self) -> list[str]:
        """Names of the continuous columns, in matrix order."""
        return [c.name for c in self.continuous]

    @property
    def discrete_names(self) -> list[str]:
        """Names of the discrete columns, in matrix order."""
        return [c.name for c in self.discrete]

    def encode(self, data: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``data`` as (continuous float64 matrix with NaN, discrete int64 matrix with -1)."""
        # Column-major: every column is written and read as one contiguous run.
        numbers = np.empty((len(self.continuous), data.height), dtype=np.float64).T
        for j, c in enumerate(self.continuous):
            numbers[:, j] = to_float(data.get_column(c.name))
        codes = np.empty((len(self.discrete), data.height), dtype=np.int64).T
        if self.discrete:
            coded = data.select(
                _to_codes(d.name, d.categories, data.schema[d.name]) for d in self.discrete
            )
            for j, d in enumerate(self.discrete):
                codes[:, j] = coded.get_column(d.name).to_numpy()
        return numbers, codes

    def decode(self, numbers: np.ndarray, codes: np.ndarray) -> pl.DataFrame:
        """The frame for the matrices: dtypes restored, integers rounded, ranges clipped."""
        series: dict[str, pl.Series] = {}
        for j, c in enumerate(self.continuous):
            series[c.name] = from_float(numbers[:, j], c)
        height = numbers.shape[0] if self.continuous else codes.shape[0]
        if self.discrete:
            coded = pl.DataFrame(
                {d.name: codes[:, j] for j, d in enumerate(self.discrete)}, height=height
            ).select(_from_codes(d) for d in self.discrete)
            series.update({name: coded.get_column(name) for name in coded.columns})
        return pl.DataFrame([series[name] for name in self.columns], height=height)


def type_of_dtype(dtype: pl.DataType) -> ColumnType:
    """The logical type a column has when the schema does not say."""
    if dtype.is_integer():
        return ColumnType.integer
    if dtype.is_float():
        return ColumnType.float
    if dtype.is_temporal():
        return ColumnType.datetime
    if dtype == pl.Boolean:
        return ColumnType.boolean
    return ColumnType.categorical


#: Name of the count field in category tables (not a name a data column is likely to have).
COUNT = "__synthex_count"


def _category_counts(name: str) -> pl.Expr:
    """A one-row list of (value, count) structs, most frequent first, ties by value."""
    element = pl.element()
    return (
        pl.col(name)
        .drop_nulls()
        .value_counts(name=COUNT)
        .implode()
        .list.eval(
            element.sort_by(
                element.struct.field(COUNT), element.struct.field(name), descending=[True, False]
            )
        )
    )


def _to_codes(name: str, categories: pl.Series, dtype: pl.DataType) -> pl.Expr:
    """Codes of a column into ``categories``; missing or unseen values → -1."""
    return (
        pl.col(name)
        .replace_strict(
            categories.cast(dtype, strict=False),
            pl.int_range(categories.len(), dtype=pl.Int64, eager=True),
            default=-1,
            return_dtype=pl.Int64,
        )
        .alias(name)
    )


def _from_codes(column: DiscreteColumn) -> pl.Expr:
    """Values of a column of codes (-1 → missing)."""
    return (
        pl.col(column.name)
        .replace_strict(
            pl.int_range(column.categories.len(), dtype=pl.Int64, eager=True),
            column.categories,
            default=None,
            return_dtype=column.dtype,
        )
        .alias(column.name)
    )


def to_float(series: pl.Series) -> np.ndarray:
    """A numeric or temporal column as float64; temporal values by their physical value
    (epoch in the column's unit: days for dates, µs/ns/ms for datetimes); missing → NaN."""
    if series.dtype.is_temporal():
        series = series.to_physical()
    if series.dtype == pl.Boolean:
        series = series.cast(pl.Float64)
    values: np.ndarray = series.to_numpy()  # numbers with nulls come back as float NaN
    return values.astype(np.float64, copy=False)


def from_float(values: np.ndarray, column: ContinuousColumn) -> pl.Series:
    """Floats back to ``column``'s dtype: clipped to its range, rounded when whole, NaN →
    missing."""
    out = np.clip(values, column.low, column.high)
    if column.whole:
        out = np.round(out)
    series = pl.Series(column.name, out, nan_to_null=True)
    if column.dtype.is_temporal():
        physical = pl.Series([], dtype=column.dtype).to_physical().dtype
        return series.cast(pl.Int64).cast(physical).cast(column.dtype)
    return series.cast(column.dtype, strict=False)


def encode_codes(series: pl.Series, categories: pl.Series) -> np.ndarray:
    """Codes of ``series`` into ``categories``; missing or unseen values → -1."""
    lookup = pl.DataFrame(
        {"value": categories, "code": pl.int_range(categories.len(), dtype=pl.Int64, eager=True)}
    )
    joined = pl.DataFrame({"value": series.cast(categories.dtype, strict=False)}).join(
        lookup, on="value", how="left", maintain_order="left"
    )
    return joined.get_column("code").fill_null(-1).to_numpy().astype(np.int64, copy=False)
