"""Rules of recipes: versioning, checking steps, previews on a sample, apply jobs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.kit.jobs import Job, JobService
from inwire.kit.storage import ObjectStore
from inwire.services.synthex.data.versions import VersionRef, get_version, read_version
from inwire.services.synthex.datasets.service import _json_value
from inwire.services.synthex.recipes import engine
from inwire.services.synthex.recipes.models import Recipe, RecipeVersion
from inwire.services.synthex.recipes.repository import (
    RecipeRepository,
    RecipeVersionRepository,
    SaltRepository,
    new_salt,
)
from inwire.services.synthex.recipes.schemas import (
    ApplyRequest,
    PreviewRequest,
    RecipeCreate,
)
from inwire.services.synthex.settings import SynthexSettings

RECIPE_JOB = "synthex.recipe"


def invalid_steps(problems: Sequence[engine.Problem], *, against: str = "") -> Invalid:
    """A 400 whose details name each step's problem (index, op, what is wrong)."""
    first = problems[0]
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    where = f" on {against}" if against else ""
    return Invalid(
        f"Invalid recipe{where}: step {first.step} ({first.op or 'unknown op'}): "
        f"{first.message}{more}",
        details=[p.detail() for p in problems],
    )


def checked_steps(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps checked on their own (no schema) and normalised: 400 naming each bad step."""
    problems = engine.validate(steps)
    if problems:
        raise invalid_steps(problems)
    return [s.model_dump(mode="json", exclude_none=True) for s in engine.parse_steps(steps)]


# -- recipes -----------------------------------------------------------------------------------


async def create_recipe(session: AsyncSession, who: Principal, body: RecipeCreate) -> Recipe:
    """A recipe and its version 1."""
    steps = checked_steps(body.steps)
    recipe = Recipe(
        id=new_id("rcp"),
        name=body.name,
        description=body.description,
        tags=body.tags,
        version=1,
        steps=steps,
        step_count=len(steps),
        seed=body.seed if body.seed is not None else secrets.randbits(62),
        salt=new_salt(),
        created_by=who.subject,
    )
    await RecipeRepository(session, who.org).add(recipe)
    await RecipeVersionRepository(session, who.org).add(
        RecipeVersion(
            id=new_id("rcpv"),
            recipe_id=recipe.id,
            number=1,
            steps=steps,
            note="",
            created_by=who.subject,
        )
    )
    return recipe


async def list_recipes(
    session: AsyncSession, who: Principal, query: ListQuery, *, q: str | None, tag: str | None
) -> tuple[Sequence[Recipe], int]:
    """One page of the organization's recipes."""
    return await RecipeRepository(session, who.org).search(query, q=q, tag=tag)


async def get_recipe(session: AsyncSession, who: Principal, recipe_id: str) -> Recipe:
    """One recipe of the organization."""
    return await RecipeRepository(session, who.org).get(recipe_id)


async def update_recipe(
    session: AsyncSession, who: Principal, recipe_id: str, changes: dict[str, Any]
) -> Recipe:
    """Change a recipe's name, description or tags; new steps add a version.

    Steps equal to the newest version's add nothing (a repeated PUT-like PATCH is safe).
    """
    repo = RecipeRepository(session, who.org)
    recipe = await repo.get(recipe_id)
    note = changes.pop("note", None)
    raw_steps = changes.pop("steps", None)
    if note is not None and raw_steps is None:
        raise Invalid(
            "A note describes new steps; send steps with it",
            details=[{"field": "note", "message": "only with steps"}],
        )
    for name, value in changes.items():
        setattr(recipe, name, value)
    if raw_steps is not None:
        steps = checked_steps(raw_steps)
        if steps != recipe.steps:
            number = recipe.version + 1
            await RecipeVersionRepository(session, who.org).add(
                RecipeVersion(
                    id=new_id("rcpv"),
                    recipe_id=recipe.id,
                    number=number,
                    steps=steps,
                    note=note or "",
                    created_by=who.subject,
                )
            )
            recipe.version = number
            recipe.steps = steps
            recipe.step_count = len(steps)
    await repo.flush()
    return recipe


async def delete_recipe(session: AsyncSession, who: Principal, recipe_id: str) -> None:
    """Delete a recipe and its versions. Dataset versions it made keep naming it (lineage
    ids are not foreign keys); a job still applying it fails with a clear message."""
    repo = RecipeRepository(session, who.org)
    await repo.remove(await repo.get(recipe_id))


async def list_versions(
    session: AsyncSession, who: Principal, recipe_id: str, query: ListQuery
) -> tuple[Sequence[RecipeVersion], int]:
    """One page of a recipe's versions."""
    recipe = await get_recipe(session, who, recipe_id)
    return await RecipeVersionRepository(session, who.org).of_recipe(recipe.id, query)


async def get_version_of(
    session: AsyncSession, who: Principal, recipe_id: str, number: int
) -> RecipeVersion:
    """Version ``number`` of a recipe; 404 if there is none."""
    recipe = await get_recipe(session, who, recipe_id)
    row = await RecipeVersionRepository(session, who.org).by_number(recipe.id, number)
    if row is None:
        raise NotFound(f"Recipe {recipe_id!r} has no version {number}")
    return row


async def _steps_of(
    session: AsyncSession, who: Principal, recipe: Recipe, number: int | None
) -> tuple[int, list[dict[str, Any]]]:
    if number is None or number == recipe.version:
        return recipe.version, list(recipe.steps)
    row = await RecipeVersionRepository(session, who.org).by_number(recipe.id, number)
    if row is None:
        raise Invalid(
            f"Recipe {recipe.id!r} has no version {number}",
            details=[{"field": "recipe_version", "message": f"1 to {recipe.version}"}],
        )
    return row.number, list(row.steps)


async def _source(session: AsyncSession, who: Principal, version_id: str) -> VersionRef:
    """The dataset version to work on; 404 unless it is the organization's."""
    try:
        return await get_version(session, who.org, version_id)
    except NotFound:
        raise NotFound(f"Dataset version {version_id!r} not found") from None


def _check_against(steps: Sequence[dict[str, Any]], version: VersionRef) -> None:
    problems = engine.validate(steps, version.schema)
    if problems:
        raise invalid_steps(problems, against=f"version {version.number} of {version.dataset_id}")


def _uses_org_salt(steps: Sequence[dict[str, Any]]) -> bool:
    return any(s.get("scope") == "organization" for s in steps)


async def salts_for(session: AsyncSession, org_id: str, recipe: Recipe) -> engine.Salts:
    """The recipe's salt and the organization's (made on first use)."""
    org_salt = await SaltRepository(session, org_id).ensure()
    return engine.Salts(
        recipe=bytes.fromhex(recipe.salt), organization=bytes.fromhex(org_salt.salt)
    )


# -- preview and apply -------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewResult:
    """What a preview shows."""

    columns: list[str]
    schema: list[Any]
    rows: list[dict[str, Any]]
    sample_rows: int
    result_rows: int
    fitted: list[dict[str, Any]]


async def preview(
    session: AsyncSession,
    store: ObjectStore,
    settings: SynthexSettings,
    who: Principal,
    recipe_id: str,
    body: PreviewRequest,
) -> PreviewResult:
    """The first rows of a sample of a version after the recipe's steps (or ``body.steps``).

    Statistics steps learn (means, quantiles, categories) come from the sample, so they may
    differ from what applying to the whole version learns.
    """
    recipe = await get_recipe(session, who, recipe_id)
    if body.steps is not None:
        steps = checked_steps(body.steps)
    else:
        _, steps = await _steps_of(session, who, recipe, body.recipe_version)
    version = await _source(session, who, body.version_id)
    _check_against(steps, version)
    salts = await salts_for(session, who.org, recipe)
    lf = await read_version(
        store, version, cache_dir=settings.cache_path, cache_max_bytes=settings.cache_max_bytes
    )
    rows = min(body.rows, settings.preview_max_rows)

    def run() -> tuple[pl.DataFrame, int, list[Any], list[dict[str, Any]]]:
        sample = lf.head(body.sample_rows).collect()
        fitted: list[dict[str, Any]] = []
        out, schema = engine.apply(
            sample.lazy(),
            steps,
            schema=version.schema,
            salt=salts,
            seed=recipe.seed,
            fitted=fitted,
        )
        result = out.collect()
        return result, sample.height, schema, fitted

    try:
        result, sample_rows, schema, fitted = await asyncio.to_thread(run)
    except engine.RecipeError as exc:
        raise invalid_steps(exc.problems, against="the sample") from exc
    except pl.exceptions.ComputeError as exc:
        # A value the steps cannot handle (checked plans fail only on data).
        reason = str(exc).split("\n", 1)[0]
        raise Invalid(
            f"The steps failed on the sample: {reason}",
            details=[{"field": "steps", "message": reason}],
        ) from exc
    head = result.head(rows)
    return PreviewResult(
        columns=head.columns,
        schema=schema,
        rows=[{k: _json_value(v) for k, v in r.items()} for r in head.iter_rows(named=True)],
        sample_rows=sample_rows,
        result_rows=result.height,
        fitted=[{k: _json_value(v) for k, v in f.items()} for f in fitted],
    )


async def start_apply(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    recipe_id: str,
    body: ApplyRequest,
    idempotency_key: str | None,
) -> tuple[int, Job]:
    """Check the recipe version against the dataset version, then queue the job."""
    recipe = await get_recipe(session, who, recipe_id)
    number, steps = await _steps_of(session, who, recipe, body.recipe_version)
    version = await _source(session, who, body.version_id)
    _check_against(steps, version)
    if _uses_org_salt(steps):
        await SaltRepository(session, who.org).ensure()
    job_input = {
        "recipe_id": recipe.id,
        "recipe_version": number,
        "version_id": version.id,
        "description": body.description,
        "tags": body.tags,
        "new_dataset": body.new_dataset.model_dump(mode="json") if body.new_dataset else None,
    }
    job = await jobs.submit(
        session, who.org, RECIPE_JOB, job_input, who.subject, idempotency_key=idempotency_key
    )
    return number, job
