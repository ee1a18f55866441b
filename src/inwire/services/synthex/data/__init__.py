"""Shared data plumbing of Synthex: where versions live, how jobs read and publish them.

For job functions (profiles, recipes, generators, evaluations, imports)::

    from inwire.services.synthex.data import JobData, Lineage

    async def apply_recipe(ctx: JobContext, input: dict[str, Any]) -> dict[str, Any]:
        async with JobData.open(ctx) as data:
            version = await data.version(input["version_id"])   # VersionRef (org-scoped)
            lf = await data.scan(version)                        # pl.LazyFrame, streaming
            out, schema = transform(lf, version.schema)
            new = await data.publish(
                out, schema=schema, dataset_id=version.dataset_id,
                lineage=Lineage("recipe", recipe_id=input["recipe_id"],
                                parent_version_id=version.id),
            )
            return {"version_id": new.id}

``publish`` writes the Parquet object first and inserts the version row last, in one
transaction, with ids derived from the job id: a retried attempt overwrites the same objects
and finds the row it made, so a crash never leaves a half version visible or a duplicate.

Modules: ``layout`` (object keys), ``versions`` (``VersionRef``, ``Lineage``, ``JobData``,
``read_version``, ``load_version_frame``, ``publish_version``), ``files`` (local Parquet
paths of a version), ``formats`` (file formats, encoding, delimiter, header, conversion to
Parquet), ``infer`` (logical schema inference and casts), ``sources`` (where an import's
bytes come from: ``upload``, ``version``; ``s3``/``sql`` register there too).
"""

from inwire.services.synthex.data.versions import (
    JobData,
    Lineage,
    NewDataset,
    VersionRef,
    load_version_frame,
    publish_version,
    read_version,
)

__all__ = [
    "JobData",
    "Lineage",
    "NewDataset",
    "VersionRef",
    "load_version_frame",
    "publish_version",
    "read_version",
]
