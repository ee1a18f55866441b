"""Multi-table generation: a parent table and its child tables, joined by foreign keys.

A generator's ``relations`` name child tables whose ``foreign_key`` refers to the source's
(the parent's) ``parent_key``. One run makes all of them:

1. *Cardinality.* Each parent row is given, per relation, the number of child rows that
   refer to it (a hidden ``__synthex_children_<i>`` column). The parent's method learns
   these counts with the other columns, so how many children a synthetic parent gets
   follows its attributes (a premium customer with many orders stays that way).
2. *Parents.* The parent's synthesizer samples the rows and their counts; the parent key
   is generated fresh and unique (an identifier, or made one for the run) in the key's
   own format.
3. *Children.* Each child's synthesizer learns the child rows joined with some of their
   parent's columns (``parent_columns``; by default the parent's categorical and boolean
   columns with at most 20 values, up to 3), under hidden ``__synthex_parent_<column>``
   names. For each group of synthetic parents sharing those values it samples as many
   rows as the group's counts add up to, *conditioned* on the values (exactly with
   gaussian_copula and ctgan's discrete conditions, by rejection for the others, see
   ``ConstrainedSynthesizer``). A group no row of the method meets is sampled without the
   condition (the fallback; counted as ``unconditioned_parents``). The rows are dealt to
   the group's parents by their counts, the parent columns dropped, and the foreign key
   set to the parent's synthetic key, so every child refers to a synthetic parent.
   Identifier columns of the child are made fresh over the whole table (unique across
   groups).
4. *Check and report.* Referential integrity is counted on the result (never assumed):
   a child row whose key is not a synthetic parent's fails the run. The cardinality report
   compares children per parent, real and synthetic (summary statistics, histogram, total
   variation distance, and the mean per conditioned parent value).

The holdout of the evaluation is by parent: the children of held-out parents are held out
too. Child rows whose key matches no parent row (orphans in the source) are left out and
counted. Every random choice derives from the run's seed, so the same seed gives the same
tables. Grandchildren (a child's own children) are not modelled: the tree is one level.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.base import Cancelled, Progress
from inwire.services.synthex.generators.constraints import (
    ConstrainedSynthesizer,
    Constraint,
    IdentifierFormat,
    Unique,
    fresh_identifiers,
)
from inwire.services.synthex.generators.methods import create
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

#: Prefix of the hidden per-relation child count column of the parent.
COUNT = "__synthex_children_"
#: Prefix of the parent columns joined to the child rows.
PARENT = "__synthex_parent_"
#: Defaults for the parent columns children are conditioned on.
MAX_DEFAULT_COLUMNS, MAX_DEFAULT_VALUES = 3, 20
#: Children-per-parent histogram: counts 0 … HISTOGRAM - 1, then "HISTOGRAM or more".
HISTOGRAM = 20
_KEY = "__synthex_key"


@dataclass
class ChildTable:
    """A child table as a run learns it: its relation (snapshot entry) and source rows."""

    relation: dict[str, Any]
    frame: pl.DataFrame
    schema: Schema


@dataclass
class ChildResult:
    """What a run made of one child table, and the real rows to evaluate it against."""

    rows: pl.DataFrame
    train: pl.DataFrame
    holdout: pl.DataFrame | None
    parent_columns: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    integrity: dict[str, Any] = field(default_factory=dict)
    cardinality: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] | None = None


@dataclass
class Tables:
    """A run's synthetic parent (without the hidden counts) and children."""

    parent: pl.DataFrame
    stats: dict[str, Any]
    privacy: dict[str, Any] | None
    children: list[ChildResult]


def _as_key(column: str) -> pl.Expr:
    """A key column as text, so an integer key and a text foreign key still join."""
    return pl.col(column).cast(pl.String).alias(_KEY)


def _seed(seed: int, *path: int) -> int:
    """A seed for one step of the run, derived from the run's seed."""
    return int(np.random.SeedSequence([seed % 2**63, *path]).generate_state(1, np.uint64)[0] >> 1)


def default_parent_columns(parent: pl.DataFrame, schema: Schema, key: str) -> list[str]:
    """The parent's categorical and boolean columns with few values (up to 3)."""
    out = []
    for spec in schema:
        if spec.name == key or spec.name not in parent.columns:
            continue
        if spec.type not in (ColumnType.categorical, ColumnType.boolean):
            continue
        if parent.get_column(spec.name).n_unique() <= MAX_DEFAULT_VALUES:
            out.append(spec.name)
        if len(out) == MAX_DEFAULT_COLUMNS:
            break
    return out


