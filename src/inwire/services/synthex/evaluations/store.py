"""Storing an evaluation report from another job (the generation job's end).

The generation job already evaluates what it publishes; ``save_report`` files that report
as an evaluation, so ``GET /api/v1/evaluations?synthetic_version_id=…`` finds it next to
the ones users ask for. Call it after ``data.publish(...)`` (the synthetic version's row must
exist) with the report from ``engine.evaluate``::

    from inwire.services.synthex.evaluations.store import save_report

    report = await asyncio.to_thread(evaluate, train, rows, schema, holdout=holdout, seed=seed)
    evaluation_id = await save_report(
        data, report,
        real_version=version,            # the source version the method learnt from
        synthetic_version=published,     # what data.publish returned
        holdout_share=0.2,               # when the holdout is a split of the real version
        seed=seed, generator_id=generator_id,
    )

It is idempotent per job (the id derives from the job id): a retried attempt updates the
row the first one inserted instead of adding another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inwire.services.synthex.data import layout

if TYPE_CHECKING:
    from inwire.services.synthex.data import JobData, VersionRef


async def save_report(
    data: JobData,
    report: dict[str, Any],
    *,
    real_version: VersionRef,
    synthetic_version: VersionRef,
    holdout_version: VersionRef | None = None,
    holdout_share: float | None = None,
    target: str | None = None,
    seed: int = 0,
    generator_id: str | None = None,
    source: str = "generation",
) -> str:
    """File ``report`` as this job's evaluation of ``synthetic_version``; its id."""
    from inwire.services.synthex.evaluations.models import Evaluation
    from inwire.services.synthex.evaluations.repository import EvaluationRepository

    async with data.db.session() as session:
        repo = EvaluationRepository(session, data.org_id)
        row = await repo.by_job(data.job_id)
        if row is None:
            row = Evaluation(
                id=layout.derived_id("ev", data.job_id),
                source=source,
                real_dataset_id=real_version.dataset_id,
                real_version_id=real_version.id,
                synthetic_dataset_id=synthetic_version.dataset_id,
                synthetic_version_id=synthetic_version.id,
                holdout_version_id=holdout_version.id if holdout_version else None,
                holdout_share=holdout_share,
                target=target,
                seed=seed,
                generator_id=generator_id,
                job_id=data.job_id,
                created_by=data.created_by,
            )
            row.store(report)
            await repo.add(row)
        else:
            row.store(report)
        return row.id
