"""Rules of profiles: which version to profile, starting the job, reading and deleting."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Conflict, Invalid
from inwire.kit.jobs import Job, JobService
from inwire.services.synthex.data import layout
from inwire.services.synthex.datasets.repository import DatasetRepository, VersionRepository
from inwire.services.synthex.profiles.models import Profile
from inwire.services.synthex.profiles.repository import ProfileRepository
from inwire.services.synthex.profiles.schemas import ProfileCreate

PROFILE_JOB = "synthex.profile"


async def _version_id(session: AsyncSession, org_id: str, body: ProfileCreate) -> str:
    """The version the request names (404 for an unknown dataset, 400 for a version that
    is not the dataset's or a dataset without versions)."""
    dataset = await DatasetRepository(session, org_id).get(body.dataset_id)
    versions = VersionRepository(session, org_id)
    if body.version_id is None:
        latest = await versions.latest(dataset.id)
        if latest is None:
            raise Invalid(
                f"Dataset {dataset.id!r} has no version yet; wait for its import",
                details=[{"field": "dataset_id", "message": "no version"}],
            )
        return latest.id
    version = await versions.find(versions.model.id == body.version_id)
    if version is None or version.dataset_id != dataset.id:
        raise Invalid(
            f"Version {body.version_id!r} is not a version of dataset {dataset.id!r}",
            details=[{"field": "version_id", "message": "not a version of this dataset"}],
        )
    return version.id


async def start(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    body: ProfileCreate,
    idempotency_key: str | None,
) -> tuple[Profile, Job]:
    """A profile row and the job computing it; the same Idempotency-Key returns the same.

    The job's input is the request as sent (so a replay matches it even if a newer version
    appeared since); the row names the version resolved now, which the job profiles.
    """
    version_id = await _version_id(session, who.org, body)
    job = await jobs.submit(
        session,
        who.org,
        PROFILE_JOB,
        body.model_dump(mode="json", exclude_none=True),
        who.subject,
        idempotency_key=idempotency_key,
    )
    repo = ProfileRepository(session, who.org)
    existing = await repo.by_job(job.id)
    if existing is not None:
        return existing, job
    row = Profile(
        id=layout.derived_id("prof", job.id),
        dataset_id=body.dataset_id,
        version_id=version_id,
        job_id=job.id,
        created_by=who.subject,
    )
    await repo.add(row)
    return row, job


async def list_profiles(
    session: AsyncSession, who: Principal, query: ListQuery
) -> tuple[Sequence[Profile], int, dict[str, dict[str, Any]]]:
    """One page of profiles, and the state of their jobs."""
    repo = ProfileRepository(session, who.org)
    rows, total = await repo.search(query)
    states = await repo.job_states([r.job_id for r in rows])
    return rows, total, states


async def get_profile(
    session: AsyncSession, who: Principal, profile_id: str
) -> tuple[Profile, dict[str, Any]]:
    """A profile and the state of its job."""
    repo = ProfileRepository(session, who.org)
    row = await repo.get(profile_id)
    states = await repo.job_states([row.job_id])
    return row, states.get(row.job_id, {})


async def finished_profile(session: AsyncSession, who: Principal, profile_id: str) -> Profile:
    """A profile whose result is stored; 409 ``NOT_READY`` while it is being computed."""
    row, state = await get_profile(session, who, profile_id)
    if row.result is None:
        status = state.get("status", "unknown")
        raise Conflict(
            f"Profile {row.id!r} has no result yet (status {status})",
            details=[{"field": "status", "message": status}],
            code="NOT_READY",
        )
    return row


async def delete_profile(
    session: AsyncSession, jobs: JobService, who: Principal, profile_id: str
) -> None:
    """Delete a profile; a job still computing it is cancelled."""
    row, state = await get_profile(session, who, profile_id)
    if row.result is None and state.get("status") in ("queued", "running"):
        with contextlib.suppress(Conflict):  # it finished meanwhile
            await jobs.cancel(session, who.org, row.job_id)
    await ProfileRepository(session, who.org).remove(row)
