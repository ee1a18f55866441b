"""Every query on runs, their params, tags and metrics, and the search compiler.

Metric writes are one statement per batch (``INSERT … ON CONFLICT DO NOTHING``, so a
retried batch adds nothing; an executemany on SQLite, ``unnest`` of arrays on PostgreSQL)
plus one upsert per key of the batch into ``run_latest_metrics``. History reads walk the
metrics primary key (run, key, step, timestamp) in one query, streamed in partitions.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exists,
    false,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.db import RepositoryBase
from inwire.services.training.runs.models import LatestMetric, Metric, Run, RunParam, RunTag
from inwire.services.training.runs.search import And, Comparison, Expr, Or, OrderTerm


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One metric value as stored: NaN is ``is_nan`` with a value of 0."""

    key: str
    value: float
    step: int
    timestamp: int
    is_nan: bool = False

    @classmethod
    def of(cls, key: str, value: float, step: int, timestamp: int) -> MetricRow:
        """A row from a logged value (NaN folded into ``is_nan``)."""
        nan = math.isnan(value)
        return cls(key, 0.0 if nan else value, step, timestamp, nan)

    @property
    def real_value(self) -> float:
        """The logged value, NaN included."""
        return math.nan if self.is_nan else self.value


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_*``."""
    if _dialect(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


#: The metric insert per dialect, in the driver's own parameter style (the connection's
#: search_path finds the service's schema on PostgreSQL).
_INSERT_METRICS = {
    "sqlite": 'INSERT INTO metrics (run_id, "key", step, "timestamp", value, is_nan) '
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    # One statement with the columns as arrays: a single round trip and one plan, where an
    # executemany binds and executes every row (about a fifth faster at a thousand rows).
    "postgresql": 'INSERT INTO metrics (run_id, "key", step, "timestamp", value, is_nan) '
    "SELECT $1, k, s, t, v, n FROM unnest($2::text[], $3::bigint[], $4::bigint[], "
    "$5::float8[], $6::bool[]) AS u(k, s, t, v, n) ON CONFLICT DO NOTHING",
}


class RunRepository(RepositoryBase[Run]):
    """Runs of one organization, and the run search."""

    model = Run
    noun = "Run"

    async def ids_of_experiment(self, experiment_id: str) -> list[str]:
        """Ids of every run of an experiment."""
        rows = await self.session.execute(
            self.scope(select(Run.id).where(Run.experiment_id == experiment_id))
        )
        return list(rows.scalars())

    async def many(self, ids: Collection[str]) -> dict[str, Run]:
        """The runs with these ids in scope, by id (missing ones are absent)."""
        if not ids:
            return {}
        return {run.id: run for run in await self.all(Run.id.in_(list(ids)))}

    async def search(
        self,
        *,
        experiment_ids: Sequence[str] = (),
        expr: Expr | None = None,
        order: Sequence[OrderTerm] = (),
        lifecycle: str = "active",
        equal: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Run], int]:
        """One page of runs matching a filter tree, in ``order`` (then newest first).

        ``equal`` adds column equality filters (``status``, ``parent_run_id``, …).
        """
        stmt = self.select()
        if experiment_ids:
            stmt = stmt.where(Run.experiment_id.in_(list(experiment_ids)))
        if lifecycle != "all":
            stmt = stmt.where(Run.lifecycle == lifecycle)
        for name, value in (equal or {}).items():
            stmt = stmt.where(getattr(Run, name) == value)
        if expr is not None:
            stmt = stmt.where(SearchCompiler(_dialect(self.session)).where(expr))
        total = await self.count(stmt)
        rows = await self.session.execute(
            stmt.order_by(*order_columns(order)).offset(offset).limit(limit)
        )
        return list(rows.scalars().all()), total

    async def ids_with_children(self, run_id: str) -> list[str]:
        """Ids of the runs nested in ``run_id``, directly or not."""
        found: list[str] = []
        frontier = [run_id]
        while frontier:
            rows = await self.session.execute(
                self.scope(select(Run.id).where(Run.parent_run_id.in_(frontier)))
            )
            frontier = [r for r in rows.scalars() if r not in found and r != run_id]
            found.extend(frontier)
        return found


def order_columns(order: Sequence[OrderTerm]) -> list[Any]:
    """ORDER BY items for sort terms; missing values sort last; then start time and id."""
    items: list[Any] = []
    for term in order:
        column: Any
        if term.kind == "metric":
            column = (
                select(case((LatestMetric.is_nan, None), else_=LatestMetric.value))
                .where(LatestMetric.run_id == Run.id, LatestMetric.key == term.key)
                .scalar_subquery()
            )
        elif term.kind == "param":
            column = (
                select(RunParam.value)
                .where(RunParam.run_id == Run.id, RunParam.key == term.key)
                .scalar_subquery()
            )
        elif term.kind == "tag":
            column = (
                select(RunTag.value)
                .where(RunTag.run_id == Run.id, RunTag.key == term.key)
                .scalar_subquery()
            )
        else:
            column = getattr(Run, term.key)
        # NULLs last in both directions, on both databases.
        items.append(case((column.is_(None), 1), else_=0))
        items.append(column.desc() if term.descending else column.asc())
    items.extend([Run.start_time.desc(), Run.id.desc()])
    return items


class SearchCompiler:
    """Compiles a filter tree to a SQL condition on ``runs``; values are bound parameters."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def where(self, expr: Expr) -> ColumnElement[bool]:
        """The condition for ``expr``."""
        if isinstance(expr, And):
            return and_(*(self.where(p) for p in expr.parts))
        if isinstance(expr, Or):
            return or_(*(self.where(p) for p in expr.parts))
        return self.comparison(expr)

    def comparison(self, c: Comparison) -> ColumnElement[bool]:
        """One comparison: on a run's metric, param or tag value (a lookup by key)."""
        if c.kind == "attribute":
            return self._apply(getattr(Run, c.key), c, nullable=True)
        table: Any
        value_col: Any
        if c.kind == "metric":
            table, value_col = LatestMetric, LatestMetric.value
        elif c.kind == "param":
            table, value_col = RunParam, RunParam.value
        else:
            table, value_col = RunTag, RunTag.value
        has_key = [table.run_id == Run.id, table.key == c.key]
        if c.op == "IS NULL":
            return ~exists().where(*has_key)
        if c.op == "IS NOT NULL":
            return exists().where(*has_key)
        # The run's one value (NULL when it has none, or a NaN metric), as a correlated scalar
        # subquery: it is looked up by primary key (run_id, key) per candidate run whatever
        # the planner believes, where an EXISTS may become a join that scans the table per
        # run when PostgreSQL has no statistics yet (a freshly filled table: 1,000 runs went
        # from 220 ms to a few).
        select_value = select(value_col).where(*has_key)
        if c.kind == "metric":
            select_value = select_value.where(LatestMetric.is_nan == false())
        return self._apply(select_value.scalar_subquery(), c, nullable=False)

    def _apply(self, column: Any, c: Comparison, *, nullable: bool) -> ColumnElement[bool]:
        value = c.value
        op = c.op
        if op == "IS NULL":
            return column.is_(None) if nullable else false()
        if op == "IS NOT NULL":
            return column.is_not(None) if nullable else true()
        if op == "IN":
            return column.in_(list(value))  # type: ignore[arg-type,no-any-return]
        if op == "NOT IN":
            return column.not_in(list(value))  # type: ignore[arg-type,no-any-return]
        if op == "LIKE":
            return self._like(column, str(value))
        if op == "ILIKE":
            return column.ilike(str(value))  # type: ignore[no-any-return]
        comparisons = {
            "=": column.__eq__,
            "!=": column.__ne__,
            "<": column.__lt__,
            "<=": column.__le__,
            ">": column.__gt__,
            ">=": column.__ge__,
        }
        return comparisons[op](value)  # type: ignore[no-any-return]

    def _like(self, column: Any, pattern: str) -> ColumnElement[bool]:
        """Case-sensitive LIKE (SQLite's LIKE ignores ASCII case, so there it is GLOB)."""
        if self.dialect != "sqlite":
            return column.like(pattern)  # type: ignore[no-any-return]
        glob = "".join(
            "*" if ch == "%" else "?" if ch == "_" else f"[{ch}]" if ch in "*?[" else ch
            for ch in pattern
        )
        return column.op("GLOB")(glob)  # type: ignore[no-any-return]


