"""The ``synthex.recipe`` job: apply a recipe version to a dataset version, publish the
result as a new version with its lineage (source version, recipe id and version, job)."""

from __future__ import annotations

import asyncio
from typing import Any

from inwire.kit.errors import NotFound
from inwire.kit.jobs.context import JobContext, JobFailed


async def apply_recipe(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Read the source version, apply the steps (streaming), publish a new version.

    The Parquet file is written first and the version row inserted last, with ids derived
    from the job id (``data.publish``): a retried attempt never makes a second version and
    a crash never leaves half of one visible.
    """
    import polars as pl

    from inwire.services.synthex.data import JobData, Lineage, NewDataset
    from inwire.services.synthex.recipes import engine
    from inwire.services.synthex.recipes.models import Recipe
    from inwire.services.synthex.recipes.repository import (
        RecipeRepository,
        RecipeVersionRepository,
    )
    from inwire.services.synthex.recipes.service import salts_for

    recipe_id = str(job_input["recipe_id"])
    number = int(job_input["recipe_version"])
    async with JobData.open(ctx) as data:
        async with data.db.session() as session:
            recipe = await RecipeRepository(session, ctx.organization_id).find(
                Recipe.id == recipe_id
            )
            if recipe is None:
                raise JobFailed(f"recipe {recipe_id!r} was deleted")
            row = await RecipeVersionRepository(session, ctx.organization_id).by_number(
                recipe_id, number
            )
            if row is None:
                raise JobFailed(f"recipe {recipe_id!r} has no version {number}")
            steps, seed, name = list(row.steps), recipe.seed, recipe.name
            salts = await salts_for(session, ctx.organization_id, recipe)
        try:
            source = await data.version(str(job_input["version_id"]))
        except NotFound as exc:
            raise JobFailed(f"version {job_input['version_id']!r} no longer exists") from exc
        ctx.log(
            f"applying recipe {name!r} version {number} ({len(steps)} steps) to "
            f"version {source.number} ({source.rows:,} rows x {source.columns} columns)"
        )
        ctx.progress(0.05, "reading the source version")
        lf = await data.scan(source)
        ctx.raise_if_cancelled()
        ctx.progress(0.1, "fitting the steps")
        fitted: list[dict[str, Any]] = []
        try:
            out, schema = await asyncio.to_thread(
                engine.apply, lf, steps, schema=source.schema, salt=salts, seed=seed, fitted=fitted
            )
        except engine.RecipeError as exc:
            raise JobFailed(str(exc)) from exc
        ctx.raise_if_cancelled()
        ctx.progress(0.3, "writing the new version")
        target = data.workdir / "recipe-output.parquet"
        try:
            await asyncio.to_thread(out.sink_parquet, target, compression="zstd")
        except pl.exceptions.ComputeError as exc:
            # The data holds something the steps cannot handle: retrying will not help.
            raise JobFailed(f"the steps failed on the data: {str(exc).splitlines()[0]}") from exc
        ctx.raise_if_cancelled()
        ctx.progress(0.9, "publishing")
        new_dataset = job_input.get("new_dataset")
        lineage = Lineage(
            "recipe",
            source={
                "recipe_id": recipe_id,
                "recipe_version": number,
                "recipe_name": name,
                "fitted": fitted,
            },
            parent_version_id=source.id,
            recipe_id=recipe_id,
        )
        published = await data.publish(
            target,
            schema=schema,
            lineage=lineage,
            dataset_id=None if new_dataset else source.dataset_id,
            new_dataset=NewDataset(
                name=new_dataset["name"],
                description=new_dataset.get("description", ""),
                tags=tuple(new_dataset.get("tags", [])),
            )
            if new_dataset
            else None,
            description=job_input.get("description")
            or f"Recipe {name!r} v{number} on version {source.number}",
            tags=job_input.get("tags") or (),
        )
        ctx.progress(1.0, "done")
        ctx.log(f"published version {published.number} ({published.rows:,} rows)")
        return {
            "dataset_id": published.dataset_id,
            "version_id": published.id,
            "number": published.number,
            "rows": published.rows,
            "columns": published.columns,
        }
