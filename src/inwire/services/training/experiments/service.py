"""Rules of experiments: unique names, archive and restore, deletion with their runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db.base import utcnow
from inwire.kit.errors import Conflict, Invalid
from inwire.kit.ids import new_id
from inwire.services.training.experiments.models import Experiment
from inwire.services.training.experiments.repository import ExperimentRepository
from inwire.services.training.experiments.schemas import ExperimentCreate, ExperimentUpdate


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"An experiment named {name!r} already exists",
        code="NAME_TAKEN",
        details=[{"field": "name", "message": "already used by another experiment"}],
    )


async def create(session: AsyncSession, who: Principal, data: ExperimentCreate) -> Experiment:
    """A new active experiment; its name must be new in the organization."""
    repo = ExperimentRepository(session, who.org)
    if await repo.by_name(data.name) is not None:
        raise _name_taken(data.name)
    experiment = Experiment(
        id=new_id("exp"),
        name=data.name,
        description=data.description,
        tags=dict(data.tags),
        lifecycle="active",
        created_by=who.subject,
    )
    try:
        await repo.add(experiment)
    except Conflict as exc:  # a concurrent create took the name first
        raise _name_taken(data.name) from exc
    return experiment


async def get(session: AsyncSession, who: Principal, experiment_id: str) -> Experiment:
    """The experiment, or 404 (also for another organization's)."""
    return await ExperimentRepository(session, who.org).get(experiment_id)


async def by_name(session: AsyncSession, who: Principal, name: str) -> Experiment | None:
    """The experiment called ``name`` in the caller's organization, if any."""
    return await ExperimentRepository(session, who.org).by_name(name)


def parse_tag_filter(tag: str | None) -> tuple[str, str | None] | None:
    """``key`` or ``key=value`` from a ``tag`` query parameter."""
    if tag is None:
        return None
    key, sep, value = tag.partition("=")
    if not key:
        raise Invalid(
            "tag must be 'key' or 'key=value'",
            details=[{"field": "tag", "message": "expected key or key=value"}],
        )
    return key, (value if sep else None)


async def list_page(
    session: AsyncSession,
    who: Principal,
    query: ListQuery,
    *,
    q: str | None = None,
    tag: str | None = None,
) -> tuple[Sequence[Experiment], int]:
    """One page of experiments (active ones unless ``lifecycle`` says otherwise)."""
    if "lifecycle" not in query.filters:
        query = ListQuery(
            query.page,
            query.per_page,
            query.sort,
            query.order,
            {**query.filters, "lifecycle": "active"},
        )
    return await ExperimentRepository(session, who.org).search(
        query, q=q, tag=parse_tag_filter(tag)
    )


async def update(
    session: AsyncSession, who: Principal, experiment_id: str, data: ExperimentUpdate
) -> Experiment:
    """Rename, describe or retag an experiment."""
    repo = ExperimentRepository(session, who.org)
    experiment = await repo.get(experiment_id)
    changes = data.changes()
    name = changes.get("name")
    if name is not None and name != experiment.name and await repo.by_name(name) is not None:
        raise _name_taken(name)
    for field, value in changes.items():
        setattr(experiment, field, value)
    experiment.updated_at = utcnow()
    try:
        await repo.flush()
    except Conflict as exc:
        raise _name_taken(str(name)) from exc
    return experiment


async def set_lifecycle(
    session: AsyncSession, who: Principal, experiment_id: str, lifecycle: str
) -> Experiment:
    """Archive or restore an experiment; doing it twice is harmless."""
    repo = ExperimentRepository(session, who.org)
    experiment = await repo.get(experiment_id)
    if experiment.lifecycle != lifecycle:
        experiment.lifecycle = lifecycle
        experiment.archived_at = utcnow() if lifecycle == "archived" else None
        experiment.updated_at = utcnow()
        await repo.flush()
    return experiment


async def delete(session: AsyncSession, who: Principal, experiment_id: str) -> list[str]:
    """Delete an experiment with its runs; returns the ids of the runs deleted.

    The runs' rows (params, tags, metrics) go with it by foreign-key cascade; their
    artifacts are the caller's to remove from the object store.
    """
    from inwire.services.training.runs.repository import RunRepository

    repo = ExperimentRepository(session, who.org)
    experiment = await repo.get(experiment_id)
    run_ids = await RunRepository(session, who.org).ids_of_experiment(experiment.id)
    await repo.remove(experiment)
    return run_ids
