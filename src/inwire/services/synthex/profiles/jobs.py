"""The ``synthex.profile`` job: read a version, profile it, store the result in its row."""

from __future__ import annotations

import asyncio
from typing import Any

from inwire.kit.db.base import utcnow
from inwire.kit.errors import NotFound
from inwire.kit.jobs.context import JobContext, JobFailed

#: Versions up to this many cells are read into memory once (each pass then reads memory,
#: about 1.4x faster); larger ones are scanned from Parquet by every pass (bounded memory).
IN_MEMORY_CELLS = 30_000_000


async def profile_version(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Profile the version named by this job's profile row and store the result there.

    Storing is one UPDATE of the row (idempotent: a retried attempt writes the same
    profile again). A profile deleted meanwhile ends the job quietly.
    """
    import polars as pl

    from inwire.services.synthex.data import JobData
    from inwire.services.synthex.profiles.engine import ProfileOptions, profile
    from inwire.services.synthex.profiles.repository import ProfileRepository

    options = ProfileOptions(**(job_input.get("options") or {}))
    async with JobData.open(ctx) as data:
        async with data.db.session(write=False) as session:
            row = await ProfileRepository(session, ctx.organization_id).by_job(ctx.job_id)
            if row is None:
                return {"profile_id": None, "note": "the profile was deleted"}
            profile_id, version_id = row.id, row.version_id
        try:
            version = await data.version(version_id)
        except NotFound as exc:
            raise JobFailed(f"version {version_id!r} no longer exists") from exc
        ctx.progress(0.05, f"reading version {version.number} ({version.rows:,} rows)")
        ctx.log(f"profiling {version.rows:,} rows x {version.columns} columns")
        if version.rows * max(version.columns, 1) <= IN_MEMORY_CELLS:
            frame: pl.DataFrame | pl.LazyFrame = await data.load(version)
        else:
            frame = await data.scan(version)
        ctx.raise_if_cancelled()
        ctx.progress(0.1, "computing statistics")
        result = await asyncio.to_thread(profile, frame, version.schema, options)
        ctx.raise_if_cancelled()
        ctx.log(f"computed in {result['elapsed_seconds']:.2f} s: {result['timings']}")
        async with data.db.session() as session:
            row = await ProfileRepository(session, ctx.organization_id).get_or_none(profile_id)
            if row is None:
                return {"profile_id": None, "note": "the profile was deleted"}
            row.result = result
            row.rows = result["table"]["rows"]
            row.columns = result["table"]["columns"]
            row.alerts = len(result["alerts"])
            row.completed_at = utcnow()
        ctx.progress(1.0, "done")
        return {
            "profile_id": profile_id,
            "rows": result["table"]["rows"],
            "alerts": len(result["alerts"]),
        }
