"""Rules every synthetic table keeps, applied around any method, and conditional sampling.

A method models the columns it is given; `ConstrainedSynthesizer` decides what it is given
and repairs or rejects what comes out, so every method gets the same guarantees:

- **Types**: output columns have the source's dtypes, in the source's order.
- **Identifiers** (schema type ``identifier`` or a ``unique`` constraint): never modelled;
  fresh unique values in the column's format (UUIDs stay UUIDs, ``CUST-00123`` gives
  ``CUST-48210``, integers keep their digit count) that never repeat a real value.
- **Bounds** (``bounds``): values clipped to ``[min, max]``.
- **Fixed combinations** (``fixed_combinations``): the columns are modelled as one column
  whose values are the combinations seen, so only those can come out.
- **Inequalities** (``inequality``, ``low < high``): ``high`` is modelled as its gap above
  ``low`` (SDV's transform; numbers and datetimes) and rebuilt as ``low + gap``.
- **Conditions** (column → value, None = missing): passed to the method (the copula meets
  them exactly); every drawn row is then checked against the conditions and all
  constraints, and rejected rows are drawn again in rounds sized by the acceptance rate
  seen, up to a budget; a condition no draw meets within it is a 400 that says so.

The same seed gives the same rows: the method is fitted with the seed, and each sampling
round gets a seed derived from it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.base import (
    Cancelled,
    Progress,
    Synthesizer,
    check_cancel,
    impossible_condition,
    type_of_dtype,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

#: Rounds of drawing before conditions or constraints that reject too much are given up.
MAX_ROUNDS = 20
#: Rows one round draws at most (memory bound of rejection sampling).
MAX_ROUND_ROWS = 2_000_000
#: Rows drawn in all before giving up: this many per requested row, and at least MIN_DRAWS.
DRAWS_PER_ROW = 50
MIN_DRAWS = 200_000
#: Prefix of the columns the constraints add for the method (combinations, gaps).
HIDDEN = "__synthex_"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bounds(_Rule):
    """Values of ``column`` stay within ``[min, max]`` (either may be omitted)."""

    type: Literal["bounds"]
    column: str
    min: float | str | None = None
    max: float | str | None = None


class Unique(_Rule):
    """``column`` gets fresh unique values in its format instead of modelled ones."""

    type: Literal["unique"]
    column: str


class FixedCombinations(_Rule):
    """Only combinations of ``columns``' values seen in the data appear."""

    type: Literal["fixed_combinations"]
    columns: list[str] = Field(min_length=2, max_length=16)


class Inequality(_Rule):
    """``low`` < ``high`` in every row (``<=`` when not ``strict``)."""

    type: Literal["inequality"]
    low: str
    high: str
    strict: bool = True


Constraint = Annotated[
    Bounds | Unique | FixedCombinations | Inequality, Field(discriminator="type")
]

_NUMERIC = frozenset({ColumnType.integer, ColumnType.float, ColumnType.datetime})


def constraint_problems(constraints: list[Constraint], schema: Schema) -> list[dict[str, Any]]:
    """What is wrong with ``constraints`` for ``schema`` (empty when they fit), each problem
    naming its field as ``constraints[i].<name>``."""
    specs = {c.name: c for c in schema}
    problems: list[dict[str, Any]] = []
    used: dict[str, int] = {}

    def check(i: int, name: str, column: str, types: frozenset[ColumnType] | None) -> None:
        field = f"constraints[{i}].{name}"
        spec = specs.get(column)
        if spec is None:
            problems.append({"field": field, "reason": f"no column {column!r}"})
        elif types is not None and spec.type not in types:
            allowed = ", ".join(sorted(t.value for t in types))
            problems.append(
                {"field": field, "reason": f"{column!r} is {spec.type.value}, not {allowed}"}
            )
        elif column in used and used[column] != i:
            problems.append(
                {"field": field, "reason": f"{column!r} is already in constraints[{used[column]}]"}
            )

    for i, rule in enumerate(constraints):
        if isinstance(rule, Bounds):
            check(i, "column", rule.column, _NUMERIC)
            if rule.min is None and rule.max is None:
                problems.append({"field": f"constraints[{i}]", "reason": "give min, max or both"})
            continue
        if isinstance(rule, Unique):
            check(i, "column", rule.column, None)
            used.setdefault(rule.column, i)
        elif isinstance(rule, FixedCombinations):
            if len(set(rule.columns)) != len(rule.columns):
                problems.append({"field": f"constraints[{i}].columns", "reason": "repeated"})
            for k, column in enumerate(rule.columns):
                check(i, f"columns[{k}]", column, None)
                used.setdefault(column, i)
        else:
            check(i, "low", rule.low, _NUMERIC)
            check(i, "high", rule.high, _NUMERIC)
            if rule.low == rule.high:
                problems.append({"field": f"constraints[{i}].high", "reason": "same as low"})
            elif rule.low in specs and rule.high in specs:
                low, high = specs[rule.low], specs[rule.high]
                if (low.type == ColumnType.datetime) != (high.type == ColumnType.datetime):
                    problems.append(
                        {"field": f"constraints[{i}].high", "reason": "compare like with like"}
                    )
            used.setdefault(rule.high, i)
    for column, i in used.items():
        spec = specs.get(column)
        if (
            spec is not None
            and spec.type == ColumnType.identifier
            and not isinstance(constraints[i], Unique)
        ):
            problems.append(
                {"field": f"constraints[{i}]", "reason": f"{column!r} is an identifier"}
            )
    return problems


