"""The import pipeline: a source file to a published, typed Parquet version.

1. fetch the source as a local file (``sources``), 2. detect encoding, delimiter and header
(``formats``), 3. convert it to Parquet streaming, 4. infer the schema on a sample and
whole-data counts (``infer``) and apply the user's corrections, 5. cast text columns
that hold numbers, booleans or dates (only casts that lose no value anywhere; a user's
correction that would lose values fails the import, naming the column), 6. publish the
version (objects first, row last, idempotent per job).

Progress: fetching 0-5 %, reading 5-75 %, inferring 75-85 %, casting 85-95 %, publishing.
"""

from __future__ import annotations

import asyncio
import codecs
import threading
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inwire.kit.errors import Invalid, InwireError
from inwire.kit.jobs.context import JobContext, JobFailed
from inwire.services.synthex.data import formats
from inwire.services.synthex.data.infer import Cast, cast_to, infer, validated_casts, write_cast
from inwire.services.synthex.data.sources import Fetched, fetcher
from inwire.services.synthex.data.versions import JobData, Lineage
from inwire.services.synthex.schema import SEMANTICS, ColumnSpec, ColumnType, Schema


class ImportOptions(BaseModel):
    """How to read a text file; each is detected when left out."""

    model_config = ConfigDict(extra="forbid")

    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    header: bool | None = None
    encoding: str | None = Field(default=None, max_length=40)
    #: Excel: the sheet to import (default: the first).
    sheet: str | None = Field(default=None, max_length=100)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return codecs.lookup(value).name
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc


class ColumnChange(BaseModel):
    """A correction of one column's inferred schema."""

    model_config = ConfigDict(extra="forbid")

    type: ColumnType | None = None
    #: One of ``schema.SEMANTICS``; an empty string removes the hint.
    semantic: str | None = None
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("semantic")
    @classmethod
    def _known_semantic(cls, value: str | None) -> str | None:
        if value and value not in SEMANTICS:
            raise ValueError(f"unknown semantic {value!r}; one of {', '.join(SEMANTICS)}")
        return value


class ImportInput(BaseModel):
    """The input of a ``synthex.import`` job."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str
    source: dict[str, Any]
    format: str | None = None
    options: ImportOptions = Field(default_factory=ImportOptions)
    schema_changes: dict[str, ColumnChange] = Field(default_factory=dict)
    parent_version_id: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)


def apply_changes(
    schema: Schema,
    casts: dict[str, Cast],
    changes: dict[str, ColumnChange],
    raw: pl.LazyFrame,
    sample: pl.DataFrame,
) -> tuple[Schema, dict[str, Cast], set[str]]:
    """The schema and casts after the user's corrections, and the columns they force."""
    dtypes = raw.collect_schema()
    unknown = sorted(set(changes) - set(dtypes))
    if unknown:
        raise Invalid(
            f"Unknown column(s) in the schema changes: {', '.join(unknown)}",
            details=[{"field": f"schema.{n}", "message": "no such column"} for n in unknown],
        )
    forced: set[str] = set()
    out: Schema = []
    for spec in schema:
        change = changes.get(spec.name)
        if change is None:
            out.append(spec)
            continue
        update: dict[str, Any] = {}
        if change.type is not None and change.type != spec.type:
            try:
                cast = cast_to(spec.name, dtypes[spec.name], change.type, sample[spec.name])
            except ValueError as exc:
                raise Invalid(str(exc), details=[{"field": f"schema.{spec.name}.type"}]) from exc
            casts.pop(spec.name, None)
            if cast is not None:
                casts[spec.name] = cast
                forced.add(spec.name)
            update["type"] = change.type
        if change.semantic is not None:
            update["semantic"] = change.semantic or None
        if change.description is not None:
            update["description"] = change.description
        out.append(spec.model_copy(update=update))
    return out, casts, forced


class MemoryWatch:
    """Samples this process's anonymous resident memory (heap, not mapped files) in a
    thread, so a job can report how much memory it really used.

    Memory-mapped files (polars maps Parquet) count in RSS as page cache the kernel may
    drop at will; ``RssAnon`` in /proc/self/status (proc(5)) is what the process holds.
    Off Linux nothing is measured and both figures are 0.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start = self.peak = _anon_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anon_rss())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _anon_rss())


def _anon_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _head_and_tail(path: Any) -> tuple[bytes, bytes, int]:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(formats.HEAD_BYTES)
        f.seek(max(0, size - 8))
        tail = f.read()
    return head, tail, size


async def run_import(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Import a source into a new version of a dataset; the ``synthex.import`` job."""
    spec = ImportInput.model_validate(job_input)
    with MemoryWatch() as memory:
        result = await _run_import(ctx, spec)
    result["start_memory_bytes"] = memory.start
    result["peak_memory_bytes"] = memory.peak
    ctx.progress(1.0, "imported")
    return result


async def _run_import(ctx: JobContext, spec: ImportInput) -> dict[str, Any]:
    async with JobData.open(ctx) as data:
        fetched: Fetched | None = None
        try:
            ctx.progress(0.01, "fetching the source")
            fetched = await fetcher(str(spec.source.get("kind")))(data, spec.source, data.workdir)
            result = await _import(ctx, data, spec, fetched)
        except InwireError as exc:
            # Bad input stays bad on a retry: fail now, and say why.
            await _cleanup(fetched, final=True)
            raise JobFailed(exc.message) from exc
        except Exception:
            await _cleanup(fetched, final=ctx.attempt >= ctx.max_attempts)
            raise
        await _cleanup(fetched, final=True)
    return result


