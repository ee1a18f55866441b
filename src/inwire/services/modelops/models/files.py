"""A model version's files in the object store: copied from a run, uploaded, read back.

A version's files live under ``modelops/<org>/<model id>/<version id>/files/<path>``.
Versions registered from a training run copy the run's artifact (a file or a folder) from
``training/<org>/<run id>/artifacts/<path>`` in Model Training's store: a server-side copy
when both services share the store, a streamed one otherwise. Uploads stream each file
part of a multipart body straight to its key; nothing is held whole in memory. Paths are
relative, ``/``-separated, without empty, ``.`` or ``..`` segments, backslashes or control
characters, so none reaches outside its version's folder.
"""

from __future__ import annotations

import logging
import mimetypes
import tarfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from inwire.kit.errors import Invalid, InwireError, NotFound, PayloadTooLarge
from inwire.kit.storage import ObjectStore, validate_key

log = logging.getLogger(__name__)

#: Longest path of a file inside a version (the key adds the version's prefix).
MAX_PATH_BYTES = 600
#: Largest form field (description, tags, signature, examples, …) of an upload.
MAX_FIELD_BYTES = 1024 * 1024
#: Most form fields of an upload.
MAX_FIELDS = 50
#: Largest MLmodel file read for flavors and signature.
MAX_MLMODEL_BYTES = 1024 * 1024
_TAR_BLOCK = 512


@dataclass(frozen=True)
class StoredFile:
    """A file of a version: its path inside the version and its size."""

    path: str
    size: int


def version_prefix(org: str, model_id: str, version_id: str) -> str:
    """Object-store prefix of a version's files (ends with ``/``)."""
    return f"modelops/{org}/{model_id}/{version_id}/files/"


def model_prefix(org: str, model_id: str) -> str:
    """Object-store prefix of every version of a model (ends with ``/``)."""
    return f"modelops/{org}/{model_id}/"


def run_artifacts_prefix(org: str, run_id: str) -> str:
    """Where Model Training keeps a run's artifacts (ends with ``/``)."""
    return f"training/{org}/{run_id}/artifacts/"


def clean_path(path: str, *, field: str = "path", folder: bool = False) -> str:
    """``path`` checked, without leading or trailing ``/``; ``""`` (the root) only when
    ``folder``. ``Invalid`` names ``field`` and the problem."""
    stripped = path.strip("/")
    if not stripped:
        if folder:
            return ""
        raise Invalid("A file path is required", details=[{"field": field}])
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise Invalid(
            f"File paths are at most {MAX_PATH_BYTES} bytes",
            details=[{"field": field, "message": "too long"}],
        )
    try:
        validate_key(stripped)
    except InwireError as exc:
        raise Invalid(
            f"Invalid path {path!r}: {exc.message}",
            details=[{"field": field, "message": exc.message}],
        ) from exc
    return stripped


# -- from a run -------------------------------------------------------------------------------


async def run_artifact_files(
    training_store: ObjectStore, org: str, run_id: str, artifact_path: str, *, max_files: int
) -> tuple[str, list[StoredFile]]:
    """The run's files under ``artifact_path`` (a folder, or one file) and the key prefix
    they share; ``Invalid`` naming ``source.artifact_path`` when there are none."""
    path = clean_path(artifact_path, field="source.artifact_path", folder=True)
    root = run_artifacts_prefix(org, run_id)
    folder = root + (path + "/" if path else "")
    infos = await training_store.list(folder)
    if infos:
        if len(infos) > max_files:
            raise Invalid(
                f"The artifact holds {len(infos)} files; a version holds at most {max_files}",
                details=[{"field": "source.artifact_path", "message": "too many files"}],
            )
        return folder, [StoredFile(i.key[len(folder) :], i.size) for i in infos]
    if path:
        try:
            info = await training_store.head(root + path)
        except NotFound:
            pass
        else:
            parent = root + path.rpartition("/")[0]
            parent = parent if parent.endswith("/") else parent + "/"
            return parent, [StoredFile(info.key[len(parent) :], info.size)]
    where = f"at {path!r}" if path else "at all"
    raise Invalid(
        f"Run {run_id!r} has no artifacts {where}",
        details=[{"field": "source.artifact_path", "message": "no such artifact"}],
    )