def condition_problems(conditions: dict[str, Any], schema: Schema) -> list[dict[str, Any]]:
    """What is wrong with ``conditions`` for ``schema`` by type (empty when they fit); each
    problem names ``conditions.<column>``. Values are checked against the stored dtype
    again when the job runs."""
    specs = {c.name: c for c in schema}
    problems: list[dict[str, Any]] = []
    for column, value in conditions.items():
        field = f"conditions.{column}"
        spec = specs.get(column)
        if spec is None:
            problems.append({"field": field, "reason": "no such column"})
        elif spec.type == ColumnType.identifier:
            problems.append({"field": field, "reason": "identifiers are generated fresh"})
        elif value is None:
            continue
        elif not _fits(value, spec.type):
            problems.append({"field": field, "reason": f"not a {spec.type.value} value"})
    return problems


def _fits(value: Any, column_type: ColumnType) -> bool:
    if column_type == ColumnType.boolean:
        return isinstance(value, bool)
    if column_type == ColumnType.integer:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and float(value).is_integer()
    if column_type == ColumnType.float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == ColumnType.datetime:
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return isinstance(value, str | int | float | bool)


def coerce_value(value: Any, dtype: pl.DataType, column: str) -> Any:
    """``value`` (from JSON) as a Python value of ``dtype``; a 400 naming the condition
    when it is not one (dates and times are given as ISO 8601 strings)."""
    if value is None:
        return None
    series = pl.Series([value])
    try:
        if dtype.is_temporal() and series.dtype == pl.String:
            if dtype == pl.Date:
                series = series.str.to_date()
            else:
                series = series.str.to_datetime().cast(dtype)
        else:
            series = series.cast(dtype, strict=True)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise Invalid(
            f"{value!r} is not a value of {column} ({dtype})",
            details=[{"field": f"conditions.{column}", "reason": f"not a {dtype} value"}],
        ) from exc
    return series[0]


# --------------------------------------------------------------------------------------
# Identifiers


