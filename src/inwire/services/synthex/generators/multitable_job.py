"""The ``synthex.generate`` job of a generator with relations: every table in one run.

Called by ``jobs.generate`` once it has read the parent version and split its holdout.
Reads each child version of the run's snapshot, fits and samples every table in a worker
thread (``multitable.synthesize_tables``), then publishes the parent and the children
*together* (``JobData.publish_many``: objects first, every row in one transaction, ids
derived from the job id and a slot per table), so a failed or killed run shows no table
and a retry publishes each once. Each table is evaluated like a single-table run; the
parent's report is the run's ``evaluation`` (and filed as an evaluation), each child's is
in its entry of ``Generation.tables`` beside its referential integrity and cardinality.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from inwire.kit.errors import NotFound
from inwire.kit.jobs.context import JobContext, JobFailed
from inwire.services.synthex.data.versions import Publication, VersionRef
from inwire.services.synthex.generators.jobs import (
    EVALUATE,
    FIT,
    PUBLISH,
    SAMPLE,
    evaluation_of,
    file_report,
    finish,
    guarded,
    lineage,
    new_dataset,
)
from inwire.services.synthex.generators.multitable import ChildTable, Tables, synthesize_tables

if TYPE_CHECKING:
    from inwire.services.synthex.data import JobData


def _slot(i: int) -> str:
    """The publishing slot of child ``i`` (the parent keeps the single-table slot "")."""
    return f"child{i}"


async def generate_tables(
    ctx: JobContext,
    data: JobData,
    version: VersionRef,
    train: pl.DataFrame,
    holdout: pl.DataFrame | None,
    snapshot: dict[str, Any],
    output_dataset: str | None,
    outputs: dict[str, str | None],
    name: str,
) -> dict[str, Any]:
    """Make, publish and evaluate the parent and child tables of the run ``snapshot``."""
    from inwire.services.synthex.datasets.repository import DatasetRepository

    children: list[ChildTable] = []
    child_versions: list[VersionRef] = []
    for i, relation in enumerate(snapshot["relations"]):
        try:
            child_version = await data.version(relation["version_id"])
        except NotFound as exc:
            raise JobFailed(f"child version {relation['version_id']!r} no longer exists") from exc
        ctx.progress(0.05, f"reading child table {i + 1} ({child_version.rows:,} rows)")
        frame = await data.load(child_version)
        children.append(ChildTable(relation, frame, child_version.schema))
        child_versions.append(child_version)
    # Output datasets deleted since the last run are made again.
    async with data.db.session(write=False) as session:
        datasets = DatasetRepository(session, ctx.organization_id)
        found = {
            dataset_id: out
            for dataset_id, out in outputs.items()
            if out is not None and await datasets.find(DatasetRepository.model.id == out)
        }
    ctx.raise_if_cancelled()

    def progress(fraction: float, message: str) -> None:
        ctx.progress(FIT + (SAMPLE - FIT) * fraction, message)

    ctx.progress(FIT, f"fitting {1 + len(children)} tables")
    tables: Tables = await guarded(
        ctx,
        lambda: synthesize_tables(
            train,
            holdout,
            version.schema,
            children,
            snapshot,
            progress=progress,
            cancelled=ctx.cancelled,
        ),
    )
    ctx.raise_if_cancelled()
    for i, result in enumerate(tables.children):
        ctx.log(
            f"child table {i + 1}: {result.rows.height:,} rows for {tables.parent.height:,} "
            f"parents, integrity {'holds' if result.integrity['holds'] else 'BROKEN'}"
        )

    ctx.progress(PUBLISH, f"publishing {1 + len(children)} synthetic versions")
    items = [
        Publication(
            tables.parent,
            schema=version.schema,
            lineage=lineage(snapshot, version),
            dataset_id=output_dataset,
            new_dataset=None if output_dataset else new_dataset(name, snapshot),
            description=f"{snapshot['rows']:,} rows by {snapshot['method']}",
        )
    ]
    for i, (child, result, child_version) in enumerate(
        zip(children, tables.children, child_versions, strict=True)
    ):
        relation = child.relation
        out = found.get(relation["dataset_id"])
        items.append(
            Publication(
                result.rows,
                schema=child_version.schema,
                lineage=lineage(
                    {**snapshot, "method": relation["method"], "params": relation["params"]},
                    child_version,
                    rows=result.rows.height,
                    relation=i,
                    foreign_key=relation["foreign_key"],
                    parent_key=relation["parent_key"],
                    parent_dataset_id=version.dataset_id,
                    parent_version_id=version.id,
                ),
                dataset_id=out,
                new_dataset=None
                if out
                else new_dataset(f"{name}: child {i + 1} ({relation['dataset_id']})", snapshot),
                slot=_slot(i),
                description=f"{result.rows.height:,} child rows by {relation['method']}",
            )
        )
    published = await data.publish_many(items)
    parent_out, child_outs = published[0], published[1:]
    ctx.log(
        "published " + ", ".join(f"version {p.number} of dataset {p.dataset_id}" for p in published)
    )

    evaluation = None
    child_reports: list[dict[str, Any] | None] = [None] * len(children)
    if snapshot["evaluate"]:
        ctx.progress(EVALUATE, "evaluating every table")
        evaluation = await evaluation_of(
            ctx, train, tables.parent, holdout, version.schema, snapshot
        )
        for i, (child, result) in enumerate(zip(children, tables.children, strict=True)):
            fk = child.relation["foreign_key"]
            if result.train.height == 0 or result.rows.height == 0:
                continue
            child_reports[i] = await evaluation_of(
                ctx,
                result.train.drop(fk),
                result.rows.drop(fk),
                result.holdout.drop(fk) if result.holdout is not None else None,
                [c for c in child.schema if c.name != fk],
                snapshot,
            )
    if evaluation is not None:
        await file_report(ctx, data, evaluation, version, parent_out, holdout, snapshot)

    entries: list[dict[str, Any]] = [
        {
            "role": "parent",
            "source_dataset_id": version.dataset_id,
            "source_version_id": version.id,
            "output_dataset_id": parent_out.dataset_id,
            "output_version_id": parent_out.id,
            "rows": tables.parent.height,
            "quality": (evaluation or {}).get("summary", {}).get("quality"),
        }
    ]
    for i, (child, result, out_version, report) in enumerate(
        zip(children, tables.children, child_outs, child_reports, strict=True)
    ):
        relation = child.relation
        entries.append(
            {
                "role": "child",
                "relation": i,
                "foreign_key": relation["foreign_key"],
                "parent_key": relation["parent_key"],
                "parent_columns": result.parent_columns,
                "method": relation["method"],
                "source_dataset_id": relation["dataset_id"],
                "source_version_id": relation["version_id"],
                "output_dataset_id": out_version.dataset_id,
                "output_version_id": out_version.id,
                "rows": result.rows.height,
                "quality": (report or {}).get("summary", {}).get("quality"),
                "integrity": result.integrity,
                "cardinality": result.cardinality,
                "stats": result.stats,
                "privacy": result.privacy,
                "evaluation": report,
            }
        )

    # Every child's output dataset, so deleted ones made again are remembered too.
    made = {
        child.relation["dataset_id"]: out.dataset_id
        for child, out in zip(children, child_outs, strict=True)
    }
    stored = await finish(
        ctx, data, snapshot, parent_out, evaluation, tables.privacy, tables.stats, entries, made
    )
    if not stored:
        return {"generation_id": None, "version_id": parent_out.id, "note": "deleted"}
    ctx.progress(1.0, "done")
    return {
        "generation_id": snapshot["generation_id"],
        "dataset_id": parent_out.dataset_id,
        "version_id": parent_out.id,
        "rows": tables.parent.height,
        "tables": [
            {k: e[k] for k in ("role", "output_dataset_id", "output_version_id", "rows")}
            for e in entries
        ],
        "quality": (evaluation or {}).get("summary", {}).get("quality"),
    }
