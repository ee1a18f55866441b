"""MST: marginals on a maximum spanning tree (McKenna, Miklau & Sheldon, "Winning the NIST
Contest: A scalable and general approach to differentially private synthetic data",
Journal of Privacy and Confidentiality 2021, §4).

Accounting is zCDP: the budget (ε, δ) becomes rho (Canonne, Kamath & Steinke 2020) and is
spent in three equal parts, as in the paper, after the domains (see ``dp.py``):

1. every 1-way marginal with Gaussian noise; values whose noisy count is under 3sigma are
   merged into one ("compressing the domain", post-processing);
2. a spanning tree chosen edge by edge (Kruskal's order) with the exponential mechanism:
   an edge's score is the L1 distance between the true 2-way counts and the product of
   the noisy 1-way marginals, which has sensitivity 1 because the product is public;
3. the d-1 chosen 2-way marginals with Gaussian noise.

The paper then runs Private-PGM for inference. On a tree that is not needed; this module
makes the noisy marginals consistent itself: each column's distribution is the
inverse-variance-weighted mean of its 1-way measurement and the sums of its 2-way
measurements, projected on the simplex; each 2-way table is projected on the simplex and
fitted to both column distributions by iterative proportional fitting. Sampling then goes
from the root to the leaves through the conditional tables P(child | parent).
"""

from __future__ import annotations

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
    project_to_simplex,
    zcdp_rho,
)

#: Iterative proportional fitting rounds per tree edge (converges in a few dozen).
IPF_ROUNDS = 200
#: Mass spread as "independent" over a 2-way table before fitting, so a row or column the
#: noise emptied can still take the mass its column distribution asks for.
TABLE_FLOOR = 1e-6


class MSTParams(PrivateMethodParams):
    """Parameters of MST."""

    #: δ > 0: MST's Gaussian noise is accounted in zCDP and needs it.
    delta: float = Field(default=1e-9, gt=0, lt=1e-3)


@dataclass
class _Column:
    """A modelled column: its domain and how its codes were compressed."""

    domain: ColumnDomain
    #: original code → compressed code
    recode: np.ndarray
    #: original codes merged into the last compressed code (empty when none were)
    merged: np.ndarray
    #: the fitted distribution over compressed codes
    distribution: np.ndarray

    @property
    def size(self) -> int:
        return int(self.recode.max()) + 1

    def original_marginal(self) -> np.ndarray:
        """The distribution spread back over the original codes."""
        out: np.ndarray = self.distribution[self.recode].copy()
        if len(self.merged):
            out[self.merged] /= len(self.merged)
        return out


@dataclass
class _Tree:
    columns: list[_Column]
    #: (parent, child, P(child | parent)) in sampling order
    edges: list[tuple[int, int, np.ndarray]]
    roots: list[int]