async def copy_files(
    source: ObjectStore,
    target: ObjectStore,
    source_prefix: str,
    files: Sequence[StoredFile],
    target_prefix: str,
) -> None:
    """Copy ``files`` from ``source_prefix`` to ``target_prefix``: server-side within one
    store, streamed between two."""
    for f in files:
        src, dst = source_prefix + f.path, target_prefix + f.path
        if source is target:
            await target.copy(src, dst)
        else:
            info = await source.head(src)
            await target.put(dst, source.get_stream(src), content_type=info.content_type)


async def read_small(store: ObjectStore, key: str, limit: int = MAX_MLMODEL_BYTES) -> bytes:
    """The content of a small object; ``Invalid`` when it is larger than ``limit``."""
    info = await store.head(key)
    if info.size > limit:
        raise Invalid(
            f"{key.rpartition('/')[2]} is larger than {limit} bytes",
            details=[{"field": key.rpartition("/")[2], "message": "too large"}],
        )
    return await store.get_bytes(key)


async def purge(store: ObjectStore, prefix: str) -> None:
    """Remove every object under ``prefix`` (a background task: failures are logged)."""
    try:
        for info in await store.list(prefix):
            await store.delete(info.key)
    except Exception:
        log.exception("could not delete the files under %s", prefix)


# -- uploads ----------------------------------------------------------------------------------


@dataclass
class ReceivedFiles:
    """What a multipart upload stored and said."""

    files: list[StoredFile] = field(default_factory=list)
    #: Form fields (the last value of each).
    fields: dict[str, str] = field(default_factory=dict)


class _Events:
    """python-multipart callbacks turned into a queue of events, drained after each write."""

    def __init__(self, boundary: bytes) -> None:
        self.queue: list[tuple[str, object]] = []
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._hfield,
                "on_header_value": self._hvalue,
                "on_header_end": self._hend,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def _begin(self) -> None:
        self._headers = {}

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        media = self._headers.get(b"content-type", b"").decode("latin-1") or None
        if filename is not None:
            self.queue.append(("file", (filename.decode("utf-8", "replace"), media)))
        else:
            self.queue.append(("field", name))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.queue.append(("data", data[start:end]))

    def _end(self) -> None:
        self.queue.append(("end", None))


async def _events(request: Request, boundary: bytes) -> AsyncIterator[tuple[str, object]]:
    events = _Events(boundary)
    async for chunk in request.stream():
        events.parser.write(chunk)
        queued, events.queue = events.queue, []
        for event in queued:
            yield event
    events.parser.finalize()
    for event in events.queue:
        yield event