@dataclass
class IdentifierFormat:
    """How a column's identifiers look, learnt from its values."""

    kind: Literal["uuid", "integer", "pattern"]
    #: integer: digit count range; pattern: one entry per character, a literal or a class
    #: ("9" digit, "A" upper, "a" lower, "x" lower hex, "X" upper hex).
    digits: tuple[int, int] = (1, 18)
    template: tuple[tuple[bool, str], ...] = ()

    @classmethod
    def learn(cls, series: pl.Series) -> IdentifierFormat:
        """The format most of ``series``' values share."""
        values = series.drop_nulls()
        if series.dtype.is_integer():
            ints = values.cast(pl.Int64).to_numpy()
            lengths = (
                [len(str(abs(int(v)))) for v in (ints.min(), ints.max())] if ints.size else [1]
            )
            return cls("integer", digits=(min(lengths), max(max(lengths), 1)))
        text = values.cast(pl.String).head(10_000).to_list()
        if text and sum(bool(_UUID.match(v)) for v in text) >= 0.9 * len(text):
            return cls("uuid")
        shapes = Counter(_shape(v) for v in text)
        if not shapes:
            return cls("uuid")
        shape = shapes.most_common(1)[0][0]
        sample = [v for v in text if _shape(v) == shape]
        template = []
        for k, char_class in enumerate(shape):
            chars = {v[k] for v in sample}
            # Digits always vary (C-1000…C-1299 share a "1" by chance, not by format);
            # a letter or symbol every value shares is part of the format (a prefix).
            literal = len(chars) == 1 and char_class != "9" and (len(sample) > 1 or k > 0)
            template.append((literal, next(iter(chars)) if literal else char_class))
        return cls("pattern", template=tuple(template))

    def widened(self, needed: float) -> IdentifierFormat:
        """The format with more digits until it holds ``needed`` values (more digits in
        the last run of digits, or digits appended): 3 million ids from ``C-1234``-style
        values become ``C-1234567``-style."""
        fmt = self
        while fmt.capacity() < needed * 4:
            if fmt.kind == "integer":
                fmt = IdentifierFormat("integer", digits=(fmt.digits[0], fmt.digits[1] + 1))
                continue
            if fmt.kind != "pattern":
                return fmt
            template = list(fmt.template)
            digits = [k for k, (lit, c) in enumerate(template) if not lit and c == "9"]
            template.insert(digits[-1] + 1 if digits else len(template), (False, "9"))
            fmt = IdentifierFormat("pattern", template=tuple(template))
        return fmt

    def capacity(self) -> float:
        """How many distinct values the format allows."""
        if self.kind == "uuid":
            return 2.0**122
        if self.kind == "integer":
            return 10.0 ** self.digits[1] - 10.0 ** (self.digits[0] - 1)
        sizes = {"9": 10, "A": 26, "a": 26, "x": 16, "X": 16}
        return math.prod(1.0 if lit else float(sizes[c]) for lit, c in self.template)

    def draw(self, n: int, rng: np.random.Generator) -> list[Any]:
        """``n`` random values of the format (may repeat; the caller makes them unique)."""
        if self.kind == "uuid":
            raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
            raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4 (RFC 9562 §5.4)
            raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # variant 10
            hexes = [row.tobytes().hex() for row in raw]
            return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexes]
        if self.kind == "integer":
            low, high = 10 ** (self.digits[0] - 1), 10 ** self.digits[1]
            drawn: list[Any] = rng.integers(max(low, 1), high, size=n).tolist()
            return drawn
        alphabets = {
            "9": "0123456789",
            "A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "a": "abcdefghijklmnopqrstuvwxyz",
            "x": "0123456789abcdef",
            "X": "0123456789ABCDEF",
        }
        columns = []
        for literal, char in self.template:
            if literal:
                columns.append(np.full(n, char, dtype="<U1"))
            else:
                alphabet = np.array(list(alphabets[char]), dtype="<U1")
                columns.append(alphabet[rng.integers(0, alphabet.size, size=n)])
        if not columns:
            return [""] * n
        chars = np.ascontiguousarray(np.stack(columns, axis=1))
        values: list[Any] = chars.view(f"<U{len(columns)}").ravel().tolist()
        return values


def _shape(value: str) -> str:
    return "".join(
        "9" if c.isdigit() else "A" if c.isupper() else "a" if c.islower() else c for c in value
    )


def fresh_identifiers(
    fmt: IdentifierFormat, n: int, taken: pl.Series, dtype: pl.DataType, rng: np.random.Generator
) -> pl.Series:
    """``n`` distinct values of ``fmt`` (widened when too small), none in ``taken``."""
    fmt = fmt.widened(n + taken.len())
    if fmt.capacity() < n + taken.len():
        raise Invalid(
            f"The identifier format of {taken.name} allows about {fmt.capacity():.0f} values; "
            f"{n} new ones that differ from the {taken.len()} real ones do not fit.",
            details=[{"field": "rows", "reason": "identifier format too small"}],
        )
    real = set(taken.cast(pl.String).to_list())
    out: list[Any] = []
    seen: set[str] = set()
    for _ in range(50):
        for value in fmt.draw(int((n - len(out)) * 1.1) + 8, rng):
            key = str(value)
            if key not in seen and key not in real:
                seen.add(key)
                out.append(value)
                if len(out) == n:
                    return pl.Series(taken.name, out).cast(dtype)
    raise Invalid(
        f"Could not make {n} unique values for identifier {taken.name}",
        details=[{"field": "rows", "reason": "identifier format too small"}],
    )


# --------------------------------------------------------------------------------------
# The wrapper


