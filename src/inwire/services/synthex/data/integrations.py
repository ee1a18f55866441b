"""Import sources behind Core integrations: an object in S3, the result of a SQL query.

The job input names the integration (``integration_id``) and what to read, never a
credential. When the job runs, it asks Core for the integration's config and credentials
(``CoreClient.resolve_integration``, with the platform's internal secret, on behalf of the
job's creator, whose membership Core checks then); they stay in this worker's memory for
the length of the fetch and appear in no job row, log line or version.

Failures a retry cannot fix (a missing object, refused credentials, a query PostgreSQL
rejects) fail the job at once with a message that names no secret; network trouble (Core,
S3 or the database unreachable) is retried like any other job error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inwire.kit.auth.internal import internal_secret
from inwire.kit.errors import (
    Forbidden,
    Invalid,
    InwireError,
    NotFound,
    Unavailable,
    UpstreamTimeout,
)
from inwire.services.synthex.data import layout
from inwire.services.synthex.data.sources import Fetched
from inwire.services.synthex.data.versions import JobData

if TYPE_CHECKING:
    from inwire.contracts.core import ResolvedIntegration

#: Integration kind each import source kind needs.
SOURCE_INTEGRATION_KINDS: Mapping[str, str] = {"s3": "s3", "sql": "postgres"}

_CHUNK = 1024 * 1024


class SourceUnreachable(ConnectionError):
    """Core, S3 or the database could not be reached: the attempt is retried."""


def redact(message: str, secrets: Iterable[Any]) -> str:
    """``message`` with every credential value (4 characters or more) replaced by ``***``."""
    for secret in sorted(
        (str(s) for s in secrets if s and len(str(s)) >= 4), key=len, reverse=True
    ):
        message = message.replace(secret, "***")
    return message


async def resolve(data: JobData, integration_id: str, source_kind: str) -> ResolvedIntegration:
    """The integration's config and credentials from Core, for this job's creator."""
    from inwire.contracts.core import CoreClient

    try:
        async with CoreClient(data.settings.core_url, timeout=30) as core:
            found = await core.resolve_integration(
                integration_id,
                organization_id=data.org_id,
                on_behalf_of=data.created_by,
                internal_secret=internal_secret(data.settings),
            )
    except (Unavailable, UpstreamTimeout) as exc:
        raise SourceUnreachable(f"Core could not be reached: {exc.message}") from exc
    except NotFound as exc:
        raise NotFound(f"Integration {integration_id!r} does not exist (any more)") from exc
    except Forbidden as exc:
        raise Forbidden(f"Integration {integration_id!r} may not be used: {exc.message}") from exc
    expected = SOURCE_INTEGRATION_KINDS[source_kind]
    if found.kind != expected:
        raise Invalid(
            f"Integration {integration_id!r} is {found.kind}; {source_kind} imports need {expected}"
        )
    return found


# -- S3 ----------------------------------------------------------------------------------------


def check_s3_location(config: Mapping[str, Any], bucket: str, key: str) -> None:
    """The object must be in the integration's bucket, under its prefix when it has one."""
    if bucket != config.get("bucket"):
        raise Invalid(
            f"Bucket {bucket!r} is not the integration's ({config.get('bucket')!r})",
            details=[{"field": "source.url", "message": "another bucket"}],
        )
    prefix = config.get("prefix") or ""
    if not key.startswith(prefix):
        raise Invalid(
            f"Key {key!r} is outside the integration's prefix {prefix!r}",
            details=[{"field": "source.key", "message": f"must start with {prefix!r}"}],
        )


