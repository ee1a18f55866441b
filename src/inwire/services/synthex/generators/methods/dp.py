"""Differential privacy shared by the private methods (PrivBayes, MST).

Three parts, each small enough to check by reading:

- **Accounting** (`PrivacyAccountant`): every mechanism charges the budget *before* it
  touches the data and a charge that would overspend raises. Pure ε-DP charges add up
  (basic composition); zero-concentrated DP (zCDP, Bun & Steinke 2016) charges add up in
  rho and are turned into (ε, δ) with the conversion of Canonne, Kamath & Steinke 2020
  ("The Discrete Gaussian for Differential Privacy", Proposition 12 / Corollary 13).
  (ε, δ) charges of the stability histogram add on top (basic composition).
- **The one door to the rows** (`PrivateData`): a method never holds the real table. It
  asks `PrivateData` for noisy answers; each query charges the accountant, and reading the
  rows outside a charged query raises. That is how "the method reads nothing it did not
  pay for" is enforced at run time, not only promised.
- **Private discretization** (`ColumnDomain`, `private_domains`): the methods model
  discrete codes. Bin edges come from bounds the user declares (free: public knowledge)
  or from a DP step paid from the budget; never from the exact min/max of the data.
  Categories come from a declared list (free) or from a stability-based histogram with a
  documented threshold (Vadhan 2017, "The Complexity of Differential Privacy", §3.3):
  categories with few rows are never revealed.

Neighbouring tables differ by one row added or removed (unbounded DP, Dwork & Roth 2014,
§2.3). Under that relation a count table (a histogram, a marginal) has L1 and L2
sensitivity 1, which every mechanism here relies on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from inwire.kit.errors import Invalid
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

#: The largest ε a private method accepts unless the caller configures another ceiling.
#: Beyond ~10 the guarantee says little (e^10 ≈ 22,000 as a likelihood ratio).
DEFAULT_MAX_EPSILON = 10.0

Accounting = Literal["pure", "zcdp"]


class FitCancelled(Exception):
    """The fit stopped because the job was cancelled."""


class PrivacyBudgetExceeded(RuntimeError):
    """A mechanism asked for more privacy budget than is left (a bug in a method's plan)."""


# --------------------------------------------------------------------------------------
# zCDP ⇄ (ε, δ)


def zcdp_delta(rho: float, epsilon: float) -> float:
    """The δ at which rho-zCDP implies (ε, δ)-DP (Canonne, Kamath & Steinke 2020, Cor. 13).

    δ = inf over a > 1 of exp((a-1)(a·rho-ε) + a·log(1-1/a)) / (a-1). The exponent's
    derivative, (2a-1)rho - ε + log(1-1/a), increases with a, so bisection finds the best a.
    """
    if rho <= 0:
        return 0.0
    if epsilon < 0:
        return 1.0
    low, high = 1.0 + 1e-9, (epsilon + 1.0) / (2.0 * rho) + 2.0
    for _ in range(200):
        alpha = (low + high) / 2.0
        slope = (2.0 * alpha - 1.0) * rho - epsilon + math.log1p(-1.0 / alpha)
        if slope < 0:
            low = alpha
        else:
            high = alpha
    alpha = high
    exponent = (alpha - 1.0) * (alpha * rho - epsilon) + alpha * math.log1p(-1.0 / alpha)
    return min(1.0, math.exp(exponent) / (alpha - 1.0))


def zcdp_epsilon(rho: float, delta: float) -> float:
    """The smallest ε such that rho-zCDP implies (ε, δ)-DP (upper side of a bisection)."""
    if rho <= 0:
        return 0.0
    if delta <= 0:
        return math.inf
    low, high = 0.0, rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)) + 1.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if zcdp_delta(rho, mid) <= delta:
            high = mid
        else:
            low = mid
    return high


def zcdp_rho(epsilon: float, delta: float) -> float:
    """The largest rho whose rho-zCDP implies (ε, δ)-DP (lower side of a bisection)."""
    if epsilon <= 0 or delta <= 0:
        return 0.0
    low, high = 0.0, epsilon + 1.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if zcdp_delta(mid, epsilon) <= delta:
            low = mid
        else:
            high = mid
    return low


# --------------------------------------------------------------------------------------
# Accounting


@dataclass(frozen=True)
class Charge:
    """One mechanism run on the data, with what it cost."""

    mechanism: str  # laplace | gaussian | exponential | stability_histogram
    purpose: str  # domain | marginals | structure | conditionals
    target: str  # the columns it read, comma-separated
    epsilon: float = 0.0  # pure or approximate ε (0 for a zCDP charge)
    delta: float = 0.0
    rho: float = 0.0  # zCDP rho (0 for a pure or approximate charge)


