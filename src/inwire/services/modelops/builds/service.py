"""Builds' domain logic: start one, show them with their job's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import RepositoryBase
from inwire.kit.errors import Invalid
from inwire.kit.ids import new_id
from inwire.kit.jobs import JobService
from inwire.services.modelops.builds.models import Build
from inwire.services.modelops.builds.schemas import Artifact, BuildArtifacts, BuildCreate, BuildOut
from inwire.services.modelops.models import service as registry

JOB_TYPE = "modelops.build"
#: Job statuses that end a build whatever its row says (a worker that died, a cancel).
_JOB_FINAL = ("failed", "cancelled")


class BuildRepository(RepositoryBase[Build]):
    """Builds of one organization."""

    model = Build
    noun = "Build"


async def create_build(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    data: BuildCreate,
    *,
    default_registry: str = "",
    idempotency_key: str | None = None,
) -> Build:
    """Record a build of a READY version and queue its job."""
    model, version = await registry.get_version(session, who, data.model, data.version)
    if version.status != "READY":
        raise Invalid(
            f"Version {data.version} of {model.name!r} is {version.status}, not READY",
            details=[{"field": "version", "message": "not READY"}],
        )
    if idempotency_key is not None:  # the same request again: the build it started
        earlier = await jobs.repository(session, who.org).by_idempotency_key(idempotency_key)
        if earlier is not None and earlier.type == JOB_TYPE:
            found = await BuildRepository(session, who.org).find(Build.job_id == earlier.id)
            if found is not None and found.version_id == version.id:
                return found
    build_id = new_id("bld")
    job = await jobs.submit(
        session,
        who.org,
        JOB_TYPE,
        {"build_id": build_id},
        who.subject,
        idempotency_key=idempotency_key,
        max_attempts=1,
    )
    row = Build(
        id=build_id,
        organization_id=who.org,
        model_id=model.id,
        version_id=version.id,
        model_name=model.name,
        version=version.version,
        job_id=job.id,
        status="queued",
        registry_integration=data.registry_integration or default_registry or None,
        requirements=[],
        manifest={},
        created_by=who.subject,
    )
    return await BuildRepository(session, who.org).add(row)


async def views(
    session: AsyncSession, jobs: JobService, who: Principal, rows: Sequence[Build], base_url: str
) -> list[BuildOut]:
    """Builds as the API shows them, their status reconciled with their jobs."""
    found = await jobs.repository(session, who.org).by_ids([r.job_id for r in rows])
    by_id = {job.id: job for job in found}
    out: list[BuildOut] = []
    for row in rows:
        job = by_id.get(row.job_id)
        status, error, progress = row.status, row.error, 0.0
        if job is not None:
            progress = job.progress
            job_status = job.status.value
            if job_status in _JOB_FINAL and status != "succeeded":
                status, error = job_status, error or job.error
            elif status in ("queued", "running") and job_status in ("queued", "running"):
                status = job_status
        artifacts = None
        if row.bundle_key and row.context_key:
            url = f"{base_url}/api/v1/builds/{row.id}"
            artifacts = BuildArtifacts(
                bundle=Artifact(
                    size=row.bundle_size, sha256=row.bundle_sha256, url=f"{url}/bundle"
                ),
                context=Artifact(size=row.context_size, url=f"{url}/context"),
            )
        values: dict[str, Any] = {
            c.key: getattr(row, c.key)
            for c in Build.__table__.columns
            if c.key in BuildOut.model_fields
        }
        values.update(status=status, error=error, progress=progress, artifacts=artifacts)
        out.append(BuildOut(**values))
    return out


async def list_builds(
    session: AsyncSession, who: Principal, query: ListQuery, model: str | None
) -> tuple[Sequence[Build], int]:
    """One page of builds (of one model, by id or name, when asked)."""
    repo = BuildRepository(session, who.org)
    stmt = repo.select()
    if model is not None:
        row = await registry.get_model(session, who, model)
        stmt = stmt.where(Build.model_id == row.id)
    return await repo.page(query, stmt)
