"""The ``synthex.generate`` job: learn the source version, sample, publish, evaluate.

Steps, each after a cancel check: read the run's snapshot and its source version; hold
out a seeded share of the rows for the evaluation; fit the method inside the constraints
layer (``ConstrainedSynthesizer``) and sample; publish the rows as a new version of the
generator's output dataset (objects first, row last, ids derived from the job id, so a
crash leaves nothing half-written and a retry publishes once); evaluate them against the
rows the method learnt from and the holdout; store the results in the run's row.
Fitting, sampling and evaluating run in a thread so the job keeps its heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from inwire.kit.db.base import utcnow
from inwire.kit.errors import InwireError, NotFound
from inwire.kit.jobs.context import JobContext, JobFailed
from inwire.services.synthex.data.versions import Lineage, NewDataset, VersionRef
from inwire.services.synthex.evaluations.engine import EvaluationError, evaluate
from inwire.services.synthex.evaluations.store import save_report
from inwire.services.synthex.schema import Schema

if TYPE_CHECKING:
    from inwire.services.synthex.data import JobData

#: Progress milestones: reading, fitting, sampling, publishing, evaluating.
FIT, SAMPLE, PUBLISH, EVALUATE = 0.1, 0.55, 0.7, 0.8


def split_holdout(
    frame: pl.DataFrame, share: float, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """A seeded split into the rows to learn from and the rows held out (None for 0)."""
    held = int(frame.height * share)
    if held == 0 or frame.height - held < 1:
        return frame, None
    order = np.random.default_rng(seed).permutation(frame.height)
    return frame[np.sort(order[held:])], frame[np.sort(order[:held])]


def synthesize(
    train: pl.DataFrame,
    holdout: pl.DataFrame | None,
    schema: Schema,
    snapshot: dict[str, Any],
    ctx: JobContext,
) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any] | None]:
    """Fit and sample (in a worker thread): rows, timings, the method's privacy report."""
    from pydantic import TypeAdapter

    from inwire.services.synthex.generators.constraints import (
        ConstrainedSynthesizer,
        Constraint,
    )
    from inwire.services.synthex.generators.methods import create

    constraints = TypeAdapter(list[Constraint]).validate_python(snapshot["constraints"])
    method = create(snapshot["method"], snapshot["params"])
    model = ConstrainedSynthesizer(method, constraints)

    def fit_progress(fraction: float, message: str) -> None:
        ctx.progress(FIT + (SAMPLE - FIT) * fraction, f"fitting: {message}")

    start = time.perf_counter()
    model.fit(train, schema, seed=snapshot["seed"], progress=fit_progress, cancelled=ctx.cancelled)
    fitted = time.perf_counter() - start
    if holdout is not None:
        model.reserve(holdout)  # held-out identifiers are real ones too
    ctx.raise_if_cancelled()
    ctx.progress(SAMPLE, f"sampling {snapshot['rows']:,} rows")
    ctx.log(f"fitted {snapshot['method']} on {train.height:,} rows in {fitted:.2f} s")
    start = time.perf_counter()
    rows = model.sample(
        snapshot["rows"],
        seed=snapshot["seed"] + 1,
        conditions=snapshot["conditions"] or None,
        cancelled=ctx.cancelled,
    )
    sampled = time.perf_counter() - start
    ctx.log(f"sampled {rows.height:,} rows in {sampled:.2f} s")
    stats = {"fit_seconds": fitted, "sample_seconds": sampled, "rows_fitted": train.height}
    privacy = getattr(method, "privacy", None)
    return rows, stats, privacy