@dataclass
class PrivacyAccountant:
    """Keeps the budget of one fit and refuses any charge that would overspend it.

    With ``accounting="pure"`` the Laplace and exponential mechanisms cost their ε and
    compose by addition. With ``"zcdp"`` they cost ε²/2 (Bun & Steinke 2016, Prop. 1.4)
    and ε²/8 (exponential mechanism, Cesar & Rogers 2021) in rho, the Gaussian mechanism
    costs Δ²/(2sigma²), and the total rho is converted to (ε, δ) once, which is much tighter
    than adding many ε. Stability histograms are (ε, δ)-DP in either mode and add on top.
    """

    epsilon: float
    delta: float
    accounting: Accounting
    charges: list[Charge] = field(default_factory=list)

    #: Slack for float rounding when a plan spends exactly its budget.
    TOLERANCE = 1e-9

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError("epsilon must be > 0")
        if not 0 <= self.delta < 1:
            raise ValueError("delta must be in [0, 1)")

    @property
    def rho_budget(self) -> float:
        """rho available to zCDP mechanisms if the whole budget went to them."""
        return zcdp_rho(self.epsilon, self.delta)

    def _spent(self, charges: Sequence[Charge]) -> tuple[float, float]:
        direct_epsilon = sum(c.epsilon for c in charges)
        direct_delta = sum(c.delta for c in charges)
        rho = sum(c.rho for c in charges)
        if rho <= 0:
            return direct_epsilon, direct_delta
        # The zCDP part may use whatever δ the approximate charges left.
        zcdp_delta_share = self.delta - direct_delta
        if zcdp_delta_share <= 0:
            return math.inf, direct_delta
        return direct_epsilon + zcdp_epsilon(rho, zcdp_delta_share), self.delta

    @property
    def epsilon_spent(self) -> float:
        """ε of everything charged so far, composed."""
        return self._spent(self.charges)[0]

    @property
    def delta_spent(self) -> float:
        """δ of everything charged so far, composed."""
        return self._spent(self.charges)[1]

    def _charge(self, charge: Charge) -> None:
        epsilon, delta = self._spent([*self.charges, charge])
        if epsilon > self.epsilon * (1 + self.TOLERANCE) or delta > self.delta * (
            1 + self.TOLERANCE
        ):
            raise PrivacyBudgetExceeded(
                f"{charge.mechanism} on {charge.target} would spend ε={epsilon:.6g}, "
                f"δ={delta:.3g} of a budget of ε={self.epsilon:g}, δ={self.delta:g}"
            )
        self.charges.append(charge)

    def laplace(self, purpose: str, target: str, epsilon: float) -> None:
        """Charge an ε-DP Laplace mechanism (a histogram with L1 sensitivity 1 at scale 1/ε)."""
        if self.accounting == "pure":
            self._charge(Charge("laplace", purpose, target, epsilon=epsilon))
        else:
            self._charge(Charge("laplace", purpose, target, rho=epsilon**2 / 2.0))

    def exponential(self, purpose: str, target: str, epsilon: float) -> None:
        """Charge an ε-DP exponential mechanism."""
        if self.accounting == "pure":
            self._charge(Charge("exponential", purpose, target, epsilon=epsilon))
        else:
            self._charge(Charge("exponential", purpose, target, rho=epsilon**2 / 8.0))

    def gaussian(self, purpose: str, target: str, rho: float) -> None:
        """Charge a rho-zCDP Gaussian mechanism (only under zCDP accounting)."""
        if self.accounting != "zcdp":
            raise PrivacyBudgetExceeded("the Gaussian mechanism needs zCDP accounting")
        self._charge(Charge("gaussian", purpose, target, rho=rho))

    def stability_histogram(self, purpose: str, target: str, epsilon: float, delta: float) -> None:
        """Charge an (ε, δ)-DP stability-based histogram."""
        self._charge(Charge("stability_histogram", purpose, target, epsilon=epsilon, delta=delta))

    def report(self) -> dict[str, Any]:
        """What the fit spent, JSON-ready: totals, and per purpose and per mechanism."""
        by_purpose: dict[str, dict[str, float]] = {}
        by_mechanism: dict[str, dict[str, float]] = {}
        for c in self.charges:
            for key, table in ((c.purpose, by_purpose), (c.mechanism, by_mechanism)):
                row = table.setdefault(key, {"count": 0, "epsilon": 0.0, "delta": 0.0, "rho": 0.0})
                row["count"] += 1
                row["epsilon"] += c.epsilon
                row["delta"] += c.delta
                row["rho"] += c.rho
        epsilon, delta = self._spent(self.charges)
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epsilon_spent": epsilon,
            "delta_spent": delta,
            "accounting": self.accounting,
            "rho_spent": sum(c.rho for c in self.charges),
            "neighbouring": "add or remove one row",
            "by_purpose": by_purpose,
            "by_mechanism": by_mechanism,
            "charges": len(self.charges),
        }


# --------------------------------------------------------------------------------------
# Mechanisms (pure functions of already-computed true answers)