class ConstrainedSynthesizer:
    """Any method with the schema's and the configuration's rules applied around it."""

    def __init__(
        self,
        method: Synthesizer,
        constraints: list[Constraint] | None = None,
        *,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.method = method
        self.constraints = list(constraints or [])
        self.max_rounds = max_rounds
        self._columns: list[str] = []
        self._dtypes: dict[str, pl.DataType] = {}
        self._identifiers: dict[str, tuple[IdentifierFormat, pl.Series]] = {}
        self._combinations: list[tuple[str, pl.DataFrame]] = []
        self._gaps: list[tuple[str, Inequality]] = []
        self._bounds: list[tuple[str, Any, Any]] = []
        self._modelled: set[str] = set()

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> None:
        """Check the rules against ``data``, transform it, and fit the method on it."""
        declared = {c.name: c for c in schema}
        schema = [
            declared.get(name) or ColumnSpec(name=name, type=type_of_dtype(dtype))
            for name, dtype in data.schema.items()
        ]
        problems = constraint_problems(self.constraints, schema)
        if problems:
            raise Invalid("The constraints do not fit the data's schema.", details=problems)
        self._columns, self._dtypes = list(data.columns), dict(data.schema)
        unique = {c.name for c in schema if c.type == ColumnType.identifier}
        unique |= {r.column for r in self.constraints if isinstance(r, Unique)}
        self._identifiers = {
            name: (IdentifierFormat.learn(data[name]), data[name].drop_nulls().unique())
            for name in sorted(unique)
        }
        model = data.drop(list(unique))
        model_schema = [c for c in schema if c.name not in unique]
        self._combinations, self._gaps, self._bounds = [], [], []
        # Gaps first: an inequality's low column may be part of a fixed combination.
        ordered = sorted(
            enumerate(self.constraints), key=lambda r: not isinstance(r[1], Inequality)
        )
        for i, rule in ordered:
            check_cancel(cancelled)
            if isinstance(rule, FixedCombinations):
                name = f"{HIDDEN}combination_{i}"
                combos = model.select(rule.columns).unique(maintain_order=True)
                combos = combos.with_row_index(name).with_columns(
                    pl.col(name).cast(pl.Int64), pl.lit(True).alias(f"{HIDDEN}seen_{i}")
                )
                model = model.join(
                    combos.drop(f"{HIDDEN}seen_{i}"), on=rule.columns, how="left", nulls_equal=True
                ).drop(rule.columns)
                model_schema = [c for c in model_schema if c.name not in rule.columns]
                model_schema.append(ColumnSpec(name=name, type=ColumnType.categorical))
                self._combinations.append((name, combos))
            elif isinstance(rule, Inequality):
                broken = model.filter(_breaks(pl.col(rule.low), pl.col(rule.high), rule.strict))
                if broken.height:
                    raise Invalid(
                        f"The data breaks constraint {i} ({rule.low} < {rule.high}) in "
                        f"{broken.height} rows; fix them or drop the constraint.",
                        details=[{"field": f"constraints[{i}]", "reason": "broken by the data"}],
                    )
                name = f"{HIDDEN}gap_{i}"
                gap = _physical(model[rule.high]) - _physical(model[rule.low])
                model = model.with_columns(gap.alias(name)).drop(rule.high)
                model_schema = [c for c in model_schema if c.name != rule.high]
                model_schema.append(ColumnSpec(name=name, type=ColumnType.float))
                self._gaps.append((name, rule))
            elif isinstance(rule, Bounds):
                dtype = self._dtypes[rule.column]
                self._bounds.append(
                    (
                        rule.column,
                        coerce_value(rule.min, dtype, rule.column),
                        coerce_value(rule.max, dtype, rule.column),
                    )
                )
        self._modelled = set(model.columns)
        self.method.fit(model, model_schema, seed=seed, progress=progress, cancelled=cancelled)

    def reserve(self, real: pl.DataFrame) -> None:
        """Also keep fresh identifiers clear of ``real``'s (real rows not given to ``fit``,
        such as an evaluation's holdout)."""
        for name, (fmt, taken) in self._identifiers.items():
            if name in real.columns:
                more = real[name].drop_nulls().cast(taken.dtype)
                self._identifiers[name] = (fmt, pl.concat([taken, more]).unique())

    def sample(
        self,
        n: int,
        *,
        seed: int | None,
        conditions: dict[str, Any] | None = None,
        cancelled: Cancelled | None = None,
    ) -> pl.DataFrame:
        """``n`` rows keeping every rule and meeting ``conditions`` (column → value)."""
        conditions = self._coerce(conditions or {})
        # The method sees conditions only on columns it models unchanged.
        hint = {k: v for k, v in conditions.items() if k in self._modelled}
        rounds = np.random.SeedSequence(seed).spawn(self.max_rounds)
        kept: list[pl.DataFrame] = []
        have = drawn = 0
        budget = max(MIN_DRAWS, DRAWS_PER_ROW * n)
        for round_seed in rounds:
            check_cancel(cancelled)
            if drawn >= budget:
                break
            rate = have / drawn if drawn else 1.0
            want = n - have
            size = min(
                MAX_ROUND_ROWS,
                budget - drawn if drawn else n,
                max(want, math.ceil(want / max(rate, 1e-3) * 1.2)),
            )
            frame = self.method.sample(
                size, seed=int(round_seed.generate_state(1)[0]), conditions=hint or None
            )
            frame = self._restore(frame)
            drawn += frame.height
            good = frame
            if conditions or self._gaps or self._combinations:
                good = frame.filter(self._accepts(conditions)).drop(self._hidden())
            kept.append(good.head(want))
            have += min(good.height, want)
            if have >= n:
                break
        if have < n:
            shown = ", ".join(f"{k} = {v!r}" for k, v in conditions.items()) or "the constraints"
            raise Invalid(
                f"Only {have} of {n} rows met {shown} after {drawn} draws; the method rarely "
                "or never makes such rows. Relax the conditions or use a method that "
                "conditions exactly (gaussian_copula).",
                code="CONDITION_IMPOSSIBLE",
                details=[{"field": "conditions", "reason": f"acceptance {have}/{drawn}"}],
            )
        out = pl.concat(kept)
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(self.max_rounds + 1)[-1])
        for name, (fmt, taken) in self._identifiers.items():
            out = out.with_columns(fresh_identifiers(fmt, n, taken, self._dtypes[name], rng))
        return out.select(self._columns)

    # -- internals -----------------------------------------------------------------------

    def _coerce(self, conditions: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for column, value in conditions.items():
            if column not in self._dtypes:
                raise impossible_condition(column, value, "there is no such column")
            if column in self._identifiers:
                raise impossible_condition(column, value, "identifiers are generated fresh")
            out[column] = coerce_value(value, self._dtypes[column], column)
        for column, low, high in self._bounds:
            value = out.get(column)
            if value is not None and (
                (low is not None and value < low) or (high is not None and value > high)
            ):
                raise impossible_condition(column, value, "it is outside the column's bounds")
        return out

    def _restore(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The method's columns back to the source's (combinations, gaps, bounds, dtypes)."""
        for name, combos in self._combinations:
            frame = frame.join(combos, on=name, how="left", maintain_order="left").drop(name)
        for name, rule in self._gaps:
            gap = frame[name].fill_nan(None).clip(lower_bound=0.0)
            high = _physical(frame[rule.low]) + gap
            dtype = self._dtypes[rule.high]
            if not dtype.is_float():
                high = high.round()
            frame = frame.with_columns(_from_physical(high, dtype).alias(rule.high)).drop(name)
        for column, low, high in self._bounds:
            frame = frame.with_columns(pl.col(column).clip(low, high))
        casts = [
            pl.col(c).cast(self._dtypes[c])
            for c, dtype in frame.schema.items()
            if c in self._dtypes and dtype != self._dtypes[c]
        ]
        return frame.with_columns(casts) if casts else frame

    def _hidden(self) -> list[str]:
        return [name.replace("combination", "seen") for name, _ in self._combinations]

    def _accepts(self, conditions: dict[str, Any]) -> pl.Expr:
        """Rows meeting every condition and inequality."""
        keep = pl.lit(True)
        for column, value in conditions.items():
            keep &= pl.col(column).is_null() if value is None else pl.col(column) == value
        for name, _ in self._combinations:
            # A code the method made up (or a DP method's "other") is no seen combination.
            keep &= pl.col(name.replace("combination", "seen")).is_not_null()
        for _, rule in self._gaps:
            keep &= ~_breaks(pl.col(rule.low), pl.col(rule.high), rule.strict).fill_null(False)
        return keep


def _breaks(low: pl.Expr, high: pl.Expr, strict: bool) -> pl.Expr:
    return low >= high if strict else low > high


def _physical(series: pl.Series) -> pl.Series:
    if series.dtype.is_temporal():
        series = series.to_physical()
    return series.cast(pl.Float64)


def _from_physical(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    if dtype.is_temporal():
        physical = pl.Series([], dtype=dtype).to_physical().dtype
        return values.cast(pl.Int64).cast(physical).cast(dtype)
    return values.cast(dtype)