def check_keys(parent: pl.DataFrame, children: list[ChildTable]) -> None:
    """The keys of the versions a run reads (the latest may not be the one checked when
    the relations were saved): a 400-style error naming the relation's field otherwise."""
    for i, child in enumerate(children):
        fk, key = child.relation["foreign_key"], child.relation["parent_key"]
        problem, field = None, "foreign_key"
        if fk not in child.frame.columns:
            problem = f"the child version has no column {fk!r}"
        elif key not in parent.columns:
            problem, field = f"the source version has no column {key!r}", "parent_key"
        elif set(child.relation.get("parent_columns") or []) - set(parent.columns):
            problem, field = "a parent column is not in the source version", "parent_columns"
        else:
            values = parent.get_column(key)
            if values.null_count() or values.n_unique() != values.len():
                problem = f"{key!r} is not unique in the source version (or has missing values)"
                field = "parent_key"
        if problem is not None:
            raise Invalid(
                f"Relation {i}: {problem}.",
                details=[{"field": f"relations[{i}].{field}", "reason": problem}],
            )


def split_children(
    child: ChildTable, train: pl.DataFrame, holdout: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame | None, int]:
    """The child rows of the parents learnt from, of the held-out ones, and how many rows
    refer to no parent at all (orphans, left out)."""
    fk, key = child.relation["foreign_key"], child.relation["parent_key"]
    rows = child.frame.with_columns(_as_key(fk))
    learnt = train.select(_as_key(key)).get_column(_KEY).implode()
    kept = rows.filter(pl.col(_KEY).is_in(learnt))
    held = None
    orphans = rows.height - kept.height
    if holdout is not None:
        held_keys = holdout.select(_as_key(key)).get_column(_KEY).implode()
        held = rows.filter(pl.col(_KEY).is_in(held_keys)).drop(_KEY)
        orphans -= held.height
    return kept.drop(_KEY), held, orphans


def children_per_parent(parent: pl.DataFrame, key: str, child: pl.DataFrame, fk: str) -> pl.Series:
    """How many rows of ``child`` refer to each row of ``parent`` (in its order)."""
    counts = child.select(_as_key(fk)).group_by(_KEY).len(name="n")
    joined = parent.select(_as_key(key)).join(counts, on=_KEY, how="left", maintain_order="left")
    return joined.get_column("n").fill_null(0).cast(pl.Int64)


