"""A Gaussian copula on numpy and scipy: each column's own distribution, joined by one
correlation matrix of normal scores (Sklar's theorem; the construction of Patki et al.,
"The Synthetic Data Vault", IEEE DSAA 2016, §4).

Fit:

1. Every column's marginal (``marginals.TableMarginals``): numbers and datetimes by their
   empirical distribution, categories by frequency intervals, missing values of a numeric
   column as a missing-or-not variable of its own. Each value becomes a uniform score by the
   distributional transform, then a normal score z = Φ⁻¹(u).
2. The correlation of the normal scores, pairwise over the rows where both are present
   (no row is dropped because another column is missing there). Normal scores of ranks
   are robust by construction (outliers become a tail score, not a leverage point). The
   matrix may be shrunk towards the identity (``shrinkage``) and is then projected to the
   nearest positive definite correlation matrix by clipping its eigenvalues, since a
   pairwise estimate need not be positive definite.

Sample: z ~ N(0, R), u = Φ(z), each column decoded from u by its inverse distribution.
Conditions are exact: each conditioned column's normal score is drawn from its truncated
normal (the interval of scores that decode to the value, one after another, each given
the previous ones) and the other columns from the Gaussian conditional given those scores.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import special, stats

from inwire.services.synthex.generators.base import (
    Cancelled,
    Progress,
    check_cancel,
    encode_codes,
    impossible_condition,
    to_float,
)
from inwire.services.synthex.generators.methods.marginals import TableMarginals
from inwire.services.synthex.schema import Schema

#: Smallest eigenvalue kept when the correlation matrix is made positive definite.
MIN_EIGENVALUE = 1e-6


class GaussianCopulaParams(BaseModel):
    """Parameters of the Gaussian copula."""

    model_config = ConfigDict(extra="forbid")

    max_knots: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description=(
            "Quantiles kept per numeric column; a column with at most this many distinct "
            "values keeps them all and its distribution is reproduced exactly."
        ),
    )
    shrinkage: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Weight of the identity in the correlation matrix: 0 keeps the correlations "
            "measured, 1 makes the columns independent. Helps small tables with many columns."
        ),
    )
    max_rows: int = Field(
        default=500_000,
        ge=100,
        le=100_000_000,
        description="Rows the fit reads at most (a seeded uniform sample of larger tables).",
    )


class GaussianCopula:
    """Marginals of every column joined by a Gaussian dependence structure."""

    name: ClassVar[str] = "gaussian_copula"
    Params: ClassVar[type[BaseModel]] = GaussianCopulaParams

    def __init__(self, params: GaussianCopulaParams | dict[str, Any] | None = None) -> None:
        raw = params.model_dump() if isinstance(params, BaseModel) else params or {}
        self.params = GaussianCopulaParams.model_validate(raw)
        self._marginals: TableMarginals | None = None
        self._correlation: np.ndarray = np.eye(0)
        self._cholesky: np.ndarray = np.eye(0)

    @property
    def correlation(self) -> np.ndarray:
        """The fitted correlation of normal scores (dimensions of ``TableMarginals``)."""
        return self._correlation

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> None:
        """Learn the marginals and the correlation of normal scores."""
        rng = np.random.default_rng(seed)
        if data.height > self.params.max_rows:
            data = data.sample(self.params.max_rows, seed=int(rng.integers(2**32)))
        if progress is not None:
            progress(0.0, f"learning {data.width} column distributions from {data.height} rows")
        marginals, u = TableMarginals.fit(data, schema, self.params.max_knots, cancelled, rng)
        assert u is not None
        check_cancel(cancelled)
        if progress is not None:
            progress(0.5, f"estimating the correlation of {marginals.dimensions} dimensions")
        eps = 0.5 / max(data.height, 1)
        z = special.ndtri(np.clip(u, eps, 1.0 - eps))
        del u
        check_cancel(cancelled)
        correlation = _pairwise_correlation(z)
        s = self.params.shrinkage
        correlation = (1.0 - s) * correlation + s * np.eye(correlation.shape[0])
        self._correlation = _nearest_correlation(correlation)
        self._cholesky = np.linalg.cholesky(self._correlation)
        self._marginals = marginals
        if progress is not None:
            progress(1.0, "fitted")

    def sample(
        self, n: int, *, seed: int | None, conditions: dict[str, Any] | None = None
    ) -> pl.DataFrame:
        """``n`` rows; every row meets ``conditions`` (column → value, None = missing)."""
        if self._marginals is None:
            raise RuntimeError("fit the synthesizer before sampling")
        rng = np.random.default_rng(seed)
        dims = self._marginals.dimensions
        fixed = self._intervals(conditions or {})
        if fixed:
            z = self._conditional_normals(n, rng, fixed)
        else:
            # One row of normals per dimension, multiplied from the left by einsum: BLAS
            # is slow on the tall (rows x d) @ (d x d) product, and its threads spin on
            # (burning a core) after a product this small; einsum runs in this thread.
            z = np.einsum("ij,jn->in", self._cholesky, rng.standard_normal((dims, n))).T
        frame = self._marginals.from_uniform(special.ndtr(z))
        if conditions:
            # Numbers conditioned on a value between quantile knots decode to it only
            # approximately; the condition itself is the exact value.
            frame = frame.with_columns(
                pl.repeat(value, n, dtype=frame.schema[column], eager=True).alias(column)
                for column, value in conditions.items()
            )
        return frame

    # -- conditions ----------------------------------------------------------------------

    def _intervals(self, conditions: dict[str, Any]) -> dict[int, tuple[float, float]]:
        """The interval of uniform scores each condition allows, by dimension."""
        assert self._marginals is not None
        m = self._marginals
        fixed: dict[int, tuple[float, float]] = {}
        first_indicator = len(m.continuous) + len(m.discrete)
        indicators = {j: (first_indicator + k, mi) for k, (j, mi) in enumerate(m.indicators)}
        by_name = {c.column.name: j for j, c in enumerate(m.continuous)}
        discrete = {d.column.name: j for j, d in enumerate(m.discrete)}
        for column, value in conditions.items():
            interval: tuple[float, float] | None
            if column in by_name:
                j = by_name[column]
                if j in indicators:
                    dimension, indicator = indicators[j]
                    interval = indicator.interval(value is None)
                    if interval is None:
                        raise impossible_condition(column, value, "never occurs in the data")
                    fixed[dimension] = interval
                elif value is None:
                    raise impossible_condition(column, value, "the column has no missing values")
                if value is None:
                    continue
                marginal = m.continuous[j]
                number = float(to_float(pl.Series([value], dtype=marginal.column.dtype))[0])
                interval = marginal.interval(number)
                if interval is None:
                    raise impossible_condition(column, value, "never occurs in the data")
                fixed[j] = interval
            elif column in discrete:
                j = discrete[column]
                d = m.discrete[j]
                code = -1
                if value is not None:
                    code = int(encode_codes(pl.Series([value]), d.column.categories)[0])
                    if code < 0:
                        raise impossible_condition(column, value, "is not a value of the column")
                interval = d.interval(code)
                if interval is None:
                    raise impossible_condition(column, value, "never occurs in the data")
                fixed[len(m.continuous) + j] = interval
            else:
                raise impossible_condition(column, value, "is not a modelled column")
        return fixed

    def _conditional_normals(
        self, n: int, rng: np.random.Generator, fixed: dict[int, tuple[float, float]]
    ) -> np.ndarray:
        """Normal scores with each fixed dimension inside its interval."""
        c = self._correlation
        dims = c.shape[0]
        z = np.empty((dims, n)).T  # column-major: each dimension contiguous
        chosen = list(fixed)
        for i, d in enumerate(chosen):
            previous = chosen[:i]
            mean: np.ndarray | float = 0.0
            sigma = 1.0
            if previous:
                weights = np.linalg.solve(c[np.ix_(previous, previous)], c[previous, d])
                mean = z[:, previous] @ weights
                sigma = float(np.sqrt(max(c[d, d] - c[d, previous] @ weights, 1e-12)))
            low, high = fixed[d]
            eps = 1e-12
            if high - low <= eps:
                z[:, d] = special.ndtri(np.clip(low, eps, 1 - eps))
                continue
            a = (special.ndtri(low) - mean) / sigma
            b = (special.ndtri(high) - mean) / sigma
            draws = stats.truncnorm.ppf(rng.random(n), a, b)
            z[:, d] = mean + sigma * np.clip(draws, -40, 40)
        rest = [d for d in range(dims) if d not in fixed]
        if rest:
            weights = np.linalg.solve(c[np.ix_(chosen, chosen)], c[np.ix_(chosen, rest)]).T
            covariance = c[np.ix_(rest, rest)] - weights @ c[np.ix_(chosen, rest)]
            covariance = (covariance + covariance.T) / 2 + MIN_EIGENVALUE * np.eye(len(rest))
            lower = np.linalg.cholesky(_nearest_psd(covariance))
            noise = (lower @ rng.standard_normal((len(rest), n))).T
            z[:, rest] = (weights @ z[:, chosen].T).T + noise
        return z


def _pairwise_correlation(z: np.ndarray) -> np.ndarray:
    """Correlation of normal scores over the rows where both are present (NaN = missing).

    Normal scores have mean 0 and variance 1 by construction, so the moments are taken
    about 0 and each pair is normalised by its own rows' sums of squares.
    """
    present = np.isfinite(z)
    filled = np.where(present, z, 0.0)
    mask = present.astype(np.float64)
    cross = filled.T @ filled
    squares = (filled * filled).T @ mask  # [i, j]: Σ z_i² over rows where j is present
    denominator = np.sqrt(squares * squares.T)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(denominator > 0, cross / denominator, 0.0)
    np.fill_diagonal(correlation, 1.0)
    result: np.ndarray = np.clip(correlation, -1.0, 1.0)
    return result


def _nearest_psd(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with its eigenvalues raised to at least ``MIN_EIGENVALUE``."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    result: np.ndarray = (vectors * np.maximum(values, MIN_EIGENVALUE)) @ vectors.T
    return result


def _nearest_correlation(matrix: np.ndarray) -> np.ndarray:
    """A positive definite correlation matrix near ``matrix`` (eigenvalue clipping, then
    rescaled to a unit diagonal)."""
    if matrix.size == 0:
        return matrix
    fixed = _nearest_psd(matrix)
    scale = 1.0 / np.sqrt(np.diag(fixed))
    result: np.ndarray = fixed * scale[:, None] * scale[None, :]
    return result
