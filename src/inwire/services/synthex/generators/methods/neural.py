"""What CTGAN and TVAE share: the data transformer and the conditional sampler.

Both networks see a table as one float matrix built the way CTGAN's paper does it (Xu et al.,
"Modeling Tabular Data using Conditional GAN", NeurIPS 2019, section 4.2):

- a continuous column (integer, float, datetime) gets *mode-specific normalization*: a
  variational (Bayesian) Gaussian mixture finds its modes; each value becomes the one-hot of
  a mode drawn from its posterior and a scalar ``alpha = (x - mean) / (4 std)`` in (-1, 1);
- a discrete column (categorical, boolean) becomes a one-hot of its categories, missing
  values being a category of their own;
- a continuous column with missing values gets a two-way one-hot "is missing" beside it.

CTGAN conditions its generator on one discrete column's value per row and trains by
sampling: real rows are drawn to match the condition, categories in proportion to the log of
their frequency, so rare categories are learnt too (section 4.3).

Everything here is numpy and polars, vectorised over rows: no Python loop runs per row, in
the transform, in its inverse or in the sampling of conditions. This module imports no
torch, so the methods' parameters validate and a missing torch is a clear error.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.base import (
    Cancelled,
    Progress,
    TableEncoding,
    check_cancel,
)
from inwire.services.synthex.schema import Schema

TORCH_EXTRA_MISSING = (
    "The {method} method needs PyTorch, which is not installed on this server. "
    "Install the torch extra (pip install 'inwire[torch]', or `make torch` in a checkout) "
    "and restart Synthex."
)

#: CTGAN's mixture: at most 10 modes, a Dirichlet-process prior that switches unused modes
#: off, and modes below this weight dropped.
MAX_MODES = 10
MODE_WEIGHT_THRESHOLD = 0.005
ALPHA_CLIP = 0.99
#: Categories one discrete column may have: each is a column of the one-hot matrix the
#: networks read and write, so a free-text column with thousands of values would make it
#: enormous and unlearnable.
MAX_CATEGORIES = 1_000


def torch_available() -> bool:
    """Whether PyTorch can be imported, without importing it."""
    return importlib.util.find_spec("torch") is not None


def require_torch(method: str) -> None:
    """Raise a 400 saying how to install PyTorch when it is missing."""
    if not torch_available():
        raise Invalid(
            TORCH_EXTRA_MISSING.format(method=method),
            details=[{"field": "method", "reason": "torch_not_installed", "extra": "torch"}],
        )


#: How many values of each continuous column its mode mixture is fitted on.
MixtureRows = Annotated[
    int,
    Field(
        ge=100,
        le=10_000_000,
        description="Values of each continuous column its mode mixture is fitted on "
        "(a uniform sample when it has more); more values find more small modes.",
    ),
]

#: Widths of a network's hidden layers.
LayerWidths = Annotated[
    list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1, max_length=8)
]


class NeuralParams(BaseModel):
    """What every neural method is tuned by.

    Validating them checks that PyTorch is installed: choosing a neural method on a server
    without it is a 400 saying how to install it, not a job that fails later.
    """

    model_config = ConfigDict(extra="forbid")
    #: The method these parameters belong to (named in the error when torch is missing).
    method: ClassVar[str] = "neural"

    epochs: int = Field(300, ge=1, le=10_000, description="Passes over the data.")
    batch_size: int = Field(500, ge=2, le=50_000, description="Rows per training step.")
    embedding_dim: int = Field(128, ge=1, le=4096, description="Size of the noise or code.")
    # On Ecdat's HI (22,272 rows, 30 epochs), CTGAN's column shapes scored 0.884 with
    # mixtures fitted on 5,000 values (10 seeds) and 0.906 on all of them (20 seeds).
    mixture_rows: MixtureRows = 50_000
    calibrate: bool = Field(
        True,
        description=(
            "Generate 3 rows per row asked for and keep those that bring the shares of "
            "categories, modes and missing values closest to the data's (no effect on rows "
            "sampled with conditions)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _torch_is_installed(cls, data: Any) -> Any:
        require_torch(cls.method)
        return data


@dataclass
class Training:
    """Epoch bookkeeping of a fit: cancel checked before, progress reported after each."""

    method: str
    epochs: int
    progress: Progress | None
    cancelled: Cancelled | None

    def run(self, steps: int) -> Iterator[int]:
        """The epoch numbers; raises ``FitCancelled`` before an epoch once cancelled."""
        if self.progress is not None:
            self.progress(0.0, f"training {self.method}: {self.epochs} epochs of {steps} steps")
        for epoch in range(self.epochs):
            check_cancel(self.cancelled)
            yield epoch

    def done(self, epoch: int, losses: str) -> None:
        """Report epoch ``epoch`` (0-based) finished, with its last losses."""
        if self.progress is not None:
            message = f"epoch {epoch + 1}/{self.epochs}: {losses}"
            self.progress((epoch + 1) / self.epochs, message)


class NeuralSynthesizer:
    """The frame of CTGAN and TVAE: parameters, torch check, seeds and the torch session.

    Subclasses implement ``_train`` (returns the fitted state) and ``_sample``; both run
    inside a seeded ``torch_session`` and get a numpy generator derived from the seed.
    """

    name: ClassVar[str]
    Params: ClassVar[type[NeuralParams]]

    def __init__(self, params: NeuralParams | dict[str, Any] | None = None) -> None:
        raw = params.model_dump() if isinstance(params, BaseModel) else params or {}
        self.params = self.Params.model_validate(raw)
        self._fitted: Any = None

    def fit(
        self,
        data: pl.DataFrame,
        schema: Schema,
        *,
        seed: int | None,
        progress: Progress | None = None,
        cancelled: Cancelled | None = None,
    ) -> None:
        """Learn ``data``; reports progress and checks for cancel once per epoch."""
        require_torch(self.name)
        if data.height == 0:
            raise Invalid(f"{self.name} needs at least one row to learn from")
        from inwire.services.synthex.generators.methods.neural_torch import torch_session

        rng = np.random.default_rng(seed)
        training = Training(self.name, self.params.epochs, progress, cancelled)
        with torch_session(int(rng.integers(2**63 - 1))):
            self._fitted = self._train(data, schema, rng, training)

    def sample(
        self, n: int, *, seed: int | None, conditions: dict[str, Any] | None = None
    ) -> pl.DataFrame:
        """``n`` synthetic rows, the same for the same seed."""
        if self._fitted is None:
            raise RuntimeError("fit the synthesizer before sampling")
        from inwire.services.synthex.generators.methods.neural_torch import torch_session

        rng = np.random.default_rng(seed)
        with torch_session(int(rng.integers(2**63 - 1))):
            return self._sample(n, rng, conditions or {})

    def _train(
        self, data: pl.DataFrame, schema: Schema, rng: np.random.Generator, training: Training
    ) -> Any:
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator, conditions: dict[str, Any]) -> pl.DataFrame:
        raise NotImplementedError


@dataclass(frozen=True)
class Span:
    """A run of columns of the transformed matrix and how a network's output becomes it."""

    start: int
    width: int
    #: ``alpha``: one scalar in (-1, 1) (tanh); ``softmax``: a one-hot.
    activation: Literal["alpha", "softmax"]