async def generate(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Make the run recorded for this job; see the module docstring."""
    from inwire.services.synthex.data import JobData
    from inwire.services.synthex.datasets.repository import DatasetRepository
    from inwire.services.synthex.generators.repository import (
        GenerationRepository,
        GeneratorRepository,
    )

    async with JobData.open(ctx) as data:
        async with data.db.session(write=False) as session:
            run = await GenerationRepository(session, ctx.organization_id).by_job(ctx.job_id)
            if run is None:
                return {"generation_id": None, "note": "the generator was deleted"}
            generator = await GeneratorRepository(session, ctx.organization_id).get_or_none(
                run.generator_id
            )
            if generator is None:
                return {"generation_id": None, "note": "the generator was deleted"}
            output_dataset = generator.output_dataset_id
            if output_dataset is not None:
                found = await DatasetRepository(session, ctx.organization_id).find(
                    DatasetRepository.model.id == output_dataset
                )
                output_dataset = found.id if found is not None else None
            name = generator.name
            snapshot: dict[str, Any] = {
                "generation_id": run.id,
                "generator_id": run.generator_id,
                "method": run.method,
                "params": run.params,
                "constraints": run.constraints,
                "rows": run.rows,
                "seed": run.seed,
                "conditions": run.conditions,
                "holdout": run.holdout,
                "evaluate": run.evaluate,
                "relations": run.relations or [],
            }
            outputs = {r["dataset_id"]: r.get("output_dataset_id") for r in generator.relations}
            source_id = run.source_version_id
        try:
            version = await data.version(source_id)
        except NotFound as exc:
            raise JobFailed(f"source version {source_id!r} no longer exists") from exc
        ctx.progress(0.02, f"reading version {version.number} ({version.rows:,} rows)")
        frame = await data.load(version)
        ctx.raise_if_cancelled()
        train, holdout = split_holdout(frame, snapshot["holdout"], snapshot["seed"])
        del frame
        ctx.log(
            f"{snapshot['method']} learns {train.height:,} rows"
            + (f", {holdout.height:,} held out for the evaluation" if holdout is not None else "")
        )
        if snapshot["relations"]:
            from inwire.services.synthex.generators.multitable_job import generate_tables

            return await generate_tables(
                ctx, data, version, train, holdout, snapshot, output_dataset, outputs, name
            )
        ctx.progress(FIT, f"fitting {snapshot['method']}")
        rows, stats, privacy = await guarded(
            ctx, lambda: synthesize(train, holdout, version.schema, snapshot, ctx)
        )
        ctx.raise_if_cancelled()

        ctx.progress(PUBLISH, "publishing the synthetic version")
        published = await data.publish(
            rows,
            schema=version.schema,
            lineage=lineage(snapshot, version),
            dataset_id=output_dataset,
            new_dataset=None if output_dataset else new_dataset(name, snapshot),
            description=f"{snapshot['rows']:,} rows by {snapshot['method']}",
        )
        ctx.log(f"published version {published.number} of dataset {published.dataset_id}")

        evaluation = None
        if snapshot["evaluate"]:
            ctx.progress(EVALUATE, "evaluating quality and privacy")
            evaluation = await evaluation_of(ctx, train, rows, holdout, version.schema, snapshot)
        if evaluation is not None:
            await file_report(ctx, data, evaluation, version, published, holdout, snapshot)
        if not await finish(ctx, data, snapshot, published, evaluation, privacy, stats):
            return {"generation_id": None, "version_id": published.id, "note": "deleted"}
        ctx.progress(1.0, "done")
        return {
            "generation_id": snapshot["generation_id"],
            "dataset_id": published.dataset_id,
            "version_id": published.id,
            "rows": rows.height,
            "quality": (evaluation or {}).get("summary", {}).get("quality"),
        }


async def file_report(
    ctx: JobContext,
    data: JobData,
    evaluation: dict[str, Any],
    version: VersionRef,
    published: VersionRef,
    holdout: pl.DataFrame | None,
    snapshot: dict[str, Any],
) -> None:
    """File the run's report as an evaluation too, so /api/v1/evaluations?synthetic_version_id=…
    finds it beside the ones users ask for (idempotent per job)."""
    evaluation_id = await save_report(
        data,
        evaluation,
        real_version=version,
        synthetic_version=published,
        holdout_share=snapshot["holdout"] if holdout is not None else None,
        seed=snapshot["seed"],
        generator_id=snapshot["generator_id"],
    )
    ctx.log(f"evaluation {evaluation_id} filed")


async def finish(
    ctx: JobContext,
    data: JobData,
    snapshot: dict[str, Any],
    published: VersionRef,
    evaluation: dict[str, Any] | None,
    privacy: dict[str, Any] | None,
    stats: dict[str, Any],
    tables: list[dict[str, Any]] | None = None,
    child_outputs: dict[str, str] | None = None,
) -> bool:
    """Store the run's results, and the output datasets on its generator (the parent's,
    and ``child_outputs``: child dataset → output dataset); False if the run was deleted."""
    from inwire.services.synthex.generators.repository import (
        GenerationRepository,
        GeneratorRepository,
    )

    async with data.db.session() as session:
        run = await GenerationRepository(session, ctx.organization_id).get_or_none(
            snapshot["generation_id"]
        )
        if run is None:
            return False
        run.output_dataset_id = published.dataset_id
        run.output_version_id = published.id
        run.evaluation = evaluation
        run.privacy = privacy
        run.stats = stats
        run.tables = tables or []
        run.completed_at = utcnow()
        generator = await GeneratorRepository(session, ctx.organization_id).get_or_none(
            snapshot["generator_id"]
        )
        if generator is not None and generator.output_dataset_id is None:
            generator.output_dataset_id = published.dataset_id
        if generator is not None and child_outputs:
            # A new list: the JSON column is saved when it is assigned, not mutated.
            generator.relations = [
                {**r, "output_dataset_id": child_outputs.get(r["dataset_id"])}
                if r["dataset_id"] in child_outputs
                else r
                for r in generator.relations
            ]
    return True


def lineage(snapshot: dict[str, Any], version: VersionRef, **more: Any) -> Lineage:
    """The lineage of a version a run publishes from ``version`` (``more``: details of a
    child table)."""
    return Lineage(
        "generator",
        source={
            "generation_id": snapshot["generation_id"],
            "method": snapshot["method"],
            "params": snapshot["params"],
            "constraints": snapshot["constraints"],
            "rows": snapshot["rows"],
            "seed": snapshot["seed"],
            "conditions": snapshot["conditions"],
            "source_dataset_id": version.dataset_id,
            "source_version_id": version.id,
            **more,
        },
        parent_version_id=version.id,
        generator_id=snapshot["generator_id"],
    )


def new_dataset(name: str, snapshot: dict[str, Any]) -> NewDataset:
    """The output dataset a generator's first run makes for the table ``name``."""
    return NewDataset(
        name=f"{name} (synthetic)"[:200],
        description=f"Synthetic data made by generator {snapshot['generator_id']}",
        tags=("synthetic",),
    )


async def guarded(ctx: JobContext, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread; a cancel becomes the job's cancel, and bad input (a 4xx
    error: constraints the data breaks, conditions no row meets) fails without retries."""
    try:
        return await asyncio.to_thread(work)
    except InwireError as exc:
        ctx.raise_if_cancelled()
        raise JobFailed(exc.message) from exc
    except Exception:
        ctx.raise_if_cancelled()  # the method stopped because of the cancel
        raise


async def evaluation_of(
    ctx: JobContext,
    train: pl.DataFrame,
    synthetic: pl.DataFrame,
    holdout: pl.DataFrame | None,
    schema: Schema,
    snapshot: dict[str, Any],
) -> dict[str, Any] | None:
    """The evaluation engine's report, or None (logged) when it cannot compare these."""
    try:
        report: dict[str, Any] = await asyncio.to_thread(
            evaluate, train, synthetic, schema, holdout=holdout, seed=snapshot["seed"] % 2**32
        )
    except EvaluationError as exc:
        ctx.log(f"no evaluation: {exc}", level="warning")
        return None
    return report
