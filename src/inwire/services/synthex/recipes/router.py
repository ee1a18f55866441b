"""HTTP endpoints of recipes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.jobs import JobOut, JobsDep
from inwire.kit.jobs.router import IdempotencyKeyDep
from inwire.kit.storage import StorageDep
from inwire.services.synthex.recipes import service
from inwire.services.synthex.recipes.schemas import (
    ApplyRequest,
    ApplyStarted,
    Preview,
    PreviewRequest,
    RecipeCreate,
    RecipeOut,
    RecipeUpdate,
    RecipeVersionOut,
)
from inwire.services.synthex.settings import SynthexSettings

router = APIRouter(prefix="/recipes", tags=["recipes"])

Reader = Annotated[Principal, require("recipes:read")]
Creator = Annotated[Principal, require("recipes:create")]
Updater = Annotated[Principal, require("recipes:update")]
Deleter = Annotated[Principal, require("recipes:delete")]
Executor = Annotated[Principal, require("recipes:execute")]

_recipes_query = list_params(
    ("created_at", "updated_at", "name", "version", "step_count"),
    filters={"created_by": str},
)
_versions_query = list_params(("number", "created_at"), filters={"created_by": str})


async def _settings(request: Request) -> SynthexSettings:
    settings: SynthexSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[SynthexSettings, Depends(_settings)]


@router.post("", status_code=201, response_model=Item[RecipeOut])
async def create_recipe(body: RecipeCreate, session: SessionDep, who: Creator) -> dict[str, Any]:
    """Create a recipe (version 1); a malformed step is a 400 naming it."""
    row = await service.create_recipe(session, who, body)
    return {"data": RecipeOut.model_validate(row)}


@router.get("", response_model=Page[RecipeOut])
async def list_recipes(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_recipes_query)],
    who: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Name contains")] = None,
    tag: Annotated[str | None, Query(max_length=50, description="Has this tag")] = None,
) -> dict[str, Any]:
    """Recipes of your organization; search by name, filter by tag or creator, sort."""
    rows, total = await service.list_recipes(session, who, query, q=q, tag=tag)
    return query.page_of([RecipeOut.model_validate(r) for r in rows], total)


@router.get("/{recipe_id}", response_model=Item[RecipeOut])
async def get_recipe(recipe_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One recipe with the steps of its newest version."""
    return {"data": RecipeOut.model_validate(await service.get_recipe(session, who, recipe_id))}


@router.patch("/{recipe_id}", response_model=Item[RecipeOut])
async def update_recipe(
    recipe_id: str, body: RecipeUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Rename or describe a recipe; new `steps` make its next version (old ones stay)."""
    row = await service.update_recipe(session, who, recipe_id, body.changes())
    return {"data": RecipeOut.model_validate(row)}


@router.delete("/{recipe_id}", status_code=204)
async def delete_recipe(recipe_id: str, session: SessionDep, who: Deleter) -> Response:
    """Delete a recipe and all its versions (versions it made keep their lineage)."""
    await service.delete_recipe(session, who, recipe_id)
    return Response(status_code=204)


@router.get("/{recipe_id}/versions", response_model=Page[RecipeVersionOut])
async def list_recipe_versions(
    recipe_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_versions_query)],
    who: Reader,
) -> dict[str, Any]:
    """A recipe's versions, newest first by default."""
    rows, total = await service.list_versions(session, who, recipe_id, query)
    return query.page_of([RecipeVersionOut.model_validate(r) for r in rows], total)


@router.get("/{recipe_id}/versions/{number}", response_model=Item[RecipeVersionOut])
async def get_recipe_version(
    recipe_id: str, number: int, session: SessionDep, who: Reader
) -> dict[str, Any]:
    """One version of a recipe, by number."""
    row = await service.get_version_of(session, who, recipe_id, number)
    return {"data": RecipeVersionOut.model_validate(row)}


@router.post("/{recipe_id}/preview", response_model=Item[Preview])
async def preview_recipe(
    recipe_id: str,
    body: PreviewRequest,
    session: SessionDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Reader,
) -> dict[str, Any]:
    """The first rows of a dataset version's sample after the steps; nothing is saved."""
    result = await service.preview(session, store, settings, who, recipe_id, body)
    preview = Preview(
        columns=result.columns,
        schema_=result.schema,
        rows=result.rows,
        sample_rows=result.sample_rows,
        result_rows=result.result_rows,
        fitted=result.fitted,
    )
    return {"data": preview}


@router.post("/{recipe_id}/apply", status_code=202, response_model=Item[ApplyStarted])
async def apply_recipe(
    recipe_id: str,
    body: ApplyRequest,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    who: Executor,
) -> dict[str, Any]:
    """Apply the recipe to a dataset version in a `synthex.recipe` job making a new version."""
    number, job = await service.start_apply(session, jobs, who, recipe_id, body, key)
    started = ApplyStarted(
        recipe_id=recipe_id,
        recipe_version=number,
        version_id=body.version_id,
        job=JobOut.model_validate(job),
    )
    return {"data": started}
