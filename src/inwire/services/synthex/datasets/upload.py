"""Receiving a data file over HTTP, streamed into the object store.

The body is never held whole: each chunk the server receives goes on to the store (the
file store writes a temp file and renames it; S3 uploads parts), with the first bytes
kept for format checks. Two ways to send a file:

* ``multipart/form-data`` with the file in a part named ``file`` (``curl -F file=@x.csv``);
  other small parts are form fields (name, description, tags, format, …);
* the raw bytes as the body (``curl --data-binary @x.csv -H 'Content-Type: text/csv'``)
  with the file name in ``?filename=``, ``Content-Disposition`` or ``X-Filename``.

The format must be known before the first byte is stored: from ``format``, the file name or
the media type; an unknown one is a 415 and nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from inwire.kit.errors import Invalid, PayloadTooLarge
from inwire.kit.ids import new_id
from inwire.kit.storage import ObjectStore
from inwire.services.synthex.data import formats, layout

#: Largest form field (name, description, tags, …) a multipart upload may carry.
MAX_FIELD_BYTES = 64 * 1024
#: Most form fields.
MAX_FIELDS = 50
_TAIL = 8


@dataclass
class ReceivedUpload:
    """A file stored under ``key``, with what the request said about it."""

    key: str
    filename: str
    format: str
    size: int
    head: bytes
    tail: bytes
    #: Multipart form fields (all values of a repeated field, in order).
    fields: dict[str, list[str]] = field(default_factory=dict)


class _Tracker:
    """Counts the file's bytes against the limit and keeps its first and last bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.head = bytearray()
        self.tail = b""

    def take(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"The file exceeds the upload limit of {self.max_bytes} bytes",
                details=[{"field": "file", "message": f"at most {self.max_bytes} bytes"}],
            )
        if len(self.head) < formats.HEAD_BYTES:
            self.head += chunk[: formats.HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + chunk)[-_TAIL:]
        return chunk


def _filename_from_headers(request: Request) -> str | None:
    disposition = request.headers.get("content-disposition")
    if disposition:
        _, params = parse_options_header(disposition)
        name = params.get(b"filename")
        if name:
            return name.decode("utf-8", "replace")
    return request.headers.get("x-filename")


class _Multipart:
    """Feeds a multipart body to python-multipart and routes the file part's bytes out."""

    def __init__(self, boundary: bytes, declared_format: str | None) -> None:
        self.declared_format = declared_format
        self.fields: dict[str, list[str]] = {}
        self.file_chunks: list[bytes] = []
        self.filename: str | None = None
        self.media_type: str | None = None
        self.format: str | None = None
        self.file_seen = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: str | None = None  # "file", "field" or "skip"
        self._field_name = ""
        self._field_value = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._part = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None or name == "file":
            if self.file_seen:
                raise Invalid(
                    "Send one file per upload",
                    details=[{"field": "file", "message": "more than one file part"}],
                )
            self.file_seen = True
            self.filename = (filename or b"").decode("utf-8", "replace") or None
            self.media_type = self._headers.get(b"content-type", b"").decode("latin-1") or None
            form_format = self.fields.get("format") or []
            declared = self.declared_format or (form_format[-1] if form_format else None)
            self.format = formats.format_of(self.filename, declared, self.media_type)
            self._part = "file"
            return
        if len(self.fields) >= MAX_FIELDS:
            raise Invalid(f"At most {MAX_FIELDS} form fields", details=[{"field": name}])
        self._part = "field"
        self._field_name = name
        self._field_value = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.file_chunks.append(data[start:end])
        elif self._part == "field":
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise Invalid(
                    f"Form field {self._field_name!r} is too long",
                    details=[{"field": self._field_name, "message": "too long"}],
                )

    def _part_end(self) -> None:
        if self._part == "field":
            value = self._field_value.decode("utf-8", "replace")
            self.fields.setdefault(self._field_name, []).append(value)
        self._part = None


async def receive_upload(
    request: Request,
    store: ObjectStore,
    *,
    org_id: str,
    max_bytes: int,
    filename: str | None = None,
    declared_format: str | None = None,
) -> ReceivedUpload:
    """Stream the request's file into the store under a new upload key.

    415 for an unknown format (before anything is stored), 413 past ``max_bytes``, 400 for
    a body without a file. On any error nothing stays in the store.
    """
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > max_bytes + 1024 * 1024:
        raise PayloadTooLarge(
            f"The file exceeds the upload limit of {max_bytes} bytes",
            details=[{"field": "file", "message": f"at most {max_bytes} bytes"}],
        )
    media, params = parse_options_header(request.headers.get("content-type", ""))
    key = layout.upload_key(org_id, new_id("upl"), "upload")
    tracker = _Tracker(max_bytes)

    if media == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise Invalid("A multipart body needs a boundary", details=[{"field": "content-type"}])
        form = _Multipart(boundary, declared_format)

        async def file_chunks() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                form.parser.write(chunk)
                if form.file_chunks:
                    data = b"".join(form.file_chunks)
                    form.file_chunks.clear()
                    yield tracker.take(data)
            form.parser.finalize()
            if not form.file_seen:
                raise Invalid(
                    "The form has no file: send it in a part named 'file'",
                    details=[{"field": "file", "message": "missing"}],
                )

        await store.put(key, file_chunks())
        assert form.format is not None
        return ReceivedUpload(
            key=key,
            filename=filename or form.filename or f"upload.{form.format}",
            format=form.format,
            size=tracker.size,
            head=bytes(tracker.head),
            tail=tracker.tail,
            fields=form.fields,
        )

    name = filename or _filename_from_headers(request)
    fmt = formats.format_of(name, declared_format, media.decode("latin-1") or None)

    async def body_chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield tracker.take(chunk)

    await store.put(key, body_chunks())
    return ReceivedUpload(
        key=key,
        filename=name or f"upload.{fmt}",
        format=fmt,
        size=tracker.size,
        head=bytes(tracker.head),
        tail=tracker.tail,
    )