class MST(PrivateSynthesizer):
    """Marginals on a maximum spanning tree, under (ε, δ)-differential privacy."""

    name: ClassVar[str] = "mst"
    Params: ClassVar[type[PrivateMethodParams]] = MSTParams
    accounting: ClassVar[Accounting] = "zcdp"
    params: MSTParams

    def __init__(self, params: MSTParams | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._tree: _Tree | None = None

    def _fit(
        self,
        private: PrivateData,
        plan: DomainPlan,
        rng: np.random.Generator,
        step: Callable[[float, str], None],
    ) -> dict[str, Any]:
        p = self.params
        accountant = private.accountant
        n_categories, n_bounds = len(plan.needs_categories), len(plan.needs_bounds)
        paid = n_categories + n_bounds
        # Category discovery is (ε, δ)-DP and sits outside zCDP: give it its ε and half of δ.
        category_epsilon = p.epsilon * p.domain_share * n_categories / paid if paid else 0.0
        category_delta = p.delta / 2 if n_categories else 0.0
        rho = zcdp_rho(p.epsilon - category_epsilon, p.delta - category_delta)
        bounds_rho = rho * p.domain_share * n_bounds / paid if paid else 0.0
        domains = private_domains(
            private,
            plan,
            p,
            # A Laplace histogram with ε costs ε²/2 in rho.
            bounds_epsilon=float(np.sqrt(2 * bounds_rho / max(n_bounds, 1))),
            categories_epsilon=category_epsilon / max(n_categories, 1),
            categories_delta=category_delta / max(n_categories, 1),
            rng=rng,
        )
        d = len(domains)
        if d == 0:
            self._tree = _Tree([], [], [])
            return {"tree": [], "domains": []}
        rest = rho - sum(c.rho for c in accountant.charges)
        share = rest / 3 if d > 1 else rest

        step(0.2, "measuring 1-way marginals")
        sigma1 = float(np.sqrt(d / (2 * share)))
        ones = [
            private.gaussian_marginal([dom], sigma1, rng, purpose="marginals") for dom in domains
        ]
        rows = float(np.median([max(y.sum(), 1.0) for y in ones]))
        columns = [_compress(dom, y, sigma1) for dom, y in zip(domains, ones, strict=True)]
        # Per compressed cell: the noisy count and its variance.
        cells = [
            (
                np.bincount(c.recode, weights=y, minlength=c.size),
                np.bincount(c.recode, minlength=c.size) * sigma1**2,
            )
            for c, y in zip(columns, ones, strict=True)
        ]
        twos: dict[tuple[int, int], np.ndarray] = {}
        sigma2 = 1.0
        if d > 1:
            step(0.4, "choosing the spanning tree")
            independent = [normalised(project_to_simplex(y, rows)) for y, _ in cells]
            tree = self._select(private, columns, independent, rows, share, rng, step)
            step(0.7, f"measuring {len(tree)} 2-way marginals")
            sigma2 = float(np.sqrt(len(tree) / (2 * share)))
            for a, b in tree:
                twos[(a, b)] = private.gaussian_marginal(
                    [columns[a].domain, columns[b].domain],
                    sigma2,
                    rng,
                    purpose="marginals",
                    recodes=[columns[a].recode, columns[b].recode],
                )

        step(0.9, "making the marginals consistent")
        for i, column in enumerate(columns):
            column.distribution = _column_distribution(i, cells[i], twos, sigma2, rows)
        tables = {
            (a, b): _fit_table(y, columns[a].distribution, columns[b].distribution, rows)
            for (a, b), y in twos.items()
        }
        edges, roots = _orient(d, tables)
        self._tree = _Tree(columns, edges, roots)
        names = [c.domain.name for c in columns]
        return {
            "tree": [[names[a], names[b]] for a, b, _ in edges],
            "domains": [{**c.domain.describe(), "merged": len(c.merged)} for c in columns],
        }

    def _select(
        self,
        private: PrivateData,
        columns: list[_Column],
        independent: list[np.ndarray],
        rows: float,
        rho: float,
        rng: np.random.Generator,
        step: Callable[[float, str], None],
    ) -> list[tuple[int, int]]:
        """d-1 edges, each by the exponential mechanism over pairs joining two components."""
        d = len(columns)
        epsilon = float(np.sqrt(8 * rho / (d - 1)))  # ε²/8 in rho per choice
        component = list(range(d))

        def find(i: int) -> int:
            while component[i] != i:
                component[i] = component[component[i]]
                i = component[i]
            return i

        recode = {id(c.domain): c.recode for c in columns}
        chosen: list[tuple[int, int]] = []
        for k in range(d - 1):
            step(0.4 + 0.3 * k / (d - 1), f"choosing edge {k + 1}/{d - 1}")
            pairs = [(a, b) for a in range(d) for b in range(a + 1, d) if find(a) != find(b)]

            def score(i: int, table: np.ndarray, pairs: list[tuple[int, int]] = pairs) -> float:
                a, b = pairs[i]
                expected = rows * np.outer(independent[a], independent[b])
                return float(np.abs(table - expected).sum())

            pick = private.choose(
                [[columns[a].domain, columns[b].domain] for a, b in pairs],
                score,
                1.0,
                epsilon,
                rng,
                purpose="structure",
                recodes=lambda doms: [recode[id(dom)] for dom in doms],
            )
            a, b = pairs[pick]
            component[find(a)] = find(b)
            chosen.append((a, b))
        return chosen

    def _sample(self, n: int, rng: np.random.Generator) -> dict[str, pl.Series]:
        """From the roots to the leaves through P(child | parent)."""
        assert self._tree is not None
        tree = self._tree
        codes = np.zeros((n, len(tree.columns)), dtype=np.int64)
        for r in tree.roots:
            dist = tree.columns[r].distribution[None, :]
            codes[:, r] = draw_codes(dist, np.zeros(n, dtype=np.int64), rng)
        for a, b, cond in tree.edges:
            codes[:, b] = draw_codes(cond, codes[:, a], rng)
        out: dict[str, pl.Series] = {}
        for i, c in enumerate(tree.columns):
            # Each compressed code stands for its first original code; the merged one is
            # spread uniformly over the codes merged into it, as in the paper.
            representative = np.zeros(c.size, dtype=np.int64)
            representative[c.recode[::-1]] = np.arange(len(c.recode))[::-1]
            values = representative[codes[:, i]]
            if len(c.merged):
                hit = codes[:, i] == c.size - 1
                values[hit] = rng.choice(c.merged, size=int(hit.sum()))
            out[c.domain.name] = c.domain.decode(values, rng, c.original_marginal())
        return out


def _compress(domain: ColumnDomain, noisy: np.ndarray, sigma: float) -> _Column:
    """Merge the codes whose noisy count is under 3sigma into one (McKenna et al., §4)."""
    frequent = noisy >= 3 * sigma
    if frequent.all() or (~frequent).sum() == 1:
        recode = np.arange(domain.size)
        merged = np.zeros(0, dtype=np.int64)
    else:
        recode = np.empty(domain.size, dtype=np.int64)
        recode[frequent] = np.arange(int(frequent.sum()))
        recode[~frequent] = int(frequent.sum())
        merged = np.flatnonzero(~frequent)
    size = int(recode.max()) + 1
    return _Column(domain, recode, merged, np.full(size, 1.0 / size))


def _column_distribution(
    i: int,
    measured: tuple[np.ndarray, np.ndarray],
    twos: dict[tuple[int, int], np.ndarray],
    sigma2: float,
    rows: float,
) -> np.ndarray:
    """Inverse-variance mean of a column's 1-way measurement and its 2-way sums, on the
    simplex."""
    y, variance = measured
    estimates = [(y, variance)]
    for (a, b), table in twos.items():
        if i == a:
            estimates.append((table.sum(axis=1), np.full(len(y), table.shape[1] * sigma2**2)))
        elif i == b:
            estimates.append((table.sum(axis=0), np.full(len(y), table.shape[0] * sigma2**2)))
    weights = sum(1.0 / v for _, v in estimates)
    mean = sum(e / v for e, v in estimates) / weights
    return normalised(project_to_simplex(mean, rows))


def _fit_table(
    noisy: np.ndarray, rows_p: np.ndarray, cols_p: np.ndarray, total: float
) -> np.ndarray:
    """A joint distribution close to the noisy table whose margins are exactly the columns'
    distributions (simplex projection, then iterative proportional fitting)."""
    table = project_to_simplex(noisy.ravel(), total).reshape(noisy.shape) / total
    table = table + TABLE_FLOOR * np.outer(rows_p, cols_p)
    for _ in range(IPF_ROUNDS):
        r = table.sum(axis=1)
        table *= np.divide(rows_p, r, out=np.zeros_like(r), where=r > 0)[:, None]
        c = table.sum(axis=0)
        table *= np.divide(cols_p, c, out=np.zeros_like(c), where=c > 0)[None, :]
    return table


def _orient(
    d: int, tables: dict[tuple[int, int], np.ndarray]
) -> tuple[list[tuple[int, int, np.ndarray]], list[int]]:
    """Edges from the root outwards, each with P(child | parent)."""
    neighbours: dict[int, list[int]] = {i: [] for i in range(d)}
    for a, b in tables:
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen: set[int] = set()
    edges: list[tuple[int, int, np.ndarray]] = []
    roots: list[int] = []
    for root in range(d):
        if root in seen:
            continue
        roots.append(root)
        seen.add(root)
        queue = [root]
        while queue:
            a = queue.pop(0)
            for b in neighbours[a]:
                if b in seen:
                    continue
                seen.add(b)
                queue.append(b)
                joint = tables[(a, b)] if (a, b) in tables else tables[(b, a)].T
                totals = joint.sum(axis=1, keepdims=True)
                fallback = normalised(joint.sum(axis=0))
                cond = np.where(
                    totals > 0, joint / np.where(totals > 0, totals, 1.0), fallback[None, :]
                )
                edges.append((a, b, cond))
    return edges, roots