def synthesize_tables(
    train: pl.DataFrame,
    holdout: pl.DataFrame | None,
    schema: Schema,
    children: list[ChildTable],
    snapshot: dict[str, Any],
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Tables:
    """Fit and sample the parent and every child table (see the module docstring)."""
    from pydantic import TypeAdapter

    seed = int(snapshot["seed"])
    report = progress or (lambda fraction, message: None)
    check_keys(pl.concat([train, holdout]) if holdout is not None else train, children)
    splits = [split_children(child, train, holdout) for child in children]

    # 1. The parent with its children counts.
    counted = train.with_columns(
        children_per_parent(train, c.relation["parent_key"], rows, c.relation["foreign_key"]).alias(
            f"{COUNT}{i}"
        )
        for i, (c, (rows, _, _)) in enumerate(zip(children, splits, strict=True))
    )
    counted_schema = [
        *schema,
        *(ColumnSpec(name=f"{COUNT}{i}", type=ColumnType.integer) for i in range(len(children))),
    ]
    constraints = TypeAdapter(list[Constraint]).validate_python(snapshot["constraints"])
    unique = {c.name for c in schema if c.type == ColumnType.identifier}
    unique |= {r.column for r in constraints if isinstance(r, Unique)}
    for key in sorted({c.relation["parent_key"] for c in children} - unique):
        constraints.append(Unique(type="unique", column=key))  # fresh, unique parent keys
    method = create(snapshot["method"], snapshot["params"])
    model = ConstrainedSynthesizer(method, constraints)
    share = 1.0 / (1 + len(children))

    start = time.perf_counter()
    model.fit(
        counted,
        counted_schema,
        seed=seed,
        progress=lambda f, m: report(share * 0.8 * f, f"parent: {m}"),
        cancelled=cancelled,
    )
    fitted = time.perf_counter() - start
    if holdout is not None:
        model.reserve(holdout)
    start = time.perf_counter()
    parents = model.sample(
        snapshot["rows"],
        seed=seed + 1,
        conditions=snapshot["conditions"] or None,
        cancelled=cancelled,
    )
    sampled = time.perf_counter() - start
    report(share, f"sampled {parents.height:,} parent rows")
    stats = {"fit_seconds": fitted, "sample_seconds": sampled, "rows_fitted": train.height}

    def child_progress(i: int) -> Progress:
        def step(fraction: float, message: str) -> None:
            report(share * (1 + i + fraction), f"child {i + 1}: {message}")

        return step

    results = []
    for i, (child, (rows, held, orphans)) in enumerate(zip(children, splits, strict=True)):
        result = _synthesize_child(
            i,
            child,
            rows,
            held,
            train,
            schema,
            parents,
            seed,
            progress=child_progress(i),
            cancelled=cancelled,
        )
        result.stats["source_orphans_left_out"] = orphans
        results.append(result)
    return Tables(
        parent=parents.drop([f"{COUNT}{i}" for i in range(len(children))]),
        stats=stats,
        privacy=getattr(method, "privacy", None),
        children=results,
    )


def _synthesize_child(
    i: int,
    child: ChildTable,
    rows: pl.DataFrame,
    held: pl.DataFrame | None,
    parent_train: pl.DataFrame,
    parent_schema: Schema,
    parents: pl.DataFrame,
    seed: int,
    *,
    progress: Progress,
    cancelled: Cancelled | None,
) -> ChildResult:
    """Fit one child on its rows joined with their parents' columns; sample per parent."""
    relation = child.relation
    fk, key = relation["foreign_key"], relation["parent_key"]
    columns = relation.get("parent_columns")
    if columns is None:
        columns = default_parent_columns(parent_train, parent_schema, key)
    counts = parents.get_column(f"{COUNT}{i}").cast(pl.Int64)
    total = int(counts.sum())
    specs = {c.name: c for c in child.schema}
    # The child's own identifiers are made once over the whole table (unique across the
    # groups sampled separately below), so the method and the constraints layer skip them.
    identifiers = [c.name for c in child.schema if c.type == ColumnType.identifier and c.name != fk]
    taken = rows if held is None else pl.concat([rows, held])
    formats = {
        name: (IdentifierFormat.learn(taken[name]), taken[name].drop_nulls().unique())
        for name in identifiers
    }
    modelled = [c for c in child.frame.columns if c != fk and c not in identifiers]
    result = ChildResult(
        rows=child.frame.clear(), train=rows, holdout=held, parent_columns=list(columns)
    )
    fit_seconds = sample_seconds = 0.0
    unconditioned = 0
    privacy = None
    if total and rows.height:
        learn = rows.with_columns(_as_key(fk)).join(
            parent_train.select(_as_key(key), *(pl.col(c).alias(f"{PARENT}{c}") for c in columns)),
            on=_KEY,
            how="left",
            maintain_order="left",
        )
        learn = learn.select(*modelled, *(f"{PARENT}{c}" for c in columns))
        parent_specs = {c.name: c for c in parent_schema}
        learn_schema = [
            *(specs[c] for c in modelled if c in specs),
            *(
                parent_specs[c].model_copy(update={"name": f"{PARENT}{c}"})
                for c in columns
                if c in parent_specs
            ),
        ]
        method = create(relation["method"], relation["params"])
        model = ConstrainedSynthesizer(method)
        start = time.perf_counter()
        model.fit(
            learn,
            learn_schema,
            seed=_seed(seed, 2, i),
            progress=lambda f, m: progress(0.6 * f, m),
            cancelled=cancelled,
        )
        fit_seconds = time.perf_counter() - start
        privacy = getattr(method, "privacy", None)

        start = time.perf_counter()
        owners = parents.select(
            pl.col(key).alias(_KEY),
            *(pl.col(c).alias(f"{PARENT}{c}") for c in columns),
            counts.alias("__n"),
            pl.int_range(pl.len()).alias("__order"),
        ).filter(pl.col("__n") > 0)
        groups = (
            owners.group_by([f"{PARENT}{c}" for c in columns], maintain_order=True)
            if columns
            else [((), owners)]
        )
        parts = []
        for g, (values, group) in enumerate(groups):
            n = int(group.get_column("__n").sum())
            conditions = dict(zip([f"{PARENT}{c}" for c in columns], values, strict=True))
            try:
                made = model.sample(
                    n,
                    seed=_seed(seed, 3, i, g),
                    conditions=conditions or None,
                    cancelled=cancelled,
                )
            except Invalid as exc:
                if exc.code != "CONDITION_IMPOSSIBLE":
                    raise
                # The fallback: the method (almost) never makes rows for these parent
                # values, so the group's children are sampled without the condition.
                made = model.sample(n, seed=_seed(seed, 4, i, g), cancelled=cancelled)
                unconditioned += group.height
            order = np.repeat(group.get_column("__order").to_numpy(), group.get_column("__n"))
            keys = group.get_column(_KEY).gather(
                np.repeat(np.arange(group.height), group.get_column("__n").to_numpy())
            )
            parts.append(
                made.select(modelled).with_columns(
                    keys.cast(child.frame.schema[fk], strict=False).alias(fk),
                    pl.Series("__order", order),
                )
            )
        made_all = pl.concat(parts).sort("__order", maintain_order=True).drop("__order")
        rng = np.random.default_rng(_seed(seed, 5, i))
        for name, (fmt, real) in formats.items():
            fresh = fresh_identifiers(fmt, made_all.height, real, child.frame.schema[name], rng)
            made_all = made_all.with_columns(fresh)
        result.rows = made_all.select(child.frame.columns)
        sample_seconds = time.perf_counter() - start
    progress(1.0, f"sampled {result.rows.height:,} rows")
    result.integrity = integrity(parents, key, result.rows, fk)
    if not result.integrity["holds"]:
        raise Invalid(
            f"Child table {i} has rows whose {fk} is no synthetic parent's {key} "
            f"({result.integrity}); do the key columns have compatible types?",
            details=[{"field": f"relations[{i}].foreign_key", "reason": "integrity broken"}],
        )
    result.cardinality = cardinality(
        parent_train,
        children_per_parent(parent_train, key, rows, fk),
        parents,
        children_per_parent(parents, key, result.rows, fk),
        columns,
    )
    result.stats = {
        "fit_seconds": fit_seconds,
        "sample_seconds": sample_seconds,
        "rows_fitted": rows.height,
        "unconditioned_parents": unconditioned,
    }
    result.privacy = privacy
    return result


def integrity(parents: pl.DataFrame, key: str, children: pl.DataFrame, fk: str) -> dict[str, Any]:
    """Referential integrity of ``children`` against ``parents``, counted on the rows."""
    known = parents.select(_as_key(key)).get_column(_KEY).implode()
    refs = children.select(_as_key(fk))
    missing = int(refs.get_column(_KEY).null_count())
    orphans = int(refs.filter(pl.col(_KEY).is_not_null() & ~pl.col(_KEY).is_in(known)).height)
    parent_keys = parents.get_column(key)
    return {
        "foreign_key": fk,
        "parent_key": key,
        "child_rows": children.height,
        "parent_rows": parents.height,
        "null_foreign_keys": missing,
        "orphans": orphans,
        "duplicate_parent_keys": parent_keys.len() - parent_keys.n_unique(),
        "holds": missing == 0 and orphans == 0 and parent_keys.n_unique() == parent_keys.len(),
    }


def _summary(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"parents": 0, "children": 0}
    return {
        "parents": int(counts.size),
        "children": int(counts.sum()),
        "mean": float(counts.mean()),
        "std": float(counts.std()),
        "min": int(counts.min()),
        "median": float(np.median(counts)),
        "p90": float(np.quantile(counts, 0.9)),
        "max": int(counts.max()),
        "share_without_children": float((counts == 0).mean()),
    }


def _histogram(counts: np.ndarray) -> np.ndarray:
    shares = np.bincount(np.minimum(counts, HISTOGRAM), minlength=HISTOGRAM + 1).astype(float)
    out: np.ndarray = shares / max(shares.sum(), 1.0)
    return out


def cardinality(
    real_parents: pl.DataFrame,
    real_counts: pl.Series,
    synthetic_parents: pl.DataFrame,
    synthetic_counts: pl.Series,
    columns: list[str],
) -> dict[str, Any]:
    """Children per parent, real against synthetic: statistics, histogram, distance, and
    the mean count per value of each conditioned parent column."""
    real = real_counts.to_numpy().astype(np.int64)
    synthetic = synthetic_counts.to_numpy().astype(np.int64)
    p, q = _histogram(real), _histogram(synthetic)
    labels = [str(k) for k in range(HISTOGRAM)] + [f"{HISTOGRAM}+"]
    by_value: dict[str, list[dict[str, Any]]] = {}
    for column in columns:
        r = (
            real_parents.select(pl.col(column).alias("value"), real_counts.alias("n"))
            .group_by("value")
            .agg(pl.col("n").mean().alias("real"), pl.len().alias("real_parents"))
        )
        s = (
            synthetic_parents.select(pl.col(column).alias("value"), synthetic_counts.alias("n"))
            .group_by("value")
            .agg(pl.col("n").mean().alias("synthetic"))
        )
        table = r.join(s, on="value", how="left", nulls_equal=True).sort(
            ["real_parents", "value"], descending=[True, False], nulls_last=True
        )
        by_value[column] = [
            {"value": v, "real_mean": rm, "synthetic_mean": sm}
            for v, rm, sm in table.head(10).select("value", "real", "synthetic").iter_rows()
        ]
    tvd = float(0.5 * np.abs(p - q).sum())
    return {
        "real": _summary(real),
        "synthetic": _summary(synthetic),
        "histogram": [
            {"children": label, "real": float(a), "synthetic": float(b)}
            for label, a, b in zip(labels, p, q, strict=True)
            if a or b
        ],
        "total_variation_distance": tvd,
        "score": 1.0 - tvd,
        "mean_by_parent_value": by_value,
    }
