"""File formats Synthex imports, and their conversion to Parquet without loading the file.

CSV/TSV are read by pyarrow's streaming CSV reader in blocks of ``block_bytes`` (it also
transcodes non-UTF-8 text on the fly), JSON Lines by pyarrow's streaming JSON reader, a
JSON array is first rewritten as JSON Lines object by object, Parquet is re-read by row
group; every batch is appended to a Parquet writer, so memory stays near a few blocks
whatever the file size. Excel workbooks are bounded by the format (1,048,576 rows a sheet)
and are read whole with calamine.

Detection works on the file's first bytes (the *head*): the encoding with
charset-normalizer, the delimiter with the csv module's sniffer and a consistency count,
the header row by comparing the first row with the rest.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from inwire.kit.errors import Invalid, UnsupportedMediaType

FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "json", "jsonl", "excel")
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
}
MEDIA_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "excel",
    "application/vnd.ms-excel": "excel",
}
TEXT_FORMATS = frozenset({"csv", "tsv", "json", "jsonl"})
#: Bytes of the head kept for detection and validation.
HEAD_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")

_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def format_of(
    filename: str | None, declared: str | None = None, media_type: str | None = None
) -> str:
    """The format of an upload: declared, else from the file name, else the media type.

    An unknown format is a 415 naming the supported ones.
    """
    supported = ", ".join(FORMATS)
    if declared:
        fmt = declared.strip().lower()
        if fmt not in FORMATS:
            raise UnsupportedMediaType(
                f"Unsupported format {declared!r}; supported: {supported}",
                details=[{"field": "format", "message": f"one of {supported}"}],
            )
        return fmt
    suffix = Path(filename or "").suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    media = (media_type or "").split(";", 1)[0].strip().lower()
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]
    what = f"file type {suffix!r}" if suffix else "a file without a known extension"
    raise UnsupportedMediaType(
        f"Cannot import {what}; supported formats: {supported} "
        "(name the file accordingly or pass format=)",
        details=[{"field": "filename", "message": f"one of {', '.join(EXTENSIONS)}"}],
    )


def _malformed(message: str) -> Invalid:
    return Invalid(message, details=[{"field": "file", "message": message}], code="MALFORMED_FILE")


def check_head(fmt: str, head: bytes, tail: bytes, size: int) -> None:
    """Refuse (400 ``MALFORMED_FILE``) a file whose first and last bytes cannot be ``fmt``.

    The whole file is only read by the import job; this catches the common mistakes at
    upload time: an empty file, a binary file sent as text, the wrong container format.
    """
    if size == 0:
        raise _malformed("The file is empty")
    if fmt == "parquet":
        if not (head.startswith(_PARQUET_MAGIC) and tail.endswith(_PARQUET_MAGIC)):
            raise _malformed("Not a Parquet file (missing the PAR1 markers)")
        return
    if fmt == "excel":
        if not (head.startswith(_ZIP_MAGIC) or head.startswith(_OLE_MAGIC)):
            raise _malformed("Not an Excel workbook (.xlsx or .xls)")
        return
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _malformed(f"The file is binary, not {fmt.upper()} text")
    text = decode_head(head, detect_encoding(head))
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise _malformed("The file holds only white space")
    if fmt == "json" and stripped[0] not in "[{":
        raise _malformed("Not JSON: expected an array of objects ('[') or an object ('{')")
    if fmt == "jsonl":
        first = stripped.split("\n", 1)[0].strip()
        complete = "\n" in stripped or len(head) == size
        if complete:
            try:
                json.loads(first)
            except ValueError as exc:
                raise _malformed(f"Not JSON Lines: the first line is not JSON ({exc})") from exc


def detect_encoding(head: bytes) -> str:
    """The text encoding of a file from its head: UTF-8 when it decodes, else a guess."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # A multi-byte character may be cut at the end of the head.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    # Windows-1252 is what most non-UTF-8 tables are in (Excel's CSV export in Western
    # locales); short samples leave charset-normalizer torn between code pages, so it is
    # taken whenever it reads the head as Western European text.
    try:
        western = head.decode("cp1252")
    except UnicodeDecodeError:
        western = ""
    if western and all(
        ch.isascii() or "\u00c0" <= ch <= "\u00ff" or ch in _CP1252_COMMON for ch in western
    ):
        return "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(head[:65536]).best()
    return codecs.lookup(best.encoding).name if best is not None else "cp1252"