async def _cleanup(fetched: Fetched | None, *, final: bool) -> None:
    if final and fetched is not None and fetched.cleanup is not None:
        await fetched.cleanup()


async def _import(
    ctx: JobContext, data: JobData, spec: ImportInput, fetched: Fetched
) -> dict[str, Any]:
    settings = data.settings
    fmt = formats.format_of(fetched.filename, spec.format or fetched.format)
    head, tail, size = _head_and_tail(fetched.path)
    formats.check_head(fmt, head, tail, size)
    ctx.log(f"reading {fetched.filename} ({size} bytes) as {fmt}")

    def reading(fraction: float) -> None:
        ctx.progress(0.05 + 0.7 * min(1.0, fraction), "reading")

    raw = data.workdir / "raw.parquet"
    dialect: formats.Dialect | None = None
    conversion: formats.Conversion
    if fmt in ("csv", "tsv"):
        dialect = formats.detect_dialect(
            head,
            fmt,
            encoding=spec.options.encoding,
            delimiter=spec.options.delimiter,
            header=spec.options.header,
        )
        ctx.log(
            f"encoding {dialect.encoding}, delimiter {dialect.delimiter!r}, "
            f"header {'yes' if dialect.header else 'no'}"
        )
        conversion = await asyncio.to_thread(
            formats.convert_csv,
            fetched.path,
            raw,
            dialect,
            block_bytes=settings.import_block_bytes,
            progress=reading,
            check=ctx.raise_if_cancelled,
        )
    elif fmt in ("json", "jsonl"):
        source = fetched.path
        if fmt == "json":
            source = data.workdir / "lines.jsonl"
            await asyncio.to_thread(
                formats.json_array_to_lines,
                fetched.path,
                source,
                progress=lambda f: reading(f / 2),
                check=ctx.raise_if_cancelled,
            )
        conversion = await asyncio.to_thread(
            formats.convert_jsonl,
            source,
            raw,
            block_bytes=settings.import_block_bytes,
            progress=reading if fmt == "jsonl" else lambda f: reading(0.5 + f / 2),
            check=ctx.raise_if_cancelled,
        )
    elif fmt == "parquet":
        conversion = await asyncio.to_thread(
            formats.convert_parquet,
            fetched.path,
            raw,
            progress=reading,
            check=ctx.raise_if_cancelled,
        )
    else:
        conversion = await asyncio.to_thread(
            formats.convert_excel, fetched.path, raw, sheet=spec.options.sheet, progress=reading
        )
    ctx.raise_if_cancelled()

    ctx.progress(0.76, "inferring the schema")
    lf = pl.scan_parquet(raw)
    if fetched.schema is not None:
        base, inferred_casts = fetched.schema, {}
    else:
        inference = await asyncio.to_thread(infer, lf, sample_rows=settings.infer_sample_rows)
        base, inferred_casts = inference.schema, dict(inference.casts)
    sample = lf.head(settings.infer_sample_rows).collect()
    schema, casts, forced = apply_changes(base, inferred_casts, spec.schema_changes, lf, sample)
    ctx.raise_if_cancelled()

    ctx.progress(0.85, "checking casts")
    kept, rejected = await asyncio.to_thread(validated_casts, lf, casts)
    for name, lost in sorted(rejected.items()):
        if name in forced:
            raise Invalid(
                f"Column {name!r}: {lost} value(s) cannot become {casts[name].kind}",
                details=[{"field": f"schema.{name}.type", "message": f"{lost} values"}],
            )
        ctx.log(f"column {name!r} stays text: {lost} value(s) are not {casts[name].kind}")
        schema = [
            c.model_copy(update={"type": ColumnType.text, "semantic": None})
            if c.name == name
            else c
            for c in schema
        ]
    final = raw
    if kept:
        ctx.progress(0.88, "casting columns")
        final = data.workdir / "typed.parquet"
        await asyncio.to_thread(write_cast, raw, final, kept)
    ctx.raise_if_cancelled()

    ctx.progress(0.95, "publishing the version")
    details = {
        **fetched.details,
        "format": fmt,
        **({"dialect": dialect.as_dict()} if dialect else {}),
        **({"sheet": conversion.sheet} if conversion.sheet else {}),
    }
    version = await data.publish(
        final,
        schema=schema,
        lineage=Lineage(
            fetched.lineage_kind,
            source=details,
            parent_version_id=spec.parent_version_id,
        ),
        dataset_id=spec.dataset_id,
        description=spec.description,
        tags=spec.tags,
    )
    ctx.log(f"published version {version.number} ({version.rows} rows, {version.columns} columns)")
    return {
        "dataset_id": version.dataset_id,
        "version_id": version.id,
        "number": version.number,
        "rows": version.rows,
        "columns": version.columns,
        "bytes": version.bytes,
        "format": fmt,
        "dialect": dialect.as_dict() if dialect else None,
        "casts": {name: cast.as_dict() for name, cast in kept.items()},
    }


def schema_dicts(schema: list[ColumnSpec]) -> list[dict[str, Any]]:
    """A schema as JSON values."""
    return [c.model_dump(mode="json") for c in schema]