async def receive_files(
    request: Request,
    store: ObjectStore,
    prefix: str,
    *,
    max_bytes: int,
    max_files: int,
) -> ReceivedFiles:
    """Stream every file part of a ``multipart/form-data`` request to ``prefix`` + its
    filename (which may hold folders: ``model/MLmodel``); collect the other parts as
    fields. 413 past ``max_bytes`` in all, 400 for a bad body; the caller removes what was
    stored when this raises."""
    media, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise Invalid(
            "Send the files as multipart/form-data, one part per file",
            details=[{"field": "content-type", "message": "expected multipart/form-data"}],
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + 1024 * 1024:
        raise PayloadTooLarge(
            f"The upload exceeds the limit of {max_bytes} bytes",
            details=[{"field": "file", "message": f"at most {max_bytes} bytes"}],
        )
    received = ReceivedFiles()
    seen: set[str] = set()
    total = 0
    events = _events(request, boundary).__aiter__()

    async def part_body() -> AsyncIterator[bytes]:
        nonlocal total
        async for kind, value in events:
            if kind == "end":
                return
            assert isinstance(value, bytes)
            total += len(value)
            if total > max_bytes:
                raise PayloadTooLarge(
                    f"The upload exceeds the limit of {max_bytes} bytes",
                    details=[{"field": "file", "message": f"at most {max_bytes} bytes"}],
                )
            yield value

    async for kind, value in events:
        if kind == "file":
            assert isinstance(value, tuple)
            filename, media_type = value
            path = clean_path(filename, field=f"file {filename!r}")
            if path in seen:
                raise Invalid(
                    f"Two files have the path {path!r}",
                    details=[{"field": "file", "message": f"duplicate path {path}"}],
                )
            if len(seen) >= max_files:
                raise Invalid(
                    f"A version holds at most {max_files} files",
                    details=[{"field": "file", "message": "too many files"}],
                )
            seen.add(path)
            content_type = media_type or mimetypes.guess_type(path)[0]
            info = await store.put(prefix + path, part_body(), content_type=content_type)
            received.files.append(StoredFile(path, info.size))
        elif kind == "field":
            name = str(value)
            if len(received.fields) >= MAX_FIELDS:
                raise Invalid(f"At most {MAX_FIELDS} form fields", details=[{"field": name}])
            buffer = bytearray()
            async for chunk in part_body():
                buffer += chunk
                if len(buffer) > MAX_FIELD_BYTES:
                    raise Invalid(
                        f"Form field {name!r} is longer than {MAX_FIELD_BYTES} bytes",
                        details=[{"field": name, "message": "too long"}],
                    )
            received.fields[name] = buffer.decode("utf-8", "replace")
    if not received.files:
        raise Invalid(
            "The upload has no files: send each file in a part with a filename",
            details=[{"field": "file", "message": "missing"}],
        )
    return received


# -- reading back ---------------------------------------------------------------------------


async def list_files(store: ObjectStore, prefix: str) -> list[StoredFile]:
    """Every file of a version, by path."""
    return [StoredFile(i.key[len(prefix) :], i.size) for i in await store.list(prefix)]


def folder_entries(files: Sequence[StoredFile], folder: str) -> list[tuple[str, bool, int | None]]:
    """``(path, is_dir, size)`` of what lies directly in ``folder``, folders first."""
    base = folder + "/" if folder else ""
    entries: dict[str, tuple[str, bool, int | None]] = {}
    for f in files:
        if not f.path.startswith(base):
            continue
        name, sep, _ = f.path[len(base) :].partition("/")
        rel = base + name
        entries[rel] = (rel, True, None) if sep else (rel, False, f.size)
    return sorted(entries.values(), key=lambda e: (not e[1], e[0]))


async def tar_stream(
    store: ObjectStore, prefix: str, files: Sequence[StoredFile]
) -> AsyncIterator[bytes]:
    """A POSIX (pax) tar archive of ``files``, written as their bytes stream from the store.

    Each member is a header block, the content and zero padding to 512 bytes; two zero
    blocks end the archive (POSIX.1-2001 ``pax`` format, which ``tar`` and Python's
    ``tarfile`` read).
    """
    for f in files:
        reader = await store.open(prefix + f.path)
        try:
            member = tarfile.TarInfo(f.path)
            member.size = reader.info.size
            member.mtime = int(reader.info.last_modified.timestamp())
            member.mode = 0o644
            yield member.tobuf(format=tarfile.PAX_FORMAT)
            sent = 0
            async for chunk in reader:
                sent += len(chunk)
                yield chunk
            if sent != member.size:
                raise RuntimeError(f"{f.path} changed size while it was read")
            pad = -sent % _TAR_BLOCK
            if pad:
                yield b"\0" * pad
        finally:
            await reader.aclose()
    yield b"\0" * (2 * _TAR_BLOCK)