#: Windows-1252's symbols (bytes 0x80-0xBF that are not letters: quotes, dashes, euro,
#: degree, currency signs, ...); its letters there (Š, Ÿ, ...) mark other code pages' text.
_CP1252_COMMON = frozenset(
    ch
    for ch in bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore")
    if not unicodedata.category(ch).startswith("L")
)


def decode_head(head: bytes, encoding: str) -> str:
    """The head as text, dropping a character cut at its end."""
    return codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)


@dataclass(frozen=True)
class Dialect:
    """How a delimited text file is written."""

    delimiter: str
    header: bool
    encoding: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form (job results)."""
        return {"delimiter": self.delimiter, "header": self.header, "encoding": self.encoding}


def _lines(text: str, *, whole: bool, limit: int = 200) -> list[str]:
    lines = text.splitlines()
    if len(lines) > 1 and not whole:
        lines = lines[:-1]  # the last line of a head may be cut
    return [line for line in lines[:limit] if line.strip()]


def _sniff_delimiter(lines: list[str]) -> str:
    sample = "\n".join(lines)
    try:
        found = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        found = ""
    best, best_score = ",", -1.0
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(io.StringIO(sample), delimiter=delimiter)]
        if not counts or max(counts) < 2:
            continue
        mode = max(set(counts), key=counts.count)
        consistent = counts.count(mode) / len(counts)
        score = consistent * 10 + min(mode, 50) / 50 + (0.5 if delimiter == found else 0.0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
_DATEISH = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


def _kind(cell: str) -> str:
    cell = cell.strip()
    if not cell:
        return "empty"
    if _NUMBER.match(cell):
        return "number"
    if _DATEISH.match(cell):
        return "date"
    return "text"


def _has_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns rather than holding data.

    A header has no numbers or dates, no empty or repeated names, and differs from the
    rows under it: some column holds numbers or dates below its name, or the name appears
    nowhere in its column. When the file is all text and nothing tells, a header is
    assumed (most files have one).
    """
    if len(rows) < 2:
        return bool(rows) and all(_kind(c) == "text" for c in rows[0])
    first, body = rows[0], rows[1:]
    kinds = [_kind(c) for c in first]
    if any(k in ("number", "date") for k in kinds):
        return False
    if "empty" in kinds or len({c.strip() for c in first}) < len(first):
        return False
    for i in range(len(first)):
        column_kinds = {_kind(r[i]) for r in body if i < len(r)} - {"empty"}
        if column_kinds and column_kinds <= {"number", "date"}:
            return True
    for i, name in enumerate(first):
        if name.strip() in {r[i].strip() for r in body if i < len(r)}:
            return False
    return True


def detect_dialect(
    head: bytes,
    fmt: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
) -> Dialect:
    """Encoding, delimiter and header of a CSV/TSV file from its head; given values win."""
    enc = encoding or detect_encoding(head)
    text = decode_head(head, enc)
    lines = _lines(text, whole=len(head) < HEAD_BYTES)
    if delimiter is None:
        delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(lines)
    if header is None:
        rows = list(csv.reader(io.StringIO("\n".join(lines[:50])), delimiter=delimiter))
        header = _has_header(rows)
    return Dialect(delimiter=delimiter, header=header, encoding=enc)


