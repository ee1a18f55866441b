"""Per-column distributions, and the baseline that samples every column independently.

Each column gets a distribution (`ContinuousMarginal`, `DiscreteMarginal`) used both ways:

- the fit (``TableMarginals.fit`` with a generator) maps each value to a uniform score by
  the *distributional transform* (Rüschendorf 2009, "On the distributional transform,
  Sklar's theorem, and the empirical copula process"): u = F(x-) + V·(F(x) - F(x-)) with
  V uniform. Tied values (integers,
  repeated amounts, categories) spread over their probability interval instead of sharing
  one score, so the scores are exactly uniform and correlations between them are not
  biased by ties. Categories take intervals in order of frequency (the "frequency
  encoding" of SDV's copula), missing values an interval of their own.
- ``from_uniform`` is the inverse: a step function over the values seen when a column has
  few distinct values (its marginal is reproduced exactly), otherwise linear interpolation
  between at most ``max_knots`` quantiles (new values within the observed range; integers
  rounded afterwards).

Missing values of a continuous column are a separate two-way variable (missing or not,
`MissingIndicator`) so that a model can correlate them with the other columns.

`IndependentMarginals` draws each column from its own marginal: the cheapest method, and
the reference that shows what a model of the dependence adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from inwire.services.synthex.generators.base import (
    Cancelled,
    ContinuousColumn,
    DiscreteColumn,
    Progress,
    TableEncoding,
    check_cancel,
)
from inwire.services.synthex.schema import Schema


class MarginalsParams(BaseModel):
    """Parameters of the per-column distributions."""

    model_config = ConfigDict(extra="forbid")

    max_knots: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description=(
            "Quantiles kept per numeric column. A column with at most this many distinct "
            "values keeps them all (its distribution is reproduced exactly); otherwise new "
            "values are interpolated between quantiles."
        ),
    )


@dataclass
class ContinuousMarginal:
    """The empirical distribution of a numeric column's non-missing values."""

    column: ContinuousColumn
    #: Knots of the inverse distribution: cumulative probabilities and their values.
    probabilities: np.ndarray
    values: np.ndarray
    #: Step function over distinct values (True) or interpolation between quantiles.
    step: bool

    @classmethod
    def fit(
        cls,
        column: ContinuousColumn,
        values: np.ndarray,
        max_knots: int,
        rng: np.random.Generator | None = None,
    ) -> tuple[ContinuousMarginal, np.ndarray | None]:
        """Learn the distribution of ``values`` (NaN = missing, ignored); with ``rng``, also
        the uniform score of each value (NaN where missing).

        One stable sort does everything: runs of equal values in sorted order give the
        distinct values, their counts and each value's interval [F(x-), F(x)).
        """
        present = np.isfinite(values)
        x = values[present]
        scores = np.full(values.shape, np.nan) if rng is not None else None
        if x.size == 0:
            return cls(column, np.array([0.0, 1.0]), np.array([np.nan, np.nan]), True), scores
        order = np.argsort(x, kind="stable")
        ordered = x[order]
        starts_run = np.empty(ordered.size, dtype=bool)
        starts_run[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts_run[1:])
        starts = np.flatnonzero(starts_run)
        counts = np.diff(np.append(starts, ordered.size))
        if scores is not None and rng is not None:
            run = np.cumsum(starts_run) - 1
            sorted_scores = (starts[run] + rng.random(ordered.size) * counts[run]) / ordered.size
            in_data_order = np.empty(ordered.size)
            in_data_order[order] = sorted_scores
            scores[present] = in_data_order
        if starts.size <= max_knots:
            cumulative = np.cumsum(counts) / ordered.size
            return cls(column, cumulative, ordered[starts], True), scores
        probabilities = np.linspace(0.0, 1.0, max_knots)
        # Linear-interpolation quantiles of the sorted values (numpy's default method).
        position = probabilities * (ordered.size - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, ordered.size - 1)
        knots = ordered[low] + (position - low) * (ordered[high] - ordered[low])
        return cls(column, probabilities, knots, False), scores

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Values for uniform scores ``u``."""
        if self.step:
            index = np.searchsorted(self.probabilities, u, side="right")
            result: np.ndarray = self.values[np.minimum(index, self.values.size - 1)]
            return result
        interpolated: np.ndarray = np.interp(u, self.probabilities, self.values)
        return interpolated

    def interval(self, value: float) -> tuple[float, float] | None:
        """The scores that decode to ``value``, or None if the data never reaches it."""
        if self.values.size == 0 or not self.values[0] <= value <= self.values[-1]:
            return None
        if self.step:
            index = int(np.searchsorted(self.values, value, side="left"))
            if self.values[index] != value:
                return None
            low = float(self.probabilities[index - 1]) if index else 0.0
            return low, float(self.probabilities[index])
        u = float(np.interp(value, self.values, self.probabilities))
        return u, u


@dataclass
class DiscreteMarginal:
    """Category frequencies of a discrete column; code ``-1`` (missing) is category 0."""

    column: DiscreteColumn
    #: Cumulative probability at the end of each slot: [missing, category 0, category 1, …],
    #: categories ordered by frequency (most frequent first).
    cumulative: np.ndarray

    @classmethod
    def fit(cls, column: DiscreteColumn, codes: np.ndarray) -> DiscreteMarginal:
        """Learn the frequencies of ``codes`` (``-1`` = missing)."""
        counts = np.bincount(codes + 1, minlength=column.categories.len() + 1).astype(float)
        return cls(column, np.cumsum(counts) / max(counts.sum(), 1.0))

    def to_uniform(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform scores: each code spread over its probability interval."""
        slots = codes + 1
        start = np.concatenate([[0.0], self.cumulative[:-1]])
        u: np.ndarray = start[slots] + rng.random(codes.size) * (
            self.cumulative[slots] - start[slots]
        )
        return u

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Codes (``-1`` = missing) for uniform scores ``u``."""
        slots = np.searchsorted(self.cumulative, u, side="right")
        return np.minimum(slots, self.cumulative.size - 1) - 1

    def interval(self, code: int) -> tuple[float, float] | None:
        """The scores of code ``code`` (``-1`` = missing), or None if it never occurs."""
        slot = code + 1
        low = 0.0 if slot == 0 else float(self.cumulative[slot - 1])
        high = float(self.cumulative[slot])
        return (low, high) if high > low else None


@dataclass
class MissingIndicator:
    """Whether a continuous column's value is missing, as a two-way variable."""

    column: str
    #: Share of missing values: scores below it mean "missing".
    share: float

    def to_uniform(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scores in [0, share) for missing values, [share, 1) for present ones."""
        missing = ~np.isfinite(values)
        v = rng.random(values.size)
        return np.where(missing, v * self.share, self.share + v * (1.0 - self.share))

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """True where the value is missing."""
        missing: np.ndarray = u < self.share
        return missing

    def interval(self, missing: bool) -> tuple[float, float] | None:
        """The scores meaning ``missing`` (or present), or None if that never happens."""
        low, high = (0.0, self.share) if missing else (self.share, 1.0)
        return (low, high) if high > low else None


@dataclass
class TableMarginals:
    """Every column's marginal, in one order of uniform dimensions.

    Dimensions: each continuous column, then each discrete column, then one missing
    indicator per continuous column with missing values.
    """

    encoding: TableEncoding
    continuous: list[ContinuousMarginal]
    discrete: list[DiscreteMarginal]
    indicators: list[tuple[int, MissingIndicator]]

    @classmethod
    def fit(
        cls,
        data: pl.DataFrame,
        schema: Schema,
        max_knots: int,
        cancelled: Cancelled | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[TableMarginals, np.ndarray | None]:
        """The marginals of ``data``; with ``rng``, also its uniform scores, one column per
        dimension (column-major; NaN where a number is missing)."""
        encoding = TableEncoding.fit(data, schema)
        numbers, codes = encoding.encode(data)
        continuous = []
        indicators = []
        scores: list[np.ndarray | None] = []
        for j, column in enumerate(encoding.continuous):
            check_cancel(cancelled)
            marginal, u = ContinuousMarginal.fit(column, numbers[:, j], max_knots, rng)
            continuous.append(marginal)
            scores.append(u)
            share = float((~np.isfinite(numbers[:, j])).mean()) if data.height else 0.0
            if share > 0:
                indicators.append((j, MissingIndicator(column.name, share)))
        discrete = [
            DiscreteMarginal.fit(column, codes[:, j]) for j, column in enumerate(encoding.discrete)
        ]
        marginals = cls(encoding, continuous, discrete, indicators)
        if rng is None:
            return marginals, None
        u = np.empty((marginals.dimensions, data.height)).T  # each dimension contiguous
        for j, score in enumerate(scores):
            u[:, j] = score
        offset = len(continuous)
        for j, d in enumerate(discrete):
            u[:, offset + j] = d.to_uniform(codes[:, j], rng)
        offset += len(discrete)
        for k, (j, indicator) in enumerate(indicators):
            u[:, offset + k] = indicator.to_uniform(numbers[:, j], rng)
        return marginals, u

    @property
    def dimensions(self) -> int:
        """How many uniform dimensions the table has."""
        return len(self.continuous) + len(self.discrete) + len(self.indicators)

    def from_uniform(self, u: np.ndarray) -> pl.DataFrame:
        """The frame for a matrix (rows, dimensions) of uniform scores."""
        numbers = np.empty((len(self.continuous), u.shape[0])).T
        for j, m in enumerate(self.continuous):
            numbers[:, j] = m.from_uniform(u[:, j])
        offset = len(self.continuous)
        codes = np.empty((len(self.discrete), u.shape[0]), dtype=np.int64).T
        for j, d in enumerate(self.discrete):
            codes[:, j] = d.from_uniform(u[:, offset + j])
        offset += len(self.discrete)
        for k, (j, indicator) in enumerate(self.indicators):
            numbers[indicator.from_uniform(u[:, offset + k]), j] = np.nan
        return self.encoding.decode(numbers, codes)


class IndependentMarginals:
    """Each column drawn from its own distribution, ignoring every other column."""

    name: ClassVar[str] = "marginals"
    Params: ClassVar[type[BaseModel]] = MarginalsParams

    def __init__(self, params: MarginalsParams | dict[str, Any] | None = None) -> None:
        raw = params.model_dump() if isinstance(params, BaseModel) else params or {}
        self.params = MarginalsParams.model_validate(raw)
        self._marginals: TableMarginals | None = None
        self._height = 0

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> None:
        """Learn each column's distribution."""
        self._marginals, _ = TableMarginals.fit(data, schema, self.params.max_knots, cancelled)
        self._height = data.height
        if progress is not None:
            progress(1.0, f"learnt {self._marginals.dimensions} marginal distributions")

    def sample(
        self, n: int, *, seed: int | None, conditions: dict[str, Any] | None = None
    ) -> pl.DataFrame:
        """``n`` rows, each column independent (conditions are left to the caller)."""
        if self._marginals is None:
            raise RuntimeError("fit the synthesizer before sampling")
        rng = np.random.default_rng(seed)
        return self._marginals.from_uniform(rng.random((self._marginals.dimensions, n)).T)