@dataclass
class ModeColumn:
    """A continuous column under mode-specific normalization."""

    name: str
    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    #: Share of the values put in each mode by `transform` (on average: it draws a value's
    #: mode from its posterior); what calibration aims the generated modes at.
    shares: np.ndarray
    alpha: Span
    modes: Span
    #: The two-way "is missing" one-hot, for a column with missing values.
    missing: Span | None
    #: Share of the column's values that are missing.
    missing_share: float = 0.0


@dataclass
class OneHotColumn:
    """A discrete column, one-hot encoded; a missing value is a category of its own."""

    name: str
    categories: pl.Series
    #: Row counts per category (the last one counts missing values when ``has_missing``).
    counts: np.ndarray
    has_missing: bool
    span: Span


@dataclass
class DataTransformer:
    """Turns a table into the matrix the networks learn, and their output back into a table.

    Types, categories, ranges and dtypes come from the generators' shared `TableEncoding`
    (its decoding rounds integers, clips to the range seen and restores dtypes); this adds
    the modes and one-hots on top of its float and code matrices.
    """

    encoding: TableEncoding
    continuous: list[ModeColumn] = field(default_factory=list)
    discrete: list[OneHotColumn] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    dim: int = 0

    @classmethod
    def fit(
        cls,
        frame: pl.DataFrame,
        schema: Schema,
        rng: np.random.Generator,
        *,
        mixture_rows: int = 50_000,
    ) -> DataTransformer:
        """Learn every column's encoding from ``frame``; each continuous column's mode
        mixture from at most ``mixture_rows`` of its values (``dp_mixture`` takes about
        8 ms per thousand)."""
        self = cls(TableEncoding.fit(frame, schema))
        numbers, codes = self.encoding.encode(frame)
        for j, column in enumerate(self.encoding.continuous):
            values = numbers[:, j]
            present = values[np.isfinite(values)]
            means, stds, weights = _fit_modes(present, rng, mixture_rows)
            self.continuous.append(
                ModeColumn(
                    name=column.name,
                    means=means,
                    stds=stds,
                    weights=weights,
                    shares=_mode_shares(present, means, stds, weights, values.size),
                    alpha=self._span(1, "alpha"),
                    modes=self._span(means.size, "softmax"),
                    missing=self._span(2, "softmax") if present.size < values.size else None,
                    missing_share=1.0 - present.size / max(values.size, 1),
                )
            )
        for j, category in enumerate(self.encoding.discrete):
            if category.categories.len() > MAX_CATEGORIES:
                raise Invalid(
                    f"Column {category.name!r} has {category.categories.len()} distinct values; "
                    f"CTGAN and TVAE one-hot encode categories and take at most "
                    f"{MAX_CATEGORIES} per column. Mark it as an identifier, or generalize "
                    "it with a recipe, or choose another method.",
                    details=[{"field": category.name, "reason": "too_many_categories"}],
                )
            code = codes[:, j]
            counts = np.bincount(code[code >= 0], minlength=category.categories.len())
            missing = int((code < 0).sum())
            if missing:
                counts = np.append(counts, missing)
            self.discrete.append(
                OneHotColumn(
                    name=category.name,
                    categories=category.categories,
                    counts=counts,
                    has_missing=missing > 0,
                    span=self._span(max(counts.size, 1), "softmax"),
                )
            )
        return self

    def _span(self, width: int, activation: Literal["alpha", "softmax"]) -> Span:
        span = Span(self.dim, width, activation)
        self.spans.append(span)
        self.dim += width
        return span

    def one_hot_codes(self, frame: pl.DataFrame) -> np.ndarray:
        """``(rows, discrete columns)``: each value's one-hot position (missing: the last)."""
        _, codes = self.encoding.encode(frame)
        for j, column in enumerate(self.discrete):
            codes[codes[:, j] < 0, j] = column.span.width - 1
        return codes

    # -- table → matrix --------------------------------------------------------------------

    def transform(self, frame: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """The float32 matrix of ``frame``: one row per row, ``dim`` columns."""
        out = np.zeros((frame.height, self.dim), dtype=np.float32)
        rows = np.arange(frame.height)
        numbers, _ = self.encoding.encode(frame)
        for j, col in enumerate(self.continuous):
            missing = ~np.isfinite(numbers[:, j])
            # A missing value gets a mode and alpha of a typical value; the "is missing"
            # one-hot says it is missing and the inverse puts the null back.
            values = np.where(missing, col.means[np.argmax(col.weights)], numbers[:, j])
            alpha, mode = _normalize(values, col, rng)
            out[:, col.alpha.start] = alpha
            out[rows, col.modes.start + mode] = 1.0
            if col.missing is not None:
                out[rows, col.missing.start + missing.astype(np.int64)] = 1.0
        codes = self.one_hot_codes(frame)
        for j, dis in enumerate(self.discrete):
            out[rows, dis.span.start + codes[:, j]] = 1.0
        return out

    # -- matrix → table --------------------------------------------------------------------

    def inverse(
        self,
        matrix: np.ndarray,
        rng: np.random.Generator,
        *,
        sigmas: np.ndarray | None = None,
    ) -> pl.DataFrame:
        """The table a network's activated output stands for.

        ``sigmas`` (TVAE) are the decoder's learnt standard deviations per matrix column;
        the alphas are drawn around the output with them, as TVAE's decoder models them.
        """
        n = matrix.shape[0]
        numbers = np.empty((n, len(self.continuous)), dtype=np.float64)
        for j, col in enumerate(self.continuous):
            alpha = matrix[:, col.alpha.start].astype(np.float64)
            if sigmas is not None:
                alpha = rng.normal(alpha, sigmas[col.alpha.start])
            alpha = np.clip(alpha, -1.0, 1.0)
            mode = np.argmax(matrix[:, col.modes.start : col.modes.start + col.modes.width], axis=1)
            numbers[:, j] = alpha * 4.0 * col.stds[mode] + col.means[mode]
            if col.missing is not None:
                is_missing = matrix[:, col.missing.start + 1] > matrix[:, col.missing.start]
                numbers[is_missing, j] = np.nan
        codes = np.empty((n, len(self.discrete)), dtype=np.int64)
        for j, dis in enumerate(self.discrete):
            block = matrix[:, dis.span.start : dis.span.start + dis.span.width]
            codes[:, j] = np.argmax(block, axis=1)
            if dis.has_missing:
                codes[codes[:, j] == dis.categories.len(), j] = -1
        return self.encoding.decode(numbers, codes)

    def shares(self, matrix: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each one-hot of ``matrix`` (rows as the networks make them, argmax decides) as
        codes, with the shares the data has: categories by their counts, modes as
        `transform` fills them (``ModeColumn.shares``), "is missing" by the missing share."""
        codes: list[np.ndarray] = []
        targets: list[np.ndarray] = []

        def block(span: Span) -> np.ndarray:
            picked: np.ndarray = np.argmax(matrix[:, span.start : span.start + span.width], axis=1)
            return picked

        for col in self.continuous:
            codes.append(block(col.modes))
            targets.append(col.shares)
            if col.missing is not None:
                codes.append(block(col.missing))
                targets.append(np.array([1.0 - col.missing_share, col.missing_share]))
        for dis in self.discrete:
            codes.append(block(dis.span))
            counts = np.zeros(dis.span.width)
            counts[: dis.counts.size] = dis.counts
            targets.append(counts / max(counts.sum(), 1.0))
        return codes, targets


def generate(
    n: int,
    draw: Callable[[int], np.ndarray],
    transformer: DataTransformer,
    rng: np.random.Generator,
    *,
    calibrate: bool,
) -> np.ndarray:
    """``n`` rows in the transformer's order, ``draw(k)`` making ``k`` of them (at most
    ``SAMPLE_BATCH``, which bounds the network's activations) at a time; at most
    ``SAMPLE_CHUNK`` rows are kept per round, so memory stays bounded. Calibrated,
    ``CALIBRATION_POOL`` rows are drawn per row kept (see `calibrated_rows`)."""

    def rows(count: int) -> np.ndarray:
        batches = range(0, count, SAMPLE_BATCH)
        return np.concatenate([draw(min(SAMPLE_BATCH, count - start)) for start in batches])

    parts: list[np.ndarray] = []
    for start in range(0, n, SAMPLE_CHUNK):
        size = min(SAMPLE_CHUNK, n - start)
        if not calibrate:
            parts.append(rows(size))
            continue
        pool = rows(size * CALIBRATION_POOL)
        parts.append(pool[calibrated_rows(*transformer.shares(pool), size, rng)])
    if not parts:
        return np.zeros((0, transformer.dim), dtype=np.float32)
    return np.concatenate(parts)


def calibrated_rows(
    codes: list[np.ndarray], targets: list[np.ndarray], n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` row numbers of a larger pool whose categories come close to ``targets``.

    The pool's rows are weighted by raking (iterative proportional fitting: each variable's
    weighted shares are scaled to its target in turn, which changes the joint as little as
    possible), the weights kept within a factor of ``RAKE_CAP`` of their mean, then ``n``
    rows are drawn without replacement with probabilities proportional to the weights
    (systematic sampling; a row whose share would exceed one is taken for sure).
    """
    if not codes:  # nothing to calibrate on: the first n rows
        return np.arange(n)
    size = codes[0].size
    if n >= size:
        return np.arange(size)
    weights = np.ones(size)
    for _ in range(RAKE_ROUNDS):
        for code, target in zip(codes, targets, strict=True):
            current = np.bincount(code, weights=weights, minlength=target.size)
            reachable = np.where(current > 0, target, 0.0)
            if reachable.sum() <= 0:
                continue
            wanted = reachable / reachable.sum() * weights.sum()
            ratio = np.divide(wanted, current, out=np.ones_like(current), where=current > 0)
            weights *= ratio[code]
        mean = weights.mean()
        np.clip(weights, mean / RAKE_CAP, mean * RAKE_CAP, out=weights)
    share = weights * (n / weights.sum())
    for _ in range(size):  # rows sure to be taken; the others share what is left
        sure = share >= 1.0
        rest = share[~sure].sum()
        if not (share > 1.0).any() or rest <= 0:
            break
        share[sure] = 1.0
        share[~sure] *= (n - sure.sum()) / rest
    order = rng.permutation(size)
    ends = np.cumsum(share[order])
    points = rng.random() + np.arange(n)
    picked = order[np.minimum(np.searchsorted(ends, points, side="right"), size - 1)]
    kept = np.unique(picked)
    if kept.size < n:  # rounding put two points in one row: fill up at random
        others = np.setdiff1d(np.arange(size), kept)
        kept = np.concatenate([kept, rng.choice(others, n - kept.size, replace=False)])
    return np.sort(kept)


#: Rounds of raking, and how far a row's weight may stray from the mean (times or divided).
RAKE_ROUNDS = 20
RAKE_CAP = 5.0
#: Rows generated per row kept when calibrating.
CALIBRATION_POOL = 3
#: Rows kept per round of generation (with the pool: 196,608 rows at once).
SAMPLE_CHUNK = 65_536
#: Rows a network makes per call when sampling.
SAMPLE_BATCH = 2_048


def _fit_modes(
    values: np.ndarray, rng: np.random.Generator, sample_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The modes of a column's values: means, standard deviations and weights."""
    if values.size == 0:
        return np.zeros(1), np.ones(1), np.ones(1)
    distinct = np.unique(values)
    spread = float(np.std(values)) or 1.0
    if distinct.size == 1:
        return distinct.astype(np.float64), np.array([spread]), np.ones(1)
    sample = values
    if values.size > sample_size:
        sample = rng.choice(values, sample_size, replace=False)
    weights, means, variances = dp_mixture(
        sample, min(MAX_MODES, distinct.size), seed=int(rng.integers(2**31 - 1))
    )
    keep = weights > MODE_WEIGHT_THRESHOLD
    if not keep.any():
        keep = weights == weights.max()
    stds = np.sqrt(variances[keep])
    return means[keep], np.maximum(stds, 1e-6 * spread), weights[keep] / weights[keep].sum()


#: ``dp_mixture``'s variational fit: at most this many rounds, stopped when the evidence
#: lower bound moves by less than the tolerance (scikit-learn's defaults).
MIXTURE_ROUNDS = 100
MIXTURE_TOLERANCE = 1e-3
_LOG_2PI = float(np.log(2 * np.pi))


def dp_mixture(
    values: np.ndarray, components: int, *, seed: int, concentration: float = 0.001
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A variational Dirichlet-process Gaussian mixture of 1-D values: weights, means and
    variances of its ``components`` (CTGAN's mode finder).

    This is scikit-learn's ``BayesianGaussianMixture`` (stick-breaking prior of
    ``concentration``, k-means start, the data's mean and variance as priors, the same
    updates and stopping rule: its results to about 1e-12) written for one feature. The
    general one spends its time on per-component loops, Cholesky factors and checks, and
    calls BLAS, whose threads wait on each other when another process wants the second
    core: about 250 ms per column here against 40 ms. Arrays are ``(components, rows)``,
    so every per-row reduction runs over the short axis in contiguous memory.
    """
    from scipy.special import betaln, digamma, gammaln
    from sklearn.cluster import KMeans

    x = np.asarray(values, dtype=np.float64)
    rows = np.arange(x.size)
    with warnings.catch_warnings():
        # Fewer distinct values than components: k-means says so, and the fit switches
        # the surplus components off.
        warnings.simplefilter("ignore")
        kmeans = KMeans(n_clusters=components, n_init=1, random_state=seed).fit(x[:, None])
    labels = kmeans.labels_
    resp = np.zeros((components, x.size))
    resp[labels, rows] = 1.0
    mean_prior, var_prior = float(x.mean()), float(x.var(ddof=1))
    tiny = 10 * np.finfo(np.float64).eps

    def m_step(resp: np.ndarray) -> tuple[np.ndarray, ...]:
        counts = resp.sum(axis=1) + tiny
        centres = np.einsum("kn,n->k", resp, x) / counts
        deviation = x - centres[:, None]
        spreads = np.einsum("kn,kn->k", resp, deviation * deviation) / counts + 1e-6
        stick_a = 1.0 + counts
        stick_b = concentration + np.concatenate([np.cumsum(counts[::-1])[-2::-1], [0.0]])
        precision = 1.0 + counts  # of the means; the prior's is 1
        means = (mean_prior + counts * centres) / precision
        dof = 1.0 + counts  # the prior's degrees of freedom: 1 (one feature)
        shift = centres - mean_prior
        variances = (var_prior + counts * spreads + counts / precision * shift * shift) / dof
        return stick_a, stick_b, precision, means, dof, variances

    def e_step(params: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        stick_a, stick_b, precision, means, dof, variances = params
        digamma_sum = digamma(stick_a + stick_b)
        log_weights = digamma(stick_a) - digamma_sum
        log_weights[1:] += np.cumsum(digamma(stick_b) - digamma_sum)[:-1]
        constant = log_weights + 0.5 * (
            np.log(2.0)
            + digamma(0.5 * dof)
            - 1.0 / precision
            - _LOG_2PI
            - np.log(variances)
            - np.log(dof)
        )
        log_resp = x - means[:, None]
        log_resp *= log_resp
        log_resp *= -0.5 / variances[:, None]
        log_resp += constant[:, None]
        log_resp -= log_resp.max(axis=0)
        resp = np.exp(log_resp)
        total = resp.sum(axis=0)
        resp /= total
        log_resp -= np.log(total)
        return resp, log_resp

    def lower_bound(
        resp: np.ndarray, log_resp: np.ndarray, params: tuple[np.ndarray, ...]
    ) -> float:
        stick_a, stick_b, precision, _, dof, variances = params
        log_det = -0.5 * (np.log(variances) + np.log(dof))
        log_wishart = -(dof * log_det + dof * 0.5 * np.log(2.0) + gammaln(0.5 * dof))
        return float(
            -np.einsum("kn,kn->", resp, log_resp)
            - log_wishart.sum()
            + betaln(stick_a, stick_b).sum()
            - 0.5 * np.log(precision).sum()
        )

    params = m_step(resp)
    bound = -np.inf
    for _ in range(MIXTURE_ROUNDS):
        resp, log_resp = e_step(params)
        params = m_step(resp)
        bound, previous = lower_bound(resp, log_resp, params), bound
        if abs(bound - previous) < MIXTURE_TOLERANCE:
            break
    stick_a, stick_b, _, means, _, variances = params
    total = stick_a + stick_b
    weights = stick_a / total * np.concatenate([[1.0], np.cumprod((stick_b / total)[:-1])])
    return weights / weights.sum(), means, variances


#: Rows per chunk of the transform: bounds the (rows x modes) posterior in memory.
_CHUNK = 262_144


def _posterior(
    x: np.ndarray, means: np.ndarray, stds: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``(values, modes)``: each value's posterior over the modes, unnormalized (its
    largest entry is 1)."""
    z = (x[:, None] - means) / stds
    log_post = np.log(weights) - np.log(stds) - 0.5 * z * z
    log_post -= log_post.max(axis=1, keepdims=True)
    post: np.ndarray = np.exp(log_post)
    return post


def _mode_shares(
    present: np.ndarray, means: np.ndarray, stds: np.ndarray, weights: np.ndarray, rows: int
) -> np.ndarray:
    """The share of a column's ``rows`` each mode gets on average in `transform`: the
    ``present`` values by their posteriors, missing ones all in the heaviest mode."""
    total = np.zeros(means.size)
    for start in range(0, present.size, _CHUNK):
        post = _posterior(present[start : start + _CHUNK], means, stds, weights)
        total += (post / post.sum(axis=1, keepdims=True)).sum(axis=0)
    total[np.argmax(weights)] += rows - present.size
    if total.sum() <= 0:
        total = weights.astype(np.float64)
    shares: np.ndarray = total / total.sum()
    return shares


def _normalize(
    values: np.ndarray, col: ModeColumn, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each value's mode (drawn from its posterior over the modes) and its alpha in it."""
    alpha = np.empty(values.size, dtype=np.float32)
    mode = np.empty(values.size, dtype=np.int64)
    for start in range(0, values.size, _CHUNK):
        x = values[start : start + _CHUNK, None]
        post = _posterior(x[:, 0], col.means, col.stds, col.weights)
        cdf = np.cumsum(post, axis=1)
        u = rng.random((x.shape[0], 1)) * cdf[:, -1:]
        chosen = np.minimum((cdf < u).sum(axis=1), col.means.size - 1)
        picked = (x[:, 0] - col.means[chosen]) / (4.0 * col.stds[chosen])
        alpha[start : start + _CHUNK] = np.clip(picked, -ALPHA_CLIP, ALPHA_CLIP)
        mode[start : start + _CHUNK] = chosen
    return alpha, mode


@dataclass
class ConditionSampler:
    """CTGAN's conditional vectors and training-by-sampling, vectorised over a batch.

    A condition is one category of one discrete column, numbered globally: column ``j``'s
    categories are ``offsets[j] .. offsets[j] + widths[j] - 1``. The conditional vector is
    the one-hot of that number over all discrete columns' categories.
    """

    offsets: np.ndarray
    widths: np.ndarray
    #: Per column, cumulative probabilities of its categories (padded with 1): training
    #: draws by the log of frequencies, generation by the frequencies themselves.
    train_cdf: np.ndarray
    data_cdf: np.ndarray
    #: Row numbers sorted by category, column after column; ``starts``/``counts`` per
    #: condition number locate a condition's rows in it.
    rows: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    n_rows: int

    @classmethod
    def build(cls, transformer: DataTransformer, frame: pl.DataFrame) -> ConditionSampler:
        """The sampler of ``frame``'s discrete columns, as ``transformer`` encodes them."""
        discrete = transformer.discrete
        widths = np.array([d.span.width for d in discrete], dtype=np.int64)
        offsets = np.cumsum(widths) - widths
        longest = int(widths.max()) if widths.size else 1
        train_cdf = np.ones((len(discrete), longest))
        data_cdf = np.ones((len(discrete), longest))
        rows, starts, counts = [], [], []
        codes = transformer.one_hot_codes(frame)
        for j, col in enumerate(discrete):
            counts_j = np.zeros(col.span.width, dtype=np.int64)
            counts_j[: col.counts.size] = col.counts
            log_freq = np.log1p(counts_j)
            train_cdf[j, : col.span.width] = np.cumsum(log_freq) / log_freq.sum()
            data_cdf[j, : col.span.width] = np.cumsum(counts_j) / max(counts_j.sum(), 1)
            rows.append(np.argsort(codes[:, j], kind="stable"))
            starts.append(j * frame.height + np.concatenate([[0], np.cumsum(counts_j)[:-1]]))
            counts.append(counts_j)
        return cls(
            offsets=offsets,
            widths=widths,
            train_cdf=train_cdf,
            data_cdf=data_cdf,
            rows=np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
            starts=np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64),
            counts=np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64),
            n_rows=frame.height,
        )

    @property
    def dim(self) -> int:
        """Length of a conditional vector (0 when the table has no discrete column)."""
        return int(self.widths.sum())

    def _draw(self, cdf: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        columns = rng.integers(self.widths.size, size=size)
        u = rng.random(size)[:, None]
        category = np.minimum((cdf[columns] < u).sum(axis=1), self.widths[columns] - 1)
        drawn: np.ndarray = self.offsets[columns] + category
        return drawn

    def training_conditions(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Condition numbers for a training batch (column uniform, log-frequency category)."""
        return self._draw(self.train_cdf, size, rng)

    def generation_conditions(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Condition numbers for generation: mixing the conditionals back to the data."""
        return self._draw(self.data_cdf, size, rng)

    def real_rows(self, conditions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One real row number per condition, uniformly among the rows that match it."""
        offset = np.floor(rng.random(conditions.size) * self.counts[conditions]).astype(np.int64)
        rows: np.ndarray = self.rows[self.starts[conditions] + offset]
        return rows

    def condition_of(self, transformer: DataTransformer, column: str, value: object) -> int | None:
        """The condition number of ``column == value``, or None if it is not a known one."""
        for j, col in enumerate(transformer.discrete):
            if col.name != column:
                continue
            if value is None:
                return int(self.offsets[j] + col.counts.size - 1) if col.has_missing else None
            try:
                found = (col.categories == value).arg_true()
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                return None
            return int(self.offsets[j] + found[0]) if found.len() else None
        return None
