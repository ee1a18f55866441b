"""Rules of generators: validating a configuration against its method and source schema,
changing it, and starting runs."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.kit.jobs import Job, JobService
from inwire.kit.storage import ObjectStore
from inwire.services.synthex.data import layout
from inwire.services.synthex.data.versions import VersionRef, load_version_frame
from inwire.services.synthex.datasets.models import DatasetVersion
from inwire.services.synthex.datasets.repository import DatasetRepository, VersionRepository
from inwire.services.synthex.generators.constraints import (
    Constraint,
    condition_problems,
    constraint_problems,
)
from inwire.services.synthex.generators.methods import METHODS, method_class
from inwire.services.synthex.generators.models import Generation, Generator
from inwire.services.synthex.generators.repository import (
    GenerationRepository,
    GeneratorRepository,
)
from inwire.services.synthex.generators.schemas import (
    GenerateIn,
    GeneratorIn,
    GeneratorUpdate,
    RelationIn,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema
from inwire.services.synthex.settings import SynthexSettings

GENERATE_JOB = "synthex.generate"
_constraints = TypeAdapter(list[Constraint])


def validated_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked by the method's ``Params`` model, defaults filled in; a 400
    naming each bad field as ``params.<field>``."""
    model: type[BaseModel] = method_class(method).Params
    try:
        return model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(["params", *(str(p) for p in error["loc"])]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise Invalid(f"Invalid parameters for method {method!r}", details=details) from exc


def _check_constraints(constraints: list[dict[str, Any]], schema: Schema) -> None:
    problems = constraint_problems(_constraints.validate_python(constraints), schema)
    if problems:
        raise Invalid("The constraints do not fit the source's schema", details=problems)


async def _source_version(
    session: AsyncSession, org_id: str, dataset_id: str, version_id: str | None
) -> DatasetVersion:
    """The pinned version (it must belong to the dataset) or the dataset's latest; 404 for
    another organization's dataset, 400 for a dataset without versions."""
    dataset = await DatasetRepository(session, org_id).get(dataset_id)
    versions = VersionRepository(session, org_id)
    if version_id is None:
        latest = await versions.latest(dataset.id)
        if latest is None:
            raise Invalid(
                f"Dataset {dataset.id!r} has no version yet; wait for its import",
                details=[{"field": "dataset_id", "message": "no version"}],
            )
        return latest
    version = await versions.find(versions.model.id == version_id)
    if version is None or version.dataset_id != dataset.id:
        raise Invalid(
            f"Version {version_id!r} is not a version of dataset {dataset.id!r}",
            details=[{"field": "version_id", "message": "not a version of this dataset"}],
        )
    return version


def _schema(version: DatasetVersion) -> Schema:
    return [ColumnSpec.model_validate(c) for c in version.schema]


@dataclass(frozen=True)
class DataAccess:
    """What validating relations reads: the object store and where to cache its files."""

    store: ObjectStore
    settings: SynthexSettings


def _prefixed(exc: Invalid, prefix: str) -> Invalid:
    """``exc`` with each detail's field under ``prefix`` (``relations[0].version_id``)."""
    details = [{**d, "field": f"{prefix}.{d['field']}"} if "field" in d else d for d in exc.details]
    return Invalid(exc.message, code=exc.code, details=details)


#: Column types a child can be conditioned on (identifiers and free text carry no value
#: one parent shares with others).
_CONDITIONABLE = frozenset(ColumnType) - {ColumnType.identifier, ColumnType.text}


async def checked_relations(
    session: AsyncSession,
    org_id: str,
    parent: DatasetVersion,
    relations: list[RelationIn],
    method: str,
    params: dict[str, Any],
    access: DataAccess,
    keep: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Relations as stored: each child dataset of the organization (404 otherwise), its
    columns, the parent's key (unique in ``parent``) and the method checked (400 naming
    ``relations[i].<field>``). A relation without method and params follows the
    generator's. ``keep``: the stored relations, whose output datasets stay with the child
    dataset they were made for."""
    parent_schema = {c.name: c for c in _schema(parent)}
    outputs = {r["dataset_id"]: r.get("output_dataset_id") for r in keep}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def bad(i: int, field: str, message: str) -> Invalid:
        return Invalid(message, details=[{"field": f"relations[{i}].{field}", "message": message}])

    for i, rel in enumerate(relations):
        try:
            child = await _source_version(session, org_id, rel.dataset_id, rel.version_id)
        except Invalid as exc:
            raise _prefixed(exc, f"relations[{i}]") from exc
        if child.dataset_id == parent.dataset_id:
            raise bad(i, "dataset_id", "a child table must be another dataset than the source")
        if rel.dataset_id in seen:
            raise bad(i, "dataset_id", "this child table is already a relation")
        seen.add(rel.dataset_id)
        if rel.foreign_key not in {c.name for c in _schema(child)}:
            raise bad(i, "foreign_key", f"the child has no column {rel.foreign_key!r}")
        if rel.parent_key not in parent_schema:
            raise bad(i, "parent_key", f"the source has no column {rel.parent_key!r}")
        for column in rel.parent_columns or []:
            spec = parent_schema.get(column)
            if spec is None or column == rel.parent_key or spec.type not in _CONDITIONABLE:
                raise bad(
                    i,
                    "parent_columns",
                    f"{column!r} is not a non-key, non-identifier, non-text source column",
                )
        child_params = None
        if rel.method is not None or rel.params is not None:
            try:
                child_params = validated_params(rel.method or method, rel.params or {})
            except Invalid as exc:
                raise _prefixed(exc, f"relations[{i}]") from exc
        out.append(
            {
                "dataset_id": rel.dataset_id,
                "version_id": rel.version_id,
                "foreign_key": rel.foreign_key,
                "parent_key": rel.parent_key,
                "parent_columns": rel.parent_columns,
                "method": rel.method,
                "params": child_params,
                "output_dataset_id": outputs.get(rel.dataset_id),
            }
        )
    for key in sorted({r["parent_key"] for r in out}):
        duplicated = await _key_problem(parent, key, access)
        if duplicated:
            i = next(i for i, r in enumerate(out) if r["parent_key"] == key)
            raise bad(i, "parent_key", f"{key!r} is not a key of the source: {duplicated}")
    return out


async def _key_problem(parent: DatasetVersion, key: str, access: DataAccess) -> str | None:
    """Why ``key`` does not identify the parent's rows (missing or repeated values), or
    None when it does."""
    column = (
        await load_version_frame(
            access.store,
            VersionRef.from_row(parent),
            cache_dir=access.settings.cache_path,
            columns=[key],
            cache_max_bytes=access.settings.cache_max_bytes,
        )
    ).get_column(key)
    if column.null_count():
        return f"{column.null_count()} rows have no value"
    repeated = column.len() - column.n_unique()
    return f"{repeated} values repeat" if repeated else None


async def create_generator(
    session: AsyncSession, who: Principal, body: GeneratorIn, access: DataAccess
) -> Generator:
    """A new generator whose method, parameters, constraints and relations fit its source."""
    version = await _source_version(session, who.org, body.dataset_id, body.version_id)
    params = validated_params(body.method, body.params)
    constraints = [c.model_dump(mode="json") for c in body.constraints]
    _check_constraints(constraints, _schema(version))
    relations = await checked_relations(
        session, who.org, version, body.relations, body.method, params, access
    )
    row = Generator(
        id=new_id("gen"),
        name=body.name,
        description=body.description,
        method=body.method,
        params=params,
        constraints=constraints,
        relations=relations,
        dataset_id=body.dataset_id,
        version_id=body.version_id,
        created_by=who.subject,
    )
    return await GeneratorRepository(session, who.org).add(row)


async def list_generators(
    session: AsyncSession, who: Principal, query: ListQuery
) -> tuple[Sequence[Generator], int]:
    """One page of the organization's generators."""
    return await GeneratorRepository(session, who.org).search(query)


async def get_generator(session: AsyncSession, who: Principal, generator_id: str) -> Generator:
    """A generator of the organization (404 otherwise)."""
    return await GeneratorRepository(session, who.org).get(generator_id)


async def update_generator(
    session: AsyncSession,
    who: Principal,
    generator_id: str,
    body: GeneratorUpdate,
    access: DataAccess,
) -> Generator:
    """Apply changes; the configuration is validated again as a whole."""
    row = await get_generator(session, who, generator_id)
    changes = body.changes()
    if changes.pop("unpin", False):
        if "version_id" in changes:
            raise Invalid(
                "Give version_id or unpin, not both",
                details=[{"field": "unpin", "message": "conflicts with version_id"}],
            )
        row.version_id = None
    method = changes.get("method", row.method)
    if "method" in changes or "params" in changes:
        # A new method starts from its defaults unless params come along.
        base = changes.get("params", {} if "method" in changes else row.params)
        row.params = validated_params(method, base)
        row.method = method
    if "constraints" in changes:
        row.constraints = [c.model_dump(mode="json") for c in body.constraints or []]
    if "version_id" in changes:
        row.version_id = changes["version_id"]
    version = await _source_version(session, who.org, row.dataset_id, row.version_id)
    _check_constraints(row.constraints, _schema(version))
    if "relations" in changes or row.relations:
        # Checked again on any change: a new source version or method must fit them too.
        relations = (
            body.relations or []
            if "relations" in changes
            else [RelationIn.model_validate(r) for r in _inputs(row)]
        )
        row.relations = await checked_relations(
            session, who.org, version, relations, row.method, row.params, access, row.relations
        )
    for field in ("name", "description"):
        if field in changes:
            setattr(row, field, changes[field])
    await GeneratorRepository(session, who.org).flush()
    return row


def _inputs(row: Generator) -> list[dict[str, Any]]:
    """The stored relations as they were given (without their output datasets)."""
    return [{k: v for k, v in r.items() if k != "output_dataset_id"} for r in row.relations]


async def delete_generator(
    session: AsyncSession, jobs: JobService, who: Principal, generator_id: str
) -> None:
    """Delete a generator and its runs' records (running jobs are cancelled; versions it
    published stay)."""
    row = await get_generator(session, who, generator_id)
    for job_id in await GenerationRepository(session, who.org).unfinished_jobs(row.id):
        with contextlib.suppress(Conflict):  # finished meanwhile
            await jobs.cancel(session, who.org, job_id)
    await GeneratorRepository(session, who.org).remove(row)


async def start_generation(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    generator_id: str,
    body: GenerateIn,
    idempotency_key: str | None,
) -> tuple[Generation, Job]:
    """A run record and the ``synthex.generate`` job making it; the same Idempotency-Key
    returns the same. The run snapshots the generator's configuration and source version."""
    generator = await get_generator(session, who, generator_id)
    version = await _source_version(session, who.org, generator.dataset_id, generator.version_id)
    problems = condition_problems(body.conditions, _schema(version))
    if problems:
        raise Invalid("The conditions do not fit the source's schema", details=problems)
    relations = [
        await _run_relation(session, who.org, generator, i, r)
        for i, r in enumerate(generator.relations)
    ]
    job_input = {
        "generator_id": generator.id,
        "dataset_id": generator.dataset_id,
        **body.model_dump(mode="json", exclude_none=True),
    }
    job = await jobs.submit(
        session, who.org, GENERATE_JOB, job_input, who.subject, idempotency_key=idempotency_key
    )
    repo = GenerationRepository(session, who.org)
    existing = await repo.by_job(job.id)
    if existing is not None:
        return existing, job
    row = Generation(
        id=layout.derived_id("genr", job.id),
        generator_id=generator.id,
        job_id=job.id,
        source_version_id=version.id,
        method=generator.method,
        params=generator.params,
        constraints=generator.constraints,
        rows=body.rows,
        seed=body.seed if body.seed is not None else secrets.randbits(62),
        conditions=body.conditions,
        holdout=body.holdout,
        evaluate=body.evaluate,
        relations=relations,
        created_by=who.subject,
    )
    await repo.add(row)
    return row, job


async def _run_relation(
    session: AsyncSession, org_id: str, generator: Generator, i: int, relation: dict[str, Any]
) -> dict[str, Any]:
    """A relation as a run snapshots it: the child version and the method pinned."""
    try:
        child = await _source_version(
            session, org_id, relation["dataset_id"], relation["version_id"]
        )
    except Invalid as exc:
        raise _prefixed(exc, f"relations[{i}]") from exc
    following = relation["method"] is None and relation["params"] is None
    return {
        "dataset_id": child.dataset_id,
        "version_id": child.id,
        "foreign_key": relation["foreign_key"],
        "parent_key": relation["parent_key"],
        "parent_columns": relation["parent_columns"],
        "method": generator.method if following else relation["method"] or generator.method,
        "params": generator.params if following else relation["params"],
    }


async def list_generations(
    session: AsyncSession, who: Principal, generator_id: str, query: ListQuery
) -> tuple[Sequence[Generation], int, dict[str, dict[str, Any]]]:
    """One page of a generator's runs, and the state of their jobs."""
    await get_generator(session, who, generator_id)
    repo = GenerationRepository(session, who.org)
    scoped = replace(query, filters={**query.filters, "generator_id": generator_id})
    rows, total = await repo.search(scoped)
    return rows, total, await repo.job_states([r.job_id for r in rows])


async def get_generation(
    session: AsyncSession, who: Principal, generator_id: str, generation_id: str
) -> tuple[Generation, dict[str, Any]]:
    """One run of a generator and the state of its job."""
    repo = GenerationRepository(session, who.org)
    row = await repo.get(generation_id)
    if row.generator_id != generator_id:
        raise NotFound("Generation not found")
    states = await repo.job_states([row.job_id])
    return row, states.get(row.job_id, {})


def method_names() -> list[str]:
    """Every registered method."""
    return sorted(METHODS)
