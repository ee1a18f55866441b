"""A drift reference from an uploaded body: Parquet, CSV or JSON rows, kept as columns."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import polars as pl

from inwire.kit.errors import Invalid, UnsupportedMediaType

PARQUET_MAGIC = b"PAR1"
MEDIA_TYPES = ("application/json", "text/csv", "application/vnd.apache.parquet")


def _bad(message: str) -> Invalid:
    return Invalid(message, details=[{"field": "body", "message": message}])


def _frame(body: bytes, media_type: str) -> pl.DataFrame:
    kind = media_type.split(";")[0].strip().lower()
    if kind in ("application/vnd.apache.parquet", "application/x-parquet") or (
        kind == "application/octet-stream" and body[:4] == PARQUET_MAGIC
    ):
        try:
            return pl.read_parquet(io.BytesIO(body))
        except Exception as exc:
            raise _bad(f"Not a readable Parquet file: {exc}") from exc
    if kind in ("text/csv", "application/csv"):
        try:
            return pl.read_csv(io.BytesIO(body), infer_schema_length=10_000)
        except Exception as exc:
            raise _bad(f"Not a readable CSV file: {exc}") from exc
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _bad(f"Not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("inputs", data.get("dataframe_records"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise _bad('JSON must be a list of row objects (or {"inputs": [...]})')
        try:
            return pl.DataFrame(data, infer_schema_length=None)
        except Exception as exc:
            raise _bad(f"Rows do not form a table: {exc}") from exc
    raise UnsupportedMediaType(
        f"Send the reference as {', '.join(MEDIA_TYPES)}",
        details=[{"field": "Content-Type", "message": f"got {media_type or 'none'}"}],
    )


def parse_reference(
    body: bytes, media_type: str, *, max_rows: int
) -> tuple[dict[str, list[Any]], int]:
    """The reference's columns (at most ``max_rows`` rows, a uniform sample beyond) and the
    number of rows the upload held."""
    if not body:
        raise _bad("The body is empty: send the reference rows")
    frame = _frame(body, media_type)
    total = frame.height
    if total == 0 or frame.width == 0:
        raise _bad("The reference has no rows")
    if total > max_rows:
        keep = sorted(random.Random(0).sample(range(total), max_rows))
        frame = frame[keep]
    columns = frame_columns(frame)
    return columns, total


def frame_columns(frame: pl.DataFrame) -> dict[str, list[Any]]:
    """A frame as ``{column: [values]}`` of JSON values (dates and others as strings)."""
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        series = frame[name]
        if series.dtype.is_temporal() or not (
            series.dtype.is_numeric() or series.dtype in (pl.String, pl.Boolean, pl.Categorical)
        ):
            series = series.cast(pl.String, strict=False)
        columns[name] = series.to_list()
    return columns
