"""HTTP endpoints of generators and their runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.jobs import JobOut, JobsDep
from inwire.kit.jobs.router import IdempotencyKeyDep
from inwire.kit.storage import StorageDep
from inwire.services.synthex.generators import service
from inwire.services.synthex.generators.models import Generation, Generator
from inwire.services.synthex.generators.schemas import (
    GenerateIn,
    GenerationOut,
    GenerationStarted,
    GenerationStatus,
    GeneratorIn,
    GeneratorOut,
    GeneratorUpdate,
    MethodOut,
)

router = APIRouter(prefix="/generators", tags=["generators"])

Reader = Annotated[Principal, require("generators:read")]
Creator = Annotated[Principal, require("generators:create")]
Updater = Annotated[Principal, require("generators:update")]
Deleter = Annotated[Principal, require("generators:delete")]
Runner = Annotated[Principal, require("generators:execute")]


def _access(request: Request, store: StorageDep) -> service.DataAccess:
    """The store and settings validating relations reads a parent's key with."""
    return service.DataAccess(store, request.app.state.settings)


AccessDep = Annotated[service.DataAccess, Depends(_access)]

_generators_query = list_params(
    ("created_at", "updated_at", "name", "method"),
    filters={"method": str, "dataset_id": str, "name": str},
)
_generations_query = list_params(
    ("created_at", "completed_at", "rows"),
    filters={"source_version_id": str, "status": GenerationStatus},
)


def _run(row: Generation, state: dict[str, Any], *, full: bool = False) -> GenerationOut:
    done = row.completed_at is not None
    return GenerationOut(
        id=row.id,
        generator_id=row.generator_id,
        job_id=row.job_id,
        status="succeeded" if done else state.get("status", "queued"),
        progress=1.0 if done else float(state.get("progress") or 0.0),
        progress_message=None if done else state.get("progress_message"),
        error=None if done else state.get("error"),
        source_version_id=row.source_version_id,
        method=row.method,
        params=row.params,
        constraints=row.constraints,
        rows=row.rows,
        seed=row.seed,
        conditions=row.conditions,
        holdout=row.holdout,
        evaluate=row.evaluate,
        output_dataset_id=row.output_dataset_id,
        output_version_id=row.output_version_id,
        stats=row.stats or {},
        relations=row.relations or [],
        tables=[
            t if full else {k: v for k, v in t.items() if k != "evaluation"}
            for t in row.tables or []
        ],
        privacy=row.privacy,
        evaluation=row.evaluation if full else None,
        created_by=row.created_by,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def _generator(row: Generator) -> GeneratorOut:
    return GeneratorOut.model_validate(row, from_attributes=True)


@router.get("/methods", response_model=Item[list[MethodOut]])
async def list_methods(who: Reader) -> dict[str, Any]:
    """The synthesis methods and the JSON schema of each one's parameters."""
    from inwire.services.synthex.generators.methods import method_class
    from inwire.services.synthex.generators.methods.neural import torch_available

    out = []
    for name in service.method_names():
        cls = method_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        out.append(
            MethodOut(
                name=name,
                description=doc[0] if doc else "",
                params_schema=cls.Params.model_json_schema(),
                available=name not in ("ctgan", "tvae") or torch_available(),
            )
        )
    return {"data": out}


@router.post("", status_code=201, response_model=Item[GeneratorOut])
async def create_generator(
    body: GeneratorIn, session: SessionDep, access: AccessDep, who: Creator
) -> dict[str, Any]:
    """Create a generator: source dataset, method, validated parameters, constraints and
    child tables (relations)."""
    return {"data": _generator(await service.create_generator(session, who, body, access))}


@router.get("", response_model=Page[GeneratorOut])
async def list_generators(
    session: SessionDep, query: Annotated[ListQuery, Depends(_generators_query)], who: Reader
) -> dict[str, Any]:
    """Generators of your organization; filter by method, source dataset or name."""
    rows, total = await service.list_generators(session, who, query)
    return query.page_of([_generator(r) for r in rows], total)


@router.get("/{generator_id}", response_model=Item[GeneratorOut])
async def get_generator(generator_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """A generator."""
    return {"data": _generator(await service.get_generator(session, who, generator_id))}


@router.patch("/{generator_id}", response_model=Item[GeneratorOut])
async def update_generator(
    generator_id: str, body: GeneratorUpdate, session: SessionDep, access: AccessDep, who: Updater
) -> dict[str, Any]:
    """Change a generator; runs already started keep the configuration they had."""
    row = await service.update_generator(session, who, generator_id, body, access)
    return {"data": _generator(row)}


@router.delete("/{generator_id}", status_code=204)
async def delete_generator(
    generator_id: str, session: SessionDep, jobs: JobsDep, who: Deleter
) -> Response:
    """Delete a generator and its runs' records; the versions it published stay."""
    await service.delete_generator(session, jobs, who, generator_id)
    return Response(status_code=204)


@router.post("/{generator_id}/generate", status_code=202, response_model=Item[GenerationStarted])
async def generate(
    generator_id: str,
    body: GenerateIn,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    who: Runner,
) -> dict[str, Any]:
    """Make synthetic rows in a `synthex.generate` job; they become a new dataset version."""
    row, job = await service.start_generation(session, jobs, who, generator_id, body, key)
    state = {"status": job.status.value, "progress": job.progress}
    return {"data": {"generation": _run(row, state), "job": JobOut.model_validate(job)}}


@router.get("/{generator_id}/generations", response_model=Page[GenerationOut])
async def list_generations(
    generator_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_generations_query)],
    who: Reader,
) -> dict[str, Any]:
    """A generator's runs, newest first; filter by source version or status."""
    rows, total, states = await service.list_generations(session, who, generator_id, query)
    return query.page_of([_run(r, states.get(r.job_id, {})) for r in rows], total)


@router.get("/{generator_id}/generations/{generation_id}", response_model=Item[GenerationOut])
async def get_generation(
    generator_id: str, generation_id: str, session: SessionDep, who: Reader
) -> dict[str, Any]:
    """One run: its status, then the version it made and its evaluation report."""
    row, state = await service.get_generation(session, who, generator_id, generation_id)
    return {"data": _run(row, state, full=True)}