def exponential_mechanism(
    scores: np.ndarray, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> int:
    """Index drawn with probability ∝ exp(ε·score / (2·sensitivity)) (McSherry & Talwar 2007)."""
    logits = epsilon * np.asarray(scores, dtype=np.float64) / (2.0 * sensitivity)
    logits -= logits.max()
    weights = np.exp(logits)
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def project_to_simplex(values: np.ndarray, total: float = 1.0) -> np.ndarray:
    """The closest (Euclidean) vector with non-negative entries summing to ``total``.

    Duchi et al. 2008, "Efficient projections onto the l1-ball", Fig. 1. Used to turn a
    noisy count vector into a distribution without the bias of clipping alone.
    """
    v = np.asarray(values, dtype=np.float64)
    if total <= 0:
        return np.zeros_like(v)
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - total
    index = np.arange(1, len(v) + 1)
    positive = u - cumulative / index > 0
    r = int(index[positive][-1])
    theta = cumulative[r - 1] / r
    projected: np.ndarray = np.maximum(v - theta, 0.0)
    return projected


def normalised(counts: np.ndarray) -> np.ndarray:
    """Non-negative counts as probabilities (uniform when nothing is left)."""
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    s = c.sum()
    return c / s if s > 0 else np.full(len(c), 1.0 / len(c))


# --------------------------------------------------------------------------------------
# Column domains: values ⇄ codes


#: Public window for datetimes whose bounds are not declared; values outside are clipped.
DATETIME_WINDOW = (
    datetime(1900, 1, 1, tzinfo=UTC).timestamp() * 1e6,
    datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1e6,
)
#: Public coarse grid for numbers whose bounds are not declared: signed octaves,
#: ±[2^k, 2^(k+1)) for k from -10 to 49, and one cell around 0.
_OCTAVES = (-10, 50)
#: Public coarse grid for datetimes: the decades of ``DATETIME_WINDOW``.
_DECADES = 20
#: Equal cells of the second, finer histogram over the coarse range that holds data.
_FINE_CELLS = 64
#: Chance that an empty grid cell survives the noise threshold, over the whole grid.
_GRID_FALSE_CELL_RATE = 0.005

MODELLED_TYPES = frozenset(
    {
        ColumnType.integer,
        ColumnType.float,
        ColumnType.datetime,
        ColumnType.boolean,
        ColumnType.categorical,
        ColumnType.text,
    }
)


def _octave_grid() -> np.ndarray:
    magnitudes = 2.0 ** np.arange(_OCTAVES[0], _OCTAVES[1] + 1, dtype=np.float64)
    return np.concatenate((-magnitudes[::-1], magnitudes))


def _as_float(series: pl.Series, kind: ColumnType) -> np.ndarray:
    """A numeric or datetime column as float64 (datetimes in µs since the epoch), NaN = null."""
    if kind is ColumnType.datetime:
        s = series
        if s.dtype == pl.Date:
            s = s.cast(pl.Datetime("us"))
        elif not isinstance(s.dtype, pl.Datetime):
            s = s.cast(pl.Datetime("us"), strict=False)
        return s.dt.epoch("us").cast(pl.Float64).fill_null(np.nan).to_numpy()
    s = series.cast(pl.Float64, strict=False).fill_nan(None)
    return s.fill_null(np.nan).to_numpy()


def _declared_float(value: Any, kind: ColumnType) -> float:
    """A declared bound as float (datetimes may be given as ISO strings)."""
    if kind is ColumnType.datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return float(value.timestamp() * 1e6)
    return float(value)


@dataclass
class ColumnDomain:
    """How one column's values become codes 0..size-1 and back.

    Everything here is public: declared by the user or released by a DP mechanism. Codes
    are: one per category or bin, then "other" (categories not in the list), then
    "missing" when the schema says the column is nullable.
    """

    spec: ColumnSpec
    dtype: pl.DataType
    categories: list[Any] | None = None
    edges: np.ndarray | None = None
    integer: bool = False
    source: str = "declared"  # declared | private | public
    #: Whether values outside ``categories`` may occur (they get the "other" code).
    open_categories: bool = True

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def values(self) -> int:
        """Codes that stand for a category or a bin."""
        if self.categories is not None:
            return len(self.categories)
        assert self.edges is not None
        return len(self.edges) - 1

    @property
    def other_code(self) -> int | None:
        return self.values if self.categories is not None and self.open_categories else None

    @property
    def null_code(self) -> int | None:
        if not self.spec.nullable:
            return None
        return self.values + (self.other_code is not None)

    @property
    def size(self) -> int:
        return self.values + (self.other_code is not None) + (self.null_code is not None)

    def encode(self, series: pl.Series) -> np.ndarray:
        """The codes of a column's values (a transformation: releases nothing)."""
        n = len(series)
        if self.categories is not None:
            index = {v: i for i, v in enumerate(self.categories)}
            other = self.other_code if self.other_code is not None else -1
            raw = _category_values(series)
            codes = np.fromiter(
                (index.get(v, other) if v is not None else -1 for v in raw), np.int64, n
            )
        else:
            assert self.edges is not None
            x = _as_float(series, self.spec.type)
            inner = np.clip(x, self.edges[0], self.edges[-1])
            codes = np.searchsorted(self.edges, inner, side="right") - 1
            codes = np.clip(codes, 0, self.values - 1).astype(np.int64)
            codes[np.isnan(x)] = -1
        missing = codes == -1
        # A null in a column declared not nullable goes to the first code: the schema
        # promised none, and the generated column must keep that promise.
        codes[missing] = self.null_code if self.null_code is not None else 0
        return codes

    def decode(
        self, codes: np.ndarray, rng: np.random.Generator, marginal: np.ndarray
    ) -> pl.Series:
        """Values for codes: a category, a value uniform within its bin, or null.

        "Other" becomes null when the column is nullable, else a known category drawn from
        ``marginal`` (the model's distribution of this column): a rare real value is
        never revealed. A column whose categories were all too rare to release is null.
        """
        codes = np.asarray(codes, dtype=np.int64).copy()
        null = codes == self.null_code if self.null_code is not None else np.zeros(len(codes), bool)
        if self.categories is not None:
            other = codes == (self.other_code if self.other_code is not None else -1)
            # With no category released at all there is nothing to draw: null it is.
            if not self.spec.nullable and self.values and other.any():
                p = normalised(marginal[: self.values])
                codes[other] = rng.choice(self.values, size=int(other.sum()), p=p)
                other[:] = False
            null |= other
            cats = self.categories
            values: list[Any] = [None if null[i] else cats[c] for i, c in enumerate(codes)]
            return _category_series(self, values)
        assert self.edges is not None
        bins = np.clip(codes, 0, self.values - 1)
        low, high = self.edges[bins], self.edges[bins + 1]
        if self.integer:
            # Integer bins hold the whole numbers in [low, high): draw one of them.
            x = np.floor(rng.uniform(low, high)).astype(np.float64)
            x = np.clip(x, low, high - 1)
        else:
            x = rng.uniform(low, high)
        return _numeric_series(self, x, null)

    def describe(self) -> dict[str, Any]:
        """The public domain, JSON-ready (reported with the fit)."""
        out: dict[str, Any] = {"column": self.name, "codes": self.size, "source": self.source}
        if self.categories is not None:
            out["categories"] = len(self.categories)
        elif self.edges is not None:
            out["bins"] = self.values
        return out


def _category_values(series: pl.Series) -> list[Any]:
    if series.dtype in (pl.Categorical, pl.Enum) or isinstance(series.dtype, pl.Enum):
        series = series.cast(pl.String)
    return series.to_list()


def _category_series(domain: ColumnDomain, values: list[Any]) -> pl.Series:
    dtype = domain.dtype
    if dtype in (pl.Categorical,) or isinstance(dtype, pl.Enum | pl.Categorical):
        return pl.Series(domain.name, values, dtype=pl.String).cast(dtype)
    if domain.spec.type is ColumnType.boolean:
        return pl.Series(domain.name, values, dtype=pl.Boolean).cast(dtype, strict=False)
    try:
        return pl.Series(domain.name, values, dtype=dtype)
    except (TypeError, pl.exceptions.PolarsError):
        return pl.Series(domain.name, values).cast(dtype, strict=False)


def _numeric_series(domain: ColumnDomain, x: np.ndarray, null: np.ndarray) -> pl.Series:
    name, dtype = domain.name, domain.dtype
    if domain.spec.type is ColumnType.datetime:
        micros = pl.Series(name, np.round(x).astype(np.int64))
        s = micros.cast(pl.Datetime("us"))
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            s = s.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            s = s.cast(dtype)
        return s.scatter(np.flatnonzero(null), None) if null.any() else s
    s = pl.Series(name, np.round(x).astype(np.int64)) if domain.integer else pl.Series(name, x)
    if null.any():
        s = s.scatter(np.flatnonzero(null), None)
    return s.cast(dtype, strict=False) if dtype.is_numeric() else s


# --------------------------------------------------------------------------------------
# The one door to the rows


class PrivateData:
    """The real table, reachable only through queries that pay the accountant first.

    A method gets this instead of the DataFrame. Each public query charges the accountant,
    then reads; reading the rows anywhere else raises. Results are noisy counts, noisy
    quantiles or a choice made by the exponential mechanism, never a raw value.
    """

    def __init__(self, frame: pl.DataFrame, accountant: PrivacyAccountant) -> None:
        self.__frame = frame
        self.__codes: dict[str, np.ndarray] = {}
        self.__tables: dict[tuple[tuple[str, int], ...], np.ndarray] = {}
        self.__open = 0
        self.accountant = accountant
        #: Public metadata: column names and storage types (no values).
        self.dtypes: dict[str, pl.DataType] = dict(frame.schema)

    @contextmanager
    def _paid(self, pay: Callable[[], None]) -> Iterator[None]:
        pay()
        self.__open += 1
        try:
            yield
        finally:
            self.__open -= 1

    def _read_allowed(self) -> None:
        if self.__open <= 0:
            raise PrivacyBudgetExceeded("the rows were read outside an accounted query")

    def _read(self, column: str) -> pl.Series:
        """The only read of the rows; allowed inside a paid query only."""
        self._read_allowed()
        return self.__frame.get_column(column)

    def _codes(self, domain: ColumnDomain) -> np.ndarray:
        if domain.name not in self.__codes:
            self.__codes[domain.name] = domain.encode(self._read(domain.name))
        return self.__codes[domain.name]

    def _counts(
        self, domains: Sequence[ColumnDomain], recodes: Sequence[np.ndarray | None] | None
    ) -> np.ndarray:
        """The true contingency table of some columns (inside a paid query only).

        Tables are cached for the fit: selection steps score the same candidates again.
        """
        key = tuple(
            (d.name, id(recodes[i]) if recodes is not None and recodes[i] is not None else 0)
            for i, d in enumerate(domains)
        )
        if key in self.__tables:
            self._read_allowed()
            return self.__tables[key]
        shape: list[int] = []
        flat = np.zeros(0, dtype=np.int64)
        for i, d in enumerate(domains):
            codes = self._codes(d)
            size = d.size
            recode = recodes[i] if recodes is not None else None
            if recode is not None:
                codes = recode[codes]
                size = int(recode.max()) + 1
            flat = codes if not shape else flat * size + codes
            shape.append(size)
        if not shape:
            return np.zeros(0)
        table = np.bincount(flat, minlength=math.prod(shape)).astype(np.float64).reshape(shape)
        self.__tables[key] = table
        return table

    # -- queries ------------------------------------------------------------------------

    def laplace_marginal(
        self,
        domains: Sequence[ColumnDomain],
        epsilon: float,
        rng: np.random.Generator,
        *,
        purpose: str,
        recodes: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """A contingency table plus Laplace(1/ε) noise per cell: ε-DP (L1 sensitivity 1)."""
        target = ",".join(d.name for d in domains)
        with self._paid(lambda: self.accountant.laplace(purpose, target, epsilon)):
            counts = self._counts(domains, recodes)
        return counts + rng.laplace(0.0, 1.0 / epsilon, size=counts.shape)

    def gaussian_marginal(
        self,
        domains: Sequence[ColumnDomain],
        sigma: float,
        rng: np.random.Generator,
        *,
        purpose: str,
        recodes: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """A contingency table plus N(0, sigma²) noise per cell: 1/(2·sigma²)-zCDP (L2 sens. 1)."""
        target = ",".join(d.name for d in domains)
        with self._paid(lambda: self.accountant.gaussian(purpose, target, 1.0 / (2 * sigma**2))):
            counts = self._counts(domains, recodes)
        return counts + rng.normal(0.0, sigma, size=counts.shape)

    def choose(
        self,
        candidates: Sequence[Sequence[ColumnDomain]],
        score: Callable[[int, np.ndarray], float],
        sensitivity: float,
        epsilon: float,
        rng: np.random.Generator,
        *,
        purpose: str,
        recodes: Callable[[Sequence[ColumnDomain]], Sequence[np.ndarray | None]] | None = None,
    ) -> int:
        """Pick a candidate column set with the exponential mechanism.

        ``score(i, table)`` rates candidate i from its true contingency table and must
        change by at most ``sensitivity`` when one row is added or removed.
        """
        target = "|".join(",".join(d.name for d in c) for c in candidates)
        if len(target) > 200:
            target = f"{len(candidates)} candidates"
        with self._paid(lambda: self.accountant.exponential(purpose, target, epsilon)):
            scores = np.array(
                [
                    score(i, self._counts(c, recodes(c) if recodes else None))
                    for i, c in enumerate(candidates)
                ]
            )
        return exponential_mechanism(scores, epsilon, sensitivity, rng)

    def stable_categories(
        self,
        spec: ColumnSpec,
        epsilon: float,
        delta: float,
        limit: int,
        rng: np.random.Generator,
    ) -> list[Any]:
        """Categories released by an (ε, δ)-DP stability-based histogram.

        Each observed value's count gets Laplace(1/ε) noise and is kept only when the noisy
        count reaches 1 + ln(1/(2δ))/ε: a value held by one row (the only thing adding or
        removing a row can create) then survives with probability at most δ. The ``limit``
        most frequent survivors are kept (post-processing).
        """
        threshold = 1.0 + math.log(1.0 / (2.0 * delta)) / epsilon
        with self._paid(
            lambda: self.accountant.stability_histogram("domain", spec.name, epsilon, delta)
        ):
            series = self._read(spec.name)
            if series.dtype in (pl.Categorical,) or isinstance(series.dtype, pl.Enum):
                series = series.cast(pl.String)
            counts = series.drop_nulls().value_counts(sort=False)
        # In value order, so a seed gives the same noise to the same value on every run.
        counts = counts.sort(counts.columns[0])
        values = counts.get_column(counts.columns[0]).to_list()
        noisy = counts.get_column("count").to_numpy().astype(np.float64) + rng.laplace(
            0.0, 1.0 / epsilon, size=len(values)
        )
        order = np.argsort(-noisy, kind="stable")
        kept = [values[i] for i in order if noisy[i] >= threshold][:limit]
        try:
            return sorted(kept)
        except TypeError:
            return kept

    def grid_histogram(
        self, spec: ColumnSpec, edges: np.ndarray, epsilon: float, rng: np.random.Generator
    ) -> np.ndarray:
        """Counts of a numeric column over public cells, plus Laplace(1/ε): ε-DP."""
        with self._paid(lambda: self.accountant.laplace("domain", spec.name, epsilon)):
            x = _as_float(self._read(spec.name), spec.type)
            x = x[~np.isnan(x)]
            cells = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
            counts = np.bincount(cells, minlength=len(edges) - 1).astype(np.float64)
        return counts + rng.laplace(0.0, 1.0 / epsilon, size=counts.shape)


# --------------------------------------------------------------------------------------
# Parameters and private discretization


class PrivateMethodParams(BaseModel):
    """Parameters every differentially private method takes."""

    model_config = ConfigDict(extra="forbid")

    #: The privacy budget ε (required). Smaller is more private and noisier.
    #: At most ``DEFAULT_MAX_EPSILON`` unless validation is given another ceiling as
    #: ``context={"max_epsilon": ...}``.
    epsilon: float = Field(gt=0)
    #: δ: the chance the ε guarantee may fail; used by MST's Gaussian noise and by both
    #: methods to discover categories that are not declared. Keep it well below 1/rows.
    delta: float = Field(default=1e-9, ge=0, lt=1e-3)
    #: Bins per numeric or datetime column.
    bins: int = Field(default=10, ge=2, le=64)
    #: Share of ε spent on discovering domains (bounds, categories) not declared.
    domain_share: float = Field(default=0.1, gt=0, lt=0.5)
    #: Public bounds per column, ``{"age": [0, 120], "day": ["2020-01-01", "2021-01-01"]}``:
    #: free, and better than a private estimate. Values outside are clipped.
    bounds: dict[str, tuple[float | str, float | str]] = Field(default_factory=dict)
    #: Public categories per column: free; values outside become "other".
    categories: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    #: Most categories discovered per column (the most frequent noisy counts win).
    max_categories: int = Field(default=50, ge=1, le=1000)

    @field_validator("epsilon")
    @classmethod
    def _epsilon_ceiling(cls, v: float, info: ValidationInfo) -> float:
        ceiling = float((info.context or {}).get("max_epsilon", DEFAULT_MAX_EPSILON))
        if v > ceiling:
            raise ValueError(f"epsilon must be at most {ceiling:g}")
        return v

    @field_validator("categories")
    @classmethod
    def _non_empty(
        cls, v: dict[str, list[str | int | float | bool]]
    ) -> dict[str, list[str | int | float | bool]]:
        for column, values in v.items():
            if not values:
                raise ValueError(f"categories of {column!r} must not be empty")
        return v


def check_epsilon(epsilon: float, max_epsilon: float = DEFAULT_MAX_EPSILON) -> None:
    """Refuse an ε outside (0, max_epsilon] with a 400 naming the field."""
    if not 0 < epsilon <= max_epsilon:
        raise Invalid(
            f"epsilon must be > 0 and at most {max_epsilon:g}",
            details=[{"field": "params.epsilon", "reason": "out_of_range", "max": max_epsilon}],
        )


@dataclass(frozen=True)
class DomainPlan:
    """Which columns are modelled and which need budget to learn their domain."""

    columns: list[ColumnSpec]
    needs_categories: list[ColumnSpec]
    needs_bounds: list[ColumnSpec]


def plan_domains(schema: Schema, params: PrivateMethodParams) -> DomainPlan:
    """Sort the schema's columns by how their domain is learnt, checking declarations."""
    names = {c.name for c in schema}
    problems = [
        {"field": f"params.{key}.{col}", "reason": "unknown_column"}
        for key, cols in (("bounds", params.bounds), ("categories", params.categories))
        for col in cols
        if col not in names
    ]
    columns = [c for c in schema if c.type in MODELLED_TYPES]
    for c in columns:
        if c.name in params.bounds:
            if c.type not in (ColumnType.integer, ColumnType.float, ColumnType.datetime):
                problems.append({"field": f"params.bounds.{c.name}", "reason": "not_numeric"})
                continue
            try:
                low, high = (_declared_float(v, c.type) for v in params.bounds[c.name])
            except (TypeError, ValueError):
                problems.append({"field": f"params.bounds.{c.name}", "reason": "not_a_number"})
                continue
            if not low < high:
                problems.append({"field": f"params.bounds.{c.name}", "reason": "empty_range"})
    if problems:
        raise Invalid("invalid bounds or categories for the private method", details=problems)
    needs_categories = [
        c
        for c in columns
        if c.type in (ColumnType.categorical, ColumnType.text) and c.name not in params.categories
    ]
    needs_bounds = [
        c
        for c in columns
        if c.type in (ColumnType.integer, ColumnType.float, ColumnType.datetime)
        and c.name not in params.bounds
    ]
    if needs_categories and params.delta <= 0:
        raise Invalid(
            "discovering categories privately needs delta > 0; declare the categories of "
            + ", ".join(c.name for c in needs_categories)
            + " or set delta",
            details=[{"field": "params.delta", "reason": "required_for_categories"}],
        )
    return DomainPlan(columns, needs_categories, needs_bounds)


def _declared_categories(values: list[Any], dtype: pl.DataType) -> list[Any]:
    """Declared categories in the column's own type (JSON may give ``"3"`` for 3), deduplicated."""
    if dtype.is_numeric() or dtype == pl.Boolean:
        cast = pl.Series(values).cast(dtype, strict=False)
        if cast.null_count() == 0:
            values = cast.to_list()
    return list(dict.fromkeys(values))


def _even_edges(low: float, high: float, bins: int, integer: bool) -> tuple[np.ndarray, bool]:
    if integer:
        low_i, high_i = math.ceil(low), math.floor(high)
        if high_i < low_i:
            high_i = low_i
        if high_i - low_i + 1 <= bins:
            return np.arange(low_i, high_i + 2, dtype=np.float64), True
        edges = np.unique(np.round(np.linspace(low_i, high_i + 1, bins + 1)))
        return edges.astype(np.float64), True
    return np.linspace(low, high, bins + 1), False


def _kept_cells(noisy: np.ndarray, epsilon: float) -> np.ndarray:
    """The noisy counts of the cells that clear the noise threshold, others zero.

    The threshold is where a Laplace(1/ε) count of an empty cell stays with probability
    ``_GRID_FALSE_CELL_RATE`` over the whole grid, so noise does not stretch the range
    to the grid's ends. Post-processing only.
    """
    threshold = math.log(len(noisy) / (2 * _GRID_FALSE_CELL_RATE)) / epsilon
    kept: np.ndarray = np.where(noisy >= threshold, noisy, 0.0)
    return kept


def _edges_from_grid(
    grid: np.ndarray, noisy: np.ndarray, epsilon: float, bins: int, integer: bool = False
) -> np.ndarray:
    """Bin edges at the quantiles of a thresholded noisy histogram (post-processing only).

    When no cell clears the threshold the data is too thin for the budget at this
    resolution, and the whole grid is the range.
    """
    kept = _kept_cells(noisy, epsilon)
    if kept.sum() <= 0:
        kept = np.ones_like(noisy)
    cumulative = np.concatenate(([0.0], np.cumsum(kept))) / kept.sum()
    first = int(np.argmax(kept > 0))
    last = len(kept) - 1 - int(np.argmax(kept[::-1] > 0))
    low, high = grid[first], grid[last + 1]
    # Interpolate inside cells as if values were uniform there.
    inner = np.interp(np.linspace(0, 1, bins + 1)[1:-1], cumulative, grid)
    edges = np.unique(np.concatenate(([low], inner, [high])))
    if integer:
        low_i, high_i = math.floor(low), math.ceil(high)
        if high_i - low_i + 1 <= bins:
            return np.arange(low_i, high_i + 2, dtype=np.float64)
        edges = np.unique(np.round(edges))
        edges[-1] = max(edges[-1], edges[-2] + 1) if len(edges) > 1 else edges[-1] + 1
    if len(edges) < 2:
        edges = np.array([low, high if high > low else low + 1.0])
    return edges


def _zoomed_edges(
    data: PrivateData,
    spec: ColumnSpec,
    coarse: np.ndarray,
    epsilon: float,
    bins: int,
    integer: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bin edges learnt with two noisy histograms, each with half of ``epsilon``.

    The first, over a public coarse grid (octaves, decades), finds the range that holds
    the data; the second, of equal cells over that range, places the edges at its
    quantiles. It has as many cells (2 to ``_FINE_CELLS``) as the rows the first found
    can fill above the noise threshold, so thin data is not lost in the noise of empty
    cells.
    """
    half = epsilon / 2
    noisy = data.grid_histogram(spec, coarse, half, rng)
    span = _edges_from_grid(coarse, noisy, half, 1)
    rows = float(_kept_cells(noisy, half).sum())
    per_cell = 2 * math.log(_FINE_CELLS / (2 * _GRID_FALSE_CELL_RATE)) / half
    cells = int(np.clip(rows // per_cell, 2, _FINE_CELLS))
    fine = np.linspace(span[0], span[-1], cells + 1)
    return _edges_from_grid(fine, data.grid_histogram(spec, fine, half, rng), half, bins, integer)


def private_domains(
    data: PrivateData,
    plan: DomainPlan,
    params: PrivateMethodParams,
    *,
    bounds_epsilon: float,
    categories_epsilon: float,
    categories_delta: float,
    rng: np.random.Generator,
) -> list[ColumnDomain]:
    """The domain of every modelled column, declared or learnt with the budgets given.

    ``bounds_epsilon`` is per column needing bounds, ``categories_epsilon`` and
    ``categories_delta`` per column needing categories (the caller divides).
    """
    domains: list[ColumnDomain] = []
    for spec in plan.columns:
        dtype: pl.DataType = data.dtypes.get(spec.name, pl.String())
        integer = spec.type is ColumnType.integer
        if spec.type is ColumnType.boolean:
            domains.append(
                ColumnDomain(
                    spec, dtype, categories=[False, True], source="public", open_categories=False
                )
            )
        elif spec.type in (ColumnType.categorical, ColumnType.text):
            if spec.name in params.categories:
                cats: list[Any] = _declared_categories(params.categories[spec.name], dtype)
                source = "declared"
            else:
                cats = data.stable_categories(
                    spec, categories_epsilon, categories_delta, params.max_categories, rng
                )
                source = "private"
            domains.append(ColumnDomain(spec, dtype, categories=cats, source=source))
        elif spec.name in params.bounds:
            low, high = (_declared_float(v, spec.type) for v in params.bounds[spec.name])
            edges, integer = _even_edges(low, high, params.bins, integer)
            domains.append(ColumnDomain(spec, dtype, edges=edges, integer=integer))
        else:
            coarse = (
                np.linspace(*DATETIME_WINDOW, _DECADES + 1)
                if spec.type is ColumnType.datetime
                else _octave_grid()
            )
            edges = _zoomed_edges(data, spec, coarse, bounds_epsilon, params.bins, integer, rng)
            domains.append(
                ColumnDomain(spec, dtype, edges=edges, integer=integer, source="private")
            )
    return domains


def identifier_values(
    spec: ColumnSpec, dtype: pl.DataType, n: int, rng: np.random.Generator
) -> pl.Series:
    """Fresh unique identifiers that owe nothing to the real ones (no data read)."""
    if dtype.is_integer():
        return pl.Series(spec.name, np.arange(1, n + 1), dtype=pl.Int64).cast(dtype)
    hexes = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    return pl.Series(spec.name, [f"{a:016x}{b:016x}" for a, b in hexes.tolist()])


def draw_codes(cond: np.ndarray, config: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One code per row from the rows of ``cond`` that ``config`` points at."""
    out = np.empty(len(config), dtype=np.int64)
    cumulative = np.cumsum(cond, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.random(len(config))
    for start in range(0, len(config), 100_000):
        rows = cumulative[config[start : start + 100_000]]
        out[start : start + 100_000] = (u[start : start + 100_000, None] > rows).sum(axis=1)
    drawn: np.ndarray = np.minimum(out, cond.shape[1] - 1)
    return drawn


def assemble_frame(
    schema: Schema,
    dtypes: dict[str, pl.DataType],
    columns: dict[str, pl.Series],
    n: int,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """The sampled columns in schema order; identifiers fresh, unmodelled columns null."""
    out: list[pl.Series] = []
    for spec in schema:
        dtype: pl.DataType = dtypes.get(spec.name, pl.String())
        if spec.name in columns:
            out.append(columns[spec.name])
        elif spec.type is ColumnType.identifier:
            out.append(identifier_values(spec, dtype, n, rng))
        else:
            out.append(pl.Series(spec.name, [None] * n, dtype=dtype))
    return pl.DataFrame(out)


class PrivateSynthesizer:
    """The fit and sample frame PrivBayes and MST share.

    ``fit`` is the only place a private method is handed the rows: it wraps them in
    `PrivateData` at once and passes the method nothing else, so the method's own code
    (``_fit``) can reach the data only through accounted queries.
    """

    name: ClassVar[str]
    Params: ClassVar[type[PrivateMethodParams]]
    accounting: ClassVar[Accounting]

    def __init__(self, params: PrivateMethodParams | dict[str, Any] | None = None) -> None:
        self.params = self.Params.model_validate(params or {})
        self._schema: Schema = []
        self._dtypes: dict[str, pl.DataType] = {}
        self._fitted = False
        #: What the fit spent and learnt, JSON-ready (``PrivacyAccountant.report`` plus the
        #: method's public model summary), after ``fit``.
        self.privacy: dict[str, Any] | None = None

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Callable[[float, str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Learn from ``data`` spending at most ``epsilon`` (and ``delta``)."""
        rng = np.random.default_rng(seed)
        accountant = PrivacyAccountant(self.params.epsilon, self.params.delta, self.accounting)
        private = PrivateData(data, accountant)
        del data  # from here on the rows are reached through `private` only

        def step(fraction: float, message: str) -> None:
            if cancelled is not None and cancelled():
                raise FitCancelled("cancelled")
            if progress is not None:
                progress(fraction, message)

        plan = plan_domains(schema, self.params)
        self._schema, self._dtypes = list(schema), dict(private.dtypes)
        step(0.0, f"learning the domains of {len(plan.columns)} columns")
        summary = self._fit(private, plan, rng, step)
        self._fitted = True
        self.privacy = {**accountant.report(), **summary}
        step(1.0, f"fitted: ε spent {accountant.epsilon_spent:.4g} of {self.params.epsilon:g}")

    def sample(
        self, n: int, *, seed: int | None, conditions: dict[str, Any] | None = None
    ) -> pl.DataFrame:
        """``n`` synthetic rows (conditions are left to the caller's reject-and-resample
        layer). Sampling is post-processing: it spends no budget."""
        if not self._fitted:
            raise RuntimeError("fit the synthesizer before sampling")
        rng = np.random.default_rng(seed)
        columns = self._sample(n, rng)
        return assemble_frame(self._schema, self._dtypes, columns, n, rng)

    def _fit(
        self,
        private: PrivateData,
        plan: DomainPlan,
        rng: np.random.Generator,
        step: Callable[[float, str], None],
    ) -> dict[str, Any]:
        """Learn the model; return its public summary for the privacy report."""
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator) -> dict[str, pl.Series]:
        """Sampled values per modelled column."""
        raise NotImplementedError