class ParamRepository(RepositoryBase[RunParam]):
    """Params of runs the caller has already been allowed to see."""

    model = RunParam
    noun = "Param"

    async def of_runs(self, run_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """Params per run id."""
        result: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        if run_ids:
            rows = await self.session.execute(
                select(RunParam.run_id, RunParam.key, RunParam.value).where(
                    RunParam.run_id.in_(list(run_ids))
                )
            )
            for run_id, key, value in rows:
                result[run_id][key] = value
        return result

    async def existing(self, run_id: str, keys: Collection[str]) -> dict[str, str]:
        """The values already logged for these keys."""
        if not keys:
            return {}
        rows = await self.session.execute(
            select(RunParam.key, RunParam.value).where(
                RunParam.run_id == run_id, RunParam.key.in_(list(keys))
            )
        )
        return dict(rows.all())

    async def insert_new(self, run_id: str, params: Mapping[str, str]) -> None:
        """Insert params (known to be new); one executemany."""
        if params:
            await self.session.execute(
                _insert(self.session, RunParam.__table__).on_conflict_do_nothing(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()],
            )


class TagRepository(RepositoryBase[RunTag]):
    """Tags of runs the caller has already been allowed to see."""

    model = RunTag
    noun = "Tag"

    async def of_runs(self, run_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """Tags per run id."""
        result: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        if run_ids:
            rows = await self.session.execute(
                select(RunTag.run_id, RunTag.key, RunTag.value).where(
                    RunTag.run_id.in_(list(run_ids))
                )
            )
            for run_id, key, value in rows:
                result[run_id][key] = value
        return result

    async def upsert(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags, replacing values of existing keys."""
        if not tags:
            return
        stmt = _insert(self.session, RunTag.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
        )
        await self.session.execute(
            stmt, [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        )

    async def remove_key(self, run_id: str, key: str) -> bool:
        """Delete one tag; whether it existed."""
        result = await self.session.execute(
            delete(RunTag).where(RunTag.run_id == run_id, RunTag.key == key)
        )
        return bool(getattr(result, "rowcount", 0))


class MetricRepository(RepositoryBase[Metric]):
    """Metric values and latest values of runs the caller has already been allowed to see."""

    model = Metric
    noun = "Metric"

    async def insert(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        """Store values (one executemany; exact duplicates are skipped) and move each key's
        latest value forward."""
        if not rows:
            return
        # The driver's executemany with plain tuples: SQLAlchemy's per-row parameter
        # processing costs more than the insert itself at a thousand rows.
        conn = await self.session.connection()
        dialect = _dialect(self.session)
        if dialect == "postgresql":
            await conn.exec_driver_sql(
                _INSERT_METRICS[dialect],
                (
                    run_id,
                    [r.key for r in rows],
                    [r.step for r in rows],
                    [r.timestamp for r in rows],
                    [r.value for r in rows],
                    [r.is_nan for r in rows],
                ),
            )
        else:
            await conn.exec_driver_sql(
                _INSERT_METRICS[dialect],
                [(run_id, r.key, r.step, r.timestamp, r.value, r.is_nan) for r in rows],
            )
        latest: dict[str, MetricRow] = {}
        for r in rows:
            best = latest.get(r.key)
            if best is None or (r.step, r.timestamp, r.value) > (
                best.step,
                best.timestamp,
                best.value,
            ):
                latest[r.key] = r
        stmt = _insert(self.session, LatestMetric.__table__)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "step": new.step,
                "timestamp": new.timestamp,
                "value": new.value,
                "is_nan": new.is_nan,
            },
            # MLflow's order of "latest": step, then timestamp, then value.
            where=tuple_(new.step, new.timestamp, new.value)
            > tuple_(LatestMetric.step, LatestMetric.timestamp, LatestMetric.value),
        )
        await conn.execute(
            stmt,
            [
                {
                    "run_id": run_id,
                    "key": r.key,
                    "step": r.step,
                    "timestamp": r.timestamp,
                    "value": r.value,
                    "is_nan": r.is_nan,
                }
                for r in latest.values()
            ],
        )

    async def latest_of_runs(self, run_ids: Collection[str]) -> dict[str, list[MetricRow]]:
        """Each run's latest values, by key."""
        result: dict[str, list[MetricRow]] = {rid: [] for rid in run_ids}
        if run_ids:
            rows = await self.session.execute(
                select(
                    LatestMetric.run_id,
                    LatestMetric.key,
                    LatestMetric.value,
                    LatestMetric.step,
                    LatestMetric.timestamp,
                    LatestMetric.is_nan,
                )
                .where(LatestMetric.run_id.in_(list(run_ids)))
                .order_by(LatestMetric.run_id, LatestMetric.key)
            )
            for run_id, key, value, step, timestamp, is_nan in rows:
                result[run_id].append(MetricRow(key, value, step, timestamp, is_nan))
        return result

    def _history(
        self, run_id: str, key: str, step_min: int | None, step_max: int | None
    ) -> Select[Any]:
        c = Metric.__table__.c
        stmt: Select[Any] = select(c.step, c.value, c.timestamp, c.is_nan).where(
            c.run_id == run_id, c.key == key
        )
        if step_min is not None:
            stmt = stmt.where(Metric.step >= step_min)
        if step_max is not None:
            stmt = stmt.where(Metric.step <= step_max)
        return stmt

    async def history_count(
        self, run_id: str, key: str, step_min: int | None = None, step_max: int | None = None
    ) -> int:
        """Points of a series (in a step range)."""
        return await self.count(self._history(run_id, key, step_min, step_max))

    async def history_page(
        self,
        run_id: str,
        key: str,
        *,
        offset: int,
        limit: int,
        step_min: int | None = None,
        step_max: int | None = None,
    ) -> list[tuple[int, float, int, bool]]:
        """(step, value, timestamp, is_nan) of one page, by step then timestamp."""
        stmt = (
            self._history(run_id, key, step_min, step_max)
            .order_by(Metric.step, Metric.timestamp, Metric.value)
            .offset(offset)
            .limit(limit)
        )
        conn = await self.session.connection()
        rows = await conn.execute(stmt)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def history_stream(
        self,
        run_id: str,
        key: str,
        *,
        step_min: int | None = None,
        step_max: int | None = None,
        partition: int = 65_536,
    ) -> AsyncIterator[Sequence[Any]]:
        """The whole series in partitions of rows (step, value, timestamp, is_nan)."""
        stmt = self._history(run_id, key, step_min, step_max).order_by(
            Metric.step, Metric.timestamp, Metric.value
        )
        conn = await self.session.connection()
        result = await conn.stream(stmt.execution_options(yield_per=partition))
        async for rows in result.partitions(partition):
            yield rows

    async def keys_of_runs(self, run_ids: Iterable[str]) -> set[str]:
        """Every metric key logged by these runs."""
        rows = await self.session.execute(
            select(LatestMetric.key).where(LatestMetric.run_id.in_(list(run_ids))).distinct()
        )
        return set(rows.scalars())
