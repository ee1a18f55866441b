"""PrivBayes: a differentially private Bayesian network (Zhang et al., "PrivBayes: Private
Data Release via Bayesian Networks", ACM TODS 2017).

The fit spends ε in three visible steps, each through `PrivateData` (see ``dp.py``):

1. **Domains**: columns whose bounds or categories are not declared get them privately
   (``domain_share`` of ε; δ only when categories are discovered).
2. **Structure** (``structure_share`` β of the rest, the paper's ε₁): noisy 1-way marginals
   (half of it), then d-1 greedy steps, each choosing an (attribute, parents) pair with the
   exponential mechanism (the other half). Parent sets have ``degree`` k attributes, fewer
   when a table would hold too few rows per cell for its noise (the paper's θ-usefulness,
   §4.3). The score is the L1 distance of the joint counts of (X, Π) from "X independent
   of Π" built with X's *noisy* marginal: S = Σ |C[π, x] - p̂(x)·C[π]|. It plays the role
   of the paper's R score (§5.2) but has sensitivity 2 under add/remove-one with no need
   to know n: adding a row (π₀, x₀) moves the π₀ row's terms by at most
   (1 - p̂(x₀)) + Σ_{x≠x₀} p̂(x) ≤ 2.
3. **Conditionals** (the paper's ε₂): each attribute's joint table with its parents, with
   Laplace noise (each row lands in d tables, so each gets ε₂/d), clipped and normalised
   into P(X | Π).

Sampling is ancestral, in the order the structure was built; codes become values uniform
within their bin (see ``ColumnDomain.decode``). Everything stored after the fit is public:
domains, structure and noisy tables.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field

from inwire.services.synthex.generators.methods.dp import (
    Accounting,
    ColumnDomain,
    DomainPlan,
    PrivateData,
    PrivateMethodParams,
    PrivateSynthesizer,
    draw_codes,
    normalised,
    private_domains,
)

#: The paper's θ: a noisy table is useful when it has at least θ rows per cell for each
#: unit of noise scale (n·ε₂ / (d·cells) ≥ θ); 4 is the paper's recommended value.
USEFULNESS = 4.0
#: Candidate parent sets scored per step at most (a random subset when there are more).
MAX_CANDIDATES = 2000


class PrivBayesParams(PrivateMethodParams):
    """Parameters of PrivBayes."""

    #: k: parents per attribute at most.
    degree: int = Field(default=2, ge=1, le=4)
    #: β: share of ε (after domains) spent on learning the structure.
    structure_share: float = Field(default=0.3, gt=0, lt=1)


@dataclass
class _Network:
    """A fitted network: public domains, order, parents and conditional tables."""

    domains: list[ColumnDomain]
    order: list[int]
    parents: dict[int, tuple[int, ...]]
    #: P(X | Π) per attribute, shaped (*parent sizes, own size).
    tables: dict[int, np.ndarray]
    marginals: list[np.ndarray]


class PrivBayes(PrivateSynthesizer):
    """A Bayesian network learnt under ε-differential privacy."""

    name: ClassVar[str] = "privbayes"
    Params: ClassVar[type[PrivateMethodParams]] = PrivBayesParams
    accounting: ClassVar[Accounting] = "pure"
    params: PrivBayesParams

    def __init__(self, params: PrivBayesParams | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._network: _Network | None = None

    def _fit(
        self,
        private: PrivateData,
        plan: DomainPlan,
        rng: np.random.Generator,
        step: Callable[[float, str], None],
    ) -> dict[str, Any]:
        p = self.params
        paid = len(plan.needs_bounds) + len(plan.needs_categories)
        domain_epsilon = p.epsilon * p.domain_share if paid else 0.0
        domains = private_domains(
            private,
            plan,
            p,
            bounds_epsilon=domain_epsilon / max(paid, 1),
            categories_epsilon=domain_epsilon / max(paid, 1),
            categories_delta=p.delta / max(len(plan.needs_categories), 1),
            rng=rng,
        )
        d = len(domains)
        if d == 0:
            self._network = _Network([], [], {}, {}, [])
            return {"network": [], "domains": []}
        rest = p.epsilon - domain_epsilon
        structure_epsilon = rest * p.structure_share if d > 1 else 0.0
        conditional_epsilon = rest - structure_epsilon

        marginals: list[np.ndarray] = []
        rows_estimate = 0.0
        if d > 1:
            step(0.1, "measuring 1-way marginals")
            sums = []
            for dom in domains:
                noisy = private.laplace_marginal(
                    [dom], structure_epsilon / 2 / d, rng, purpose="structure"
                )
                marginals.append(normalised(noisy))
                sums.append(float(np.maximum(noisy, 0).sum()))
            rows_estimate = float(np.median(sums))

        # θ-usefulness: the largest table the conditional noise leaves useful.
        max_cells = max(rows_estimate * conditional_epsilon / (d * USEFULNESS), 1.0)
        order = [int(rng.integers(d))]
        parents: dict[int, tuple[int, ...]] = {order[0]: ()}
        select_epsilon = structure_epsilon / 2 / max(d - 1, 1)
        while len(order) < d:
            step(0.1 + 0.5 * len(order) / d, f"choosing parents ({len(order)}/{d})")
            candidates = self._candidates(domains, order, max_cells, rng)
            chosen = self._choose(private, domains, marginals, candidates, select_epsilon, rng)
            x, pa = candidates[chosen]
            order.append(x)
            parents[x] = pa

        tables: dict[int, np.ndarray] = {}
        for i, x in enumerate(order):
            step(0.6 + 0.4 * i / d, f"measuring conditionals ({i + 1}/{d})")
            cols = [domains[j] for j in parents[x]] + [domains[x]]
            noisy = private.laplace_marginal(
                cols, conditional_epsilon / d, rng, purpose="conditionals"
            )
            tables[x] = _conditional(noisy)
        if not marginals:
            marginals = [
                normalised(tables[x].reshape(-1, domains[x].size).sum(axis=0)) for x in range(d)
            ]
        self._network = _Network(domains, order, parents, tables, marginals)
        return {
            "network": [
                {"column": domains[x].name, "parents": [domains[j].name for j in parents[x]]}
                for x in order
            ],
            "domains": [dom.describe() for dom in domains],
        }

    def _candidates(
        self,
        domains: list[ColumnDomain],
        placed: list[int],
        max_cells: float,
        rng: np.random.Generator,
    ) -> list[tuple[int, tuple[int, ...]]]:
        """(attribute, parents) pairs for the next step: the largest parent sets (≤ k) whose
        table stays θ-useful, per attribute not yet placed (public sizes only)."""
        out: list[tuple[int, tuple[int, ...]]] = []
        for x in range(len(domains)):
            if x in placed:
                continue
            for size in range(min(self.params.degree, len(placed)), -1, -1):
                sets = [
                    pa
                    for pa in itertools.combinations(sorted(placed), size)
                    if domains[x].size * math.prod(domains[j].size for j in pa) <= max_cells
                ]
                if sets or size == 0:
                    out.extend((x, pa) for pa in (sets or [()]))
                    break
        if len(out) > MAX_CANDIDATES:
            keep = rng.choice(len(out), size=MAX_CANDIDATES, replace=False)
            out = [out[i] for i in sorted(keep)]
        return out

    @staticmethod
    def _choose(
        private: PrivateData,
        domains: list[ColumnDomain],
        marginals: list[np.ndarray],
        candidates: list[tuple[int, tuple[int, ...]]],
        epsilon: float,
        rng: np.random.Generator,
    ) -> int:
        def score(i: int, table: np.ndarray) -> float:
            x, _ = candidates[i]
            joint = table.reshape(-1, domains[x].size)  # rows: parent configurations
            expected = joint.sum(axis=1, keepdims=True) * marginals[x][None, :]
            return float(np.abs(joint - expected).sum())

        column_sets = [[domains[j] for j in pa] + [domains[x]] for x, pa in candidates]
        return private.choose(column_sets, score, 2.0, epsilon, rng, purpose="structure")

    def _sample(self, n: int, rng: np.random.Generator) -> dict[str, pl.Series]:
        """Ancestral sampling in the order the structure was built."""
        assert self._network is not None
        net = self._network
        codes = np.zeros((n, len(net.domains)), dtype=np.int64)
        for x in net.order:
            flat = net.tables[x].reshape(-1, net.domains[x].size)
            config = np.zeros(n, dtype=np.int64)
            for j in net.parents[x]:
                config = config * net.domains[j].size + codes[:, j]
            codes[:, x] = draw_codes(flat, config, rng)
        return {
            dom.name: dom.decode(codes[:, i], rng, net.marginals[i])
            for i, dom in enumerate(net.domains)
        }


def _conditional(noisy: np.ndarray) -> np.ndarray:
    """Noisy joint counts (…parents, X) → P(X | parents), falling back to X's marginal
    for parent configurations the noise left empty."""
    size = noisy.shape[-1]
    joint = np.maximum(noisy.reshape(-1, size), 0.0)
    fallback = normalised(joint.sum(axis=0))
    totals = joint.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = np.where(totals > 0, joint / np.where(totals > 0, totals, 1.0), fallback[None, :])
    return cond.reshape(noisy.shape)
