"""Every query on logged models and on runs' declared inputs and outputs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.db import RepositoryBase
from inwire.services.training.mlflow.models import LoggedModel, RunDatasetInput, RunModelOutput


def _insert(session: AsyncSession, table: Any) -> Any:
    bind = session.bind
    name = bind.dialect.name if bind is not None else "sqlite"
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


class LoggedModelRepository(RepositoryBase[LoggedModel]):
    """Logged models of one organization."""

    model = LoggedModel
    noun = "Logged model"

    async def search(
        self,
        *,
        experiment_ids: Sequence[str],
        lifecycle: str = "active",
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[LoggedModel], int]:
        """One page of logged models of these experiments, newest first."""
        stmt = self.select(LoggedModel.lifecycle == lifecycle)
        if experiment_ids:
            stmt = stmt.where(LoggedModel.experiment_id.in_(list(experiment_ids)))
        total = await self.count(stmt)
        rows = await self.session.execute(
            stmt.order_by(LoggedModel.created_at.desc(), LoggedModel.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return list(rows.scalars().all()), total


class RunIORepository(RepositoryBase[RunDatasetInput]):
    """Dataset inputs and model outputs of runs the caller has been allowed to see."""

    model = RunDatasetInput
    noun = "Run input"

    async def add_inputs(self, run_id: str, inputs: Sequence[dict[str, Any]]) -> None:
        """Record datasets; one already recorded (same name and digest) is kept as it was."""
        if inputs:
            stmt = _insert(self.session, RunDatasetInput.__table__).on_conflict_do_nothing()
            await self.session.execute(stmt, [{"run_id": run_id, **row} for row in inputs])

    async def add_outputs(self, run_id: str, outputs: Sequence[tuple[str, int]]) -> None:
        """Record (model id, step) outputs; one already recorded is kept."""
        if outputs:
            stmt = _insert(self.session, RunModelOutput.__table__).on_conflict_do_nothing()
            await self.session.execute(
                stmt, [{"run_id": run_id, "model_id": m, "step": s} for m, s in outputs]
            )

    async def inputs_of_runs(self, run_ids: Collection[str]) -> dict[str, list[RunDatasetInput]]:
        """Dataset inputs per run id."""
        result: dict[str, list[RunDatasetInput]] = {rid: [] for rid in run_ids}
        if run_ids:
            rows = await self.session.execute(
                select(RunDatasetInput)
                .where(RunDatasetInput.run_id.in_(list(run_ids)))
                .order_by(RunDatasetInput.name, RunDatasetInput.digest)
            )
            for row in rows.scalars():
                result[row.run_id].append(row)
        return result

    async def outputs_of_runs(self, run_ids: Collection[str]) -> dict[str, list[tuple[str, int]]]:
        """(model id, step) outputs per run id."""
        result: dict[str, list[tuple[str, int]]] = {rid: [] for rid in run_ids}
        if run_ids:
            rows = await self.session.execute(
                select(RunModelOutput.run_id, RunModelOutput.model_id, RunModelOutput.step)
                .where(RunModelOutput.run_id.in_(list(run_ids)))
                .order_by(RunModelOutput.model_id)
            )
            for run_id, model_id, step in rows:
                result[run_id].append((model_id, step))
        return result