def _s3_download(
    config: Mapping[str, Any],
    credentials: Mapping[str, Any],
    bucket: str,
    key: str,
    target: Path,
    max_bytes: int,
) -> dict[str, Any]:
    """Stream one object to ``target`` (1 MiB at a time); its size and ETag."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    url = f"s3://{bucket}/{key}"
    client = boto3.session.Session().client(
        "s3",
        region_name=config.get("region") or "us-east-1",
        endpoint_url=config.get("endpoint_url"),
        aws_access_key_id=credentials.get("access_key_id"),
        aws_secret_access_key=credentials.get("secret_access_key"),
        config=Config(connect_timeout=10, read_timeout=120, retries={"mode": "standard"}),
    )
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        size = int(head["ContentLength"])
        if size > max_bytes:
            raise Invalid(f"{url} has {size} bytes, more than max_upload_bytes ({max_bytes})")
        got = client.get_object(Bucket=bucket, Key=key)
        written = 0
        with target.open("wb") as out:
            for chunk in got["Body"].iter_chunks(_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise Invalid(f"{url} is larger than max_upload_bytes ({max_bytes})")
                out.write(chunk)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            raise NotFound(f"{url} does not exist") from exc
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise Invalid(f"S3 rejected the integration's credentials ({code})") from exc
        if code in ("AccessDenied", "AllAccessDisabled", "403"):
            raise Invalid(f"Access to {url} was denied ({code})") from exc
        if status >= 500:
            raise SourceUnreachable(f"S3 answered {status} for {url} ({code})") from exc
        raise Invalid(f"S3 refused {url} ({code})") from exc
    except BotoCoreError as exc:
        raise SourceUnreachable(f"S3 could not be reached: {type(exc).__name__}") from exc
    finally:
        client.close()
    return {"bytes": written, "etag": str(head.get("ETag", "")).strip('"')}


async def fetch_s3(data: JobData, source: Mapping[str, Any], workdir: Path) -> Fetched:
    """``{"integration_id", "bucket", "key"}``: the object, downloaded with boto3."""
    bucket, key = str(source["bucket"]), str(source["key"])
    integration = await resolve(data, str(source["integration_id"]), "s3")
    check_s3_location(integration.config, bucket, key)
    filename = key.rsplit("/", 1)[-1] or "object"
    target = workdir / "s3" / (layout.safe_filename(filename) or "object")
    target.parent.mkdir(parents=True, exist_ok=True)
    secrets = integration.credentials.values()
    try:
        facts = await asyncio.to_thread(
            _s3_download,
            integration.config,
            integration.credentials,
            bucket,
            key,
            target,
            data.settings.max_upload_bytes,
        )
    except InwireError as exc:
        exc.message = redact(exc.message, secrets)
        raise
    return Fetched(
        path=target,
        filename=filename,
        format=None,
        lineage_kind="s3",
        details={
            "integration_id": integration.id,
            "url": f"s3://{bucket}/{key}",
            **facts,
        },
    )


# -- SQL (PostgreSQL) -------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A value of a type Parquet has no column for, as text (JSON for arrays and records)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def _column_type(type_name: str) -> tuple[Any, Callable[[Any], Any]]:
    """The Arrow type of a PostgreSQL type and how to convert asyncpg's values to it.

    ``numeric`` goes as text, exact: the import types it as a number only when no value
    would change. Types without a Parquet equivalent (intervals, arrays, ranges, …) are text.
    """
    import pyarrow as pa

    def same(value: Any) -> Any:
        return value

    known: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "int2": (pa.int64(), same),
        "int4": (pa.int64(), same),
        "int8": (pa.int64(), same),
        "oid": (pa.int64(), same),
        "float4": (pa.float64(), same),
        "float8": (pa.float64(), same),
        "bool": (pa.bool_(), same),
        "date": (pa.date32(), _finite),
        "timestamp": (pa.timestamp("us"), _finite),
        "timestamptz": (pa.timestamp("us", tz="UTC"), _finite),
        "time": (pa.time64("us"), same),
    }
    return known.get(type_name, (pa.string(), _text))


def _finite(value: Any) -> Any:
    # PostgreSQL's 'infinity' dates come back as date(time).max/min: no Parquet value.
    if isinstance(value, dt.date) and value in (
        dt.date.max,
        dt.date.min,
        dt.datetime.max,
        dt.datetime.min,
    ):
        return None
    return value


async def _query_to_parquet(
    integration: ResolvedIntegration, query: str, target: Path, data: JobData
) -> int:
    """Run ``query`` in a read-only transaction and write its rows to ``target``, batch by
    batch from a server-side cursor; the number of rows."""
    import asyncpg
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = data.settings
    config, credentials = integration.config, integration.credentials
    try:
        conn = await asyncpg.connect(
            host=config.get("host"),
            port=int(config.get("port") or 5432),
            user=credentials.get("user"),
            password=credentials.get("password"),
            database=config.get("database"),
            ssl=config.get("sslmode") or "prefer",
            timeout=30,
            server_settings={"application_name": "inwire-synthex-import"},
        )
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
        raise SourceUnreachable(
            f"PostgreSQL at {config.get('host')}:{config.get('port')} could not be reached: "
            f"{type(exc).__name__}"
        ) from exc
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        # READ ONLY: PostgreSQL itself refuses any write the query attempts (a DB user with
        # read rights only is still the right setup). REPEATABLE READ: one snapshot for all
        # batches.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            timeout_ms = max(1, int(settings.sql_statement_timeout_seconds * 1000))
            await conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            statement = await conn.prepare(query)
            attributes = statement.get_attributes()
            if not attributes:
                raise Invalid("The query returns no columns (only SELECT-like queries import)")
            columns = [(a.name, *_column_type(a.type.name)) for a in attributes]
            names = [name for name, _, _ in columns]
            if len(set(names)) != len(names):
                raise Invalid("The query returns two columns of the same name; rename one (AS)")
            schema = pa.schema([(name, arrow) for name, arrow, _ in columns])
            writer = pq.ParquetWriter(target, schema, compression="zstd")

            def write(batch: list[Any]) -> int:
                # Converting and compressing a batch is CPU work: off the event loop.
                assert writer is not None
                arrays = [
                    pa.array([convert(record[i]) for record in batch], type=arrow)
                    for i, (_, arrow, convert) in enumerate(columns)
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                return target.stat().st_size

            cursor = await statement.cursor()
            while batch := await cursor.fetch(settings.sql_batch_rows):
                written = await asyncio.to_thread(write, batch)
                rows += len(batch)
                if written > settings.max_upload_bytes:
                    raise Invalid(
                        f"The query's result is larger than max_upload_bytes "
                        f"({settings.max_upload_bytes})"
                    )
    except asyncpg.QueryCanceledError as exc:
        raise Invalid(
            "The query ran longer than sql_statement_timeout_seconds "
            f"({settings.sql_statement_timeout_seconds:g} s)"
        ) from exc
    except asyncpg.ReadOnlySQLTransactionError as exc:
        raise Invalid(f"Imports only read; PostgreSQL refused a write: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise Invalid(f"PostgreSQL refused the query: {type(exc).__name__}: {exc}") from exc
    except (OSError, asyncpg.ConnectionDoesNotExistError) as exc:
        raise SourceUnreachable(
            f"The connection to PostgreSQL broke: {type(exc).__name__}"
        ) from exc
    finally:
        if writer is not None:
            writer.close()
        await conn.close()
    if rows == 0:
        raise Invalid("The query returned no rows")
    return rows


async def fetch_sql(data: JobData, source: Mapping[str, Any], workdir: Path) -> Fetched:
    """``{"integration_id", "query"}``: the query's result, written to Parquet."""
    query = str(source["query"])
    integration = await resolve(data, str(source["integration_id"]), "sql")
    target = workdir / "query.parquet"
    try:
        rows = await _query_to_parquet(integration, query, target, data)
    except InwireError as exc:
        exc.message = redact(exc.message, integration.credentials.values())
        raise
    except SourceUnreachable:
        raise
    except Exception as exc:
        # The job's error is this message: make sure no credential is quoted in it.
        text = redact(f"{type(exc).__name__}: {exc}", integration.credentials.values())
        raise RuntimeError(text) from None
    return Fetched(
        path=target,
        filename=f"{layout.safe_filename(integration.name) or 'query'}.parquet",
        format="parquet",
        lineage_kind="sql",
        details={"integration_id": integration.id, "query": query, "rows": rows},
    )
