"""The ``synthex.evaluate`` job: read the versions, evaluate, store the report in its row."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from inwire.kit.errors import NotFound
from inwire.kit.jobs.context import JobContext, JobFailed

if TYPE_CHECKING:
    import polars as pl

    from inwire.services.synthex.data import JobData, VersionRef

#: Most cells (rows x columns read) of one version loaded into memory; a larger version is
#: read as a systematic sample (every k-th row), noted in the report's ``read`` part.
READ_CELLS = 50_000_000


async def _read(data: JobData, version: VersionRef, columns: list[str]) -> tuple[pl.DataFrame, int]:
    """The version's ``columns`` (those it has), whole or every k-th row past ``READ_CELLS``."""
    wanted = [c for c in columns if c in {s.name for s in version.schema}]
    cells = version.rows * max(len(wanted), 1)
    if cells <= READ_CELLS:
        return await data.load(version, columns=wanted), version.rows
    step = -(-cells // READ_CELLS)
    lf = await data.scan(version)
    return lf.select(wanted).gather_every(step).collect(), version.rows


async def evaluate_versions(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the versions named by this job's evaluation row and store the report there.

    Storing is one UPDATE of the row (a retried attempt writes the same report again). An
    evaluation deleted meanwhile ends the job quietly; inputs the engine cannot compare
    fail it without retries.
    """
    from inwire.services.synthex.data import JobData
    from inwire.services.synthex.evaluations.engine import EvaluationError, evaluate
    from inwire.services.synthex.evaluations.repository import EvaluationRepository
    from inwire.services.synthex.schema import ColumnType

    async with JobData.open(ctx) as data:
        async with data.db.session(write=False) as session:
            row = await EvaluationRepository(session, ctx.organization_id).by_job(ctx.job_id)
            if row is None:
                return {"evaluation_id": None, "note": "the evaluation was deleted"}
            evaluation_id = row.id
            ids = {
                "real": row.real_version_id,
                "synthetic": row.synthetic_version_id,
                "holdout": row.holdout_version_id,
            }
            target, seed = row.target, row.seed
        versions: dict[str, VersionRef] = {}
        for role, version_id in ids.items():
            if version_id is None:
                if role == "real":
                    raise JobFailed("the real version was deleted")
                continue
            try:
                versions[role] = await data.version(version_id)
            except NotFound as exc:
                raise JobFailed(f"the {role} version {version_id!r} no longer exists") from exc
        schema = versions["real"].schema
        # Identifiers carry nothing to compare: not even read.
        columns = [c.name for c in schema if c.type != ColumnType.identifier]
        frames: dict[str, pl.DataFrame] = {}
        read: dict[str, dict[str, int]] = {}
        for i, (role, version) in enumerate(versions.items()):
            ctx.progress(0.02 + 0.03 * i, f"reading the {role} version ({version.rows:,} rows)")
            frames[role], of_rows = await _read(data, version, columns)
            read[role] = {"rows": frames[role].height, "of_rows": of_rows}
            ctx.raise_if_cancelled()
        ctx.log(
            "evaluating "
            + ", ".join(f"{role} {r['rows']:,} rows" for role, r in read.items())
            + (f"; ML utility predicts {target!r}" if target else "")
        )

        def progress(fraction: float, message: str) -> None:
            ctx.progress(0.1 + 0.85 * fraction, message)
            ctx.raise_if_cancelled()  # stops the engine between its parts

        try:
            report = await asyncio.to_thread(
                evaluate,
                frames["real"],
                frames["synthetic"],
                schema,
                holdout=frames.get("holdout"),
                target=target,
                seed=seed,
                progress=progress,
            )
        except EvaluationError as exc:
            raise JobFailed(str(exc)) from exc
        report["read"] = read
        ctx.log(f"evaluated: {report['summary']}; timings {report['timings']}")
        async with data.db.session() as session:
            stored = await EvaluationRepository(session, ctx.organization_id).get_or_none(
                evaluation_id
            )
            if stored is None:
                return {"evaluation_id": None, "note": "the evaluation was deleted"}
            stored.store(report)
        ctx.progress(1.0, "done")
        return {"evaluation_id": evaluation_id, **report["summary"]}