# -- conversion --------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """A binary file that reports how far it has been read (progress of a streaming read)."""

    def __init__(self, f: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._f = f
        self._on_read = on_read
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.position += n
        self._on_read(self.position)
        return n


@dataclass
class Conversion:
    """What a conversion did: rows written, and how the file was read."""

    rows: int
    dialect: Dialect | None = None
    sheet: str | None = None


Progress = Callable[[float], None]
Check = Callable[[], None]


def _sanitised_names(names: list[str]) -> list[str]:
    """Column names that are non-empty, unique and at most 256 characters."""
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(names, start=1):
        base = (str(raw).strip() or f"column_{i}")[:250]
        name, n = base, 2
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        out.append(name)
    return out


#: Rows per Parquet row group the import writes (bounded by bytes too): small enough that
#: readers stream the file in small steps, large enough to compress well.
ROW_GROUP_ROWS = 65_536
ROW_GROUP_BYTES = 16 * 1024 * 1024


def _write_batches(
    batches: Iterator[Any],
    out: Path,
    progress: Progress,
    check: Check,
    position: Callable[[], float],
) -> int:
    """Write record batches to ``out`` in row groups of about ``ROW_GROUP_ROWS`` rows.

    Each group is written with ``write_table``, which closes it: ``write_batch`` would
    buffer up to a million rows in memory before closing a group.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    pending: list[Any] = []
    pending_rows = pending_bytes = rows = 0

    def flush() -> None:
        nonlocal pending_rows, pending_bytes
        if writer is not None and pending:
            writer.write_table(pa.Table.from_batches(pending))
        pending.clear()
        pending_rows = pending_bytes = 0

    try:
        for batch in batches:
            check()
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema, compression="zstd")
            pending.append(batch)
            pending_rows += batch.num_rows
            pending_bytes += batch.nbytes
            rows += batch.num_rows
            if pending_rows >= ROW_GROUP_ROWS or pending_bytes >= ROW_GROUP_BYTES:
                flush()
            progress(position())
        flush()
        if writer is None or rows == 0:
            raise _malformed("The file holds no rows")
    finally:
        if writer is not None:
            writer.close()
    return rows


def _csv_read_options(dialect: Dialect, block_bytes: int) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.ReadOptions(
        block_size=block_bytes,
        autogenerate_column_names=not dialect.header,
        encoding="utf8" if dialect.encoding in ("utf-8", "ascii") else dialect.encoding,
    )


def _csv_names(path: Path, dialect: Dialect) -> list[str]:
    """The column names (or pyarrow's ``f0``, ``f1``, … without a header) from the first row.

    Read with the csv module from the head: a second pyarrow reader would read ahead
    through the whole file in the background.
    """
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    text = decode_head(head, dialect.encoding).lstrip("\ufeff")
    first = next(csv.reader(io.StringIO(text), delimiter=dialect.delimiter), [])
    if not first:
        raise _malformed("The file has no rows")
    return list(first) if dialect.header else [f"f{i}" for i in range(len(first))]


def _csv_batches(
    path: Path, dialect: Dialect, block_bytes: int, seen: Callable[[int], None]
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=dialect.delimiter, newlines_in_values=True)
    names = _csv_names(path, dialect)
    # Every column is read as text: pyarrow's guesses would drop leading zeros (postal
    # codes) and fail on a late odd value; ``infer`` types the columns from all the data.
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True, column_types=dict.fromkeys(names, pa.string())
    )
    clean = _sanitised_names(list(names))
    with path.open("rb") as raw:
        counted = io.BufferedReader(_CountingReader(raw, seen), buffer_size=1024 * 1024)
        reader = pacsv.open_csv(
            counted,
            read_options=_csv_read_options(dialect, block_bytes),
            parse_options=parse,
            convert_options=convert,
        )
        for batch in reader:
            yield batch.rename_columns(clean)


def convert_csv(
    path: Path, out: Path, dialect: Dialect, *, block_bytes: int, progress: Progress, check: Check
) -> Conversion:
    """A CSV/TSV file to Parquet (every column text), streaming."""
    import pyarrow as pa

    size = max(1, path.stat().st_size)
    seen = [0]

    def on_read(n: int) -> None:
        seen[0] = n

    try:
        rows = _write_batches(
            _csv_batches(path, dialect, block_bytes, on_read),
            out,
            progress,
            check,
            lambda: seen[0] / size,
        )
    except pa.ArrowInvalid as exc:
        raise _malformed(f"Cannot read the file as {dialect_name(dialect)}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise _malformed(f"The file is not valid {dialect.encoding} text: {exc}") from exc
    return Conversion(rows=rows, dialect=dialect)


def dialect_name(dialect: Dialect) -> str:
    """``CSV (';'-delimited, latin-1)`` for messages."""
    return f"CSV ({dialect.delimiter!r}-delimited, {dialect.encoding})"


def convert_jsonl(
    path: Path, out: Path, *, block_bytes: int, progress: Progress, check: Check
) -> Conversion:
    """JSON Lines to Parquet, streaming."""
    import pyarrow as pa
    import pyarrow.json as pajson

    size = max(1, path.stat().st_size)
    seen = [0]

    def on_read(n: int) -> None:
        seen[0] = n

    def batches() -> Iterator[Any]:
        with path.open("rb") as raw:
            counted = io.BufferedReader(_CountingReader(raw, on_read), buffer_size=1024 * 1024)
            reader = pajson.open_json(
                counted, read_options=pajson.ReadOptions(block_size=block_bytes)
            )
            names: list[str] | None = None
            for batch in reader:
                if names is None:
                    names = _sanitised_names(batch.schema.names)
                yield batch.rename_columns(names)

    try:
        rows = _write_batches(batches(), out, progress, check, lambda: seen[0] / size)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if "JSON parse error" in str(exc) or "Invalid value" in str(exc):
            raise _malformed(f"Not valid JSON Lines: {exc}") from exc
        # Types that change after the first block: let polars read with a full-file schema.
        return _convert_jsonl_polars(path, out)
    return Conversion(rows=rows)


def _convert_jsonl_polars(path: Path, out: Path) -> Conversion:
    import polars as pl

    try:
        lf = pl.scan_ndjson(path, infer_schema_length=None)
        names = _sanitised_names(lf.collect_schema().names())
        lf.rename(dict(zip(lf.collect_schema().names(), names, strict=True))).sink_parquet(out)
    except pl.exceptions.PolarsError as exc:
        raise _malformed(f"Not valid JSON Lines: {exc}") from exc
    import pyarrow.parquet as pq

    return Conversion(rows=int(pq.read_metadata(out).num_rows))


def json_array_to_lines(path: Path, out: Path, *, progress: Progress, check: Check) -> int:
    """Rewrite a JSON array of objects (or one object) as JSON Lines, object by object."""
    decoder = json.JSONDecoder()
    size = max(1, path.stat().st_size)
    count = 0
    with path.open("r", encoding="utf-8-sig") as src, out.open("w", encoding="utf-8") as dst:
        buffer = src.read(1024 * 1024)
        pos = len(buffer) - len(buffer.lstrip())
        if buffer[pos : pos + 1] == "{":
            try:
                obj = json.loads(buffer + src.read())
            except ValueError as exc:
                raise _malformed(f"Not valid JSON: {exc}") from exc
            dst.write(json.dumps(obj, ensure_ascii=False) + "\n")
            return 1
        if buffer[pos : pos + 1] != "[":
            raise _malformed("Not JSON: expected an array of objects")
        pos += 1
        consumed = 0
        while True:
            while True:
                while pos < len(buffer) and buffer[pos] in " \t\r\n,":
                    pos += 1
                if pos < len(buffer) or not (more := src.read(1024 * 1024)):
                    break
                consumed += pos
                buffer, pos = buffer[pos:] + more, 0
            if pos >= len(buffer):
                raise _malformed("Not valid JSON: the array is not closed")
            if buffer[pos] == "]":
                break
            try:
                obj, end = decoder.raw_decode(buffer, pos)
            except ValueError as exc:
                more = src.read(1024 * 1024)
                if not more:
                    raise _malformed(f"Not valid JSON: {exc}") from exc
                consumed += pos
                buffer, pos = buffer[pos:] + more, 0
                continue
            if not isinstance(obj, dict):
                raise _malformed("Not a JSON array of objects: an element is not an object")
            dst.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
            pos = end
            if count % 10_000 == 0:
                check()
                progress(min(0.99, (consumed + pos) / size))
    if count == 0:
        raise _malformed("The JSON array holds no rows")
    return count


def convert_parquet(path: Path, out: Path, *, progress: Progress, check: Check) -> Conversion:
    """A Parquet file re-written row group by row group (checks it and normalises names)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _malformed(f"Not a readable Parquet file: {exc}") from exc
    groups = max(1, source.num_row_groups)
    done = [0]
    names = _sanitised_names(source.schema_arrow.names)

    def batches() -> Iterator[Any]:
        for i in range(source.num_row_groups):
            table = source.read_row_group(i)
            done[0] = i + 1
            for batch in table.to_batches():
                yield batch.rename_columns(names)

    try:
        rows = _write_batches(batches(), out, progress, check, lambda: done[0] / groups)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _malformed(f"Not a readable Parquet file: {exc}") from exc
    return Conversion(rows=rows)


def convert_excel(path: Path, out: Path, *, sheet: str | None, progress: Progress) -> Conversion:
    """One sheet of a workbook (the first, or ``sheet``) to Parquet."""
    import polars as pl

    try:
        frame = (
            pl.read_excel(path, sheet_name=sheet, engine="calamine")
            if sheet
            else (pl.read_excel(path, sheet_id=1, engine="calamine"))
        )
    except Exception as exc:  # calamine raises its own types for broken workbooks
        raise _malformed(f"Cannot read the workbook: {exc}") from exc
    if frame.width == 0 or frame.height == 0:
        raise _malformed("The sheet holds no rows")
    frame.columns = _sanitised_names(frame.columns)
    progress(0.9)
    frame.write_parquet(out, compression="zstd")
    return Conversion(rows=frame.height, sheet=sheet)
