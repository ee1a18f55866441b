"""Job functions of datasets; worker processes import them by path (see app.JOB_TYPES)."""

from __future__ import annotations

from typing import Any

from inwire.kit.jobs.context import JobContext


async def import_dataset(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """``synthex.import``: a file (upload, object, query result) or a version to a new
    version of a dataset; see ``data.imports``."""
    from inwire.services.synthex.data.imports import run_import

    return await run_import(ctx, job_input)
