"""Rules of run artifacts: safe paths, streamed uploads and downloads, listing by folder.

A run's artifacts live under ``training/<org>/<run id>/artifacts/<path>`` in the object
store. Paths are relative, ``/``-separated, without empty, ``.`` or ``..`` segments,
backslashes or control characters, so no path reaches outside its run's folder.
Folders are not objects: a folder exists while a file under it does.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from inwire.kit.errors import Invalid, InwireError, NotFound, PayloadTooLarge
from inwire.kit.storage import ObjectInfo, ObjectReader, ObjectStore, validate_key

log = logging.getLogger(__name__)

#: Media types of HTML forms, which say nothing about the file (curl --data-binary sends
#: the first by default).
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
#: Longest artifact path (the object key adds the run's prefix, within S3's 1024 bytes).
MAX_PATH_BYTES = 900


def run_prefix(org: str, run_id: str) -> str:
    """Object-store prefix of a run's artifacts (ends with ``/``)."""
    return f"training/{org}/{run_id}/artifacts/"


def clean_path(path: str, *, folder: bool = False) -> str:
    """``path`` checked and without leading or trailing ``/``; ``""`` is the root folder
    (allowed only when ``folder``). Raises ``Invalid`` naming the problem."""
    stripped = path.strip("/")
    if not stripped:
        if folder:
            return ""
        raise Invalid("An artifact path is required", details=[{"field": "path"}])
    if len(stripped.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise Invalid(
            f"Artifact paths are at most {MAX_PATH_BYTES} bytes", details=[{"field": "path"}]
        )
    try:
        validate_key(stripped)
    except InwireError as exc:
        raise Invalid(
            f"Invalid artifact path {path!r}: {exc.message}",
            details=[{"field": "path", "message": exc.message}],
        ) from exc
    return stripped


def artifact_key(org: str, run_id: str, path: str) -> str:
    """The object key of one artifact file."""
    return run_prefix(org, run_id) + clean_path(path)


async def _limited(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"The artifact exceeds the upload limit of {max_bytes} bytes",
                details=[{"field": "body", "message": f"at most {max_bytes} bytes"}],
            )
        yield chunk


def content_type_of(path: str, declared: str | None) -> str:
    """The declared media type, else one guessed from the file name, else octet-stream."""
    media = (declared or "").split(";", 1)[0].strip().lower()
    if declared and media and media not in _FORM_TYPES:
        return declared.strip()
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


async def upload(
    store: ObjectStore,
    org: str,
    run_id: str,
    path: str,
    chunks: AsyncIterable[bytes],
    *,
    max_bytes: int,
    content_type: str | None = None,
) -> ObjectInfo:
    """Stream ``chunks`` into the run's artifact at ``path`` (replacing one already there).

    Nothing is stored when the stream fails or passes ``max_bytes`` (413).
    """
    key = artifact_key(org, run_id, path)
    return await store.put(
        key, _limited(chunks, max_bytes), content_type=content_type_of(path, content_type)
    )


async def open_file(store: ObjectStore, org: str, run_id: str, path: str) -> ObjectReader:
    """Open an artifact file for a streamed download; 404 when there is none."""
    key = artifact_key(org, run_id, path)
    try:
        return await store.open(key)
    except NotFound as exc:
        raise NotFound(f"Run {run_id!r} has no artifact {clean_path(path)!r}") from exc


@dataclass(frozen=True)
class ArtifactEntry:
    """A file or a folder in a run's artifacts."""

    path: str
    is_dir: bool
    size: int | None = None
    last_modified: datetime | None = None


async def list_folder(
    store: ObjectStore, org: str, run_id: str, path: str = ""
) -> list[ArtifactEntry]:
    """The files and folders directly in ``path`` (the root by default), folders first.

    A path naming a file lists that file alone; a path naming nothing lists nothing.
    """
    folder = clean_path(path, folder=True)
    root = run_prefix(org, run_id)
    prefix = root + (folder + "/" if folder else "")
    entries: dict[str, ArtifactEntry] = {}
    for info in await store.list(prefix):
        rest = info.key[len(prefix) :]
        name, sep, _ = rest.partition("/")
        rel = f"{folder}/{name}" if folder else name
        if sep:
            entries.setdefault(rel, ArtifactEntry(rel, True))
        else:
            entries[rel] = ArtifactEntry(rel, False, info.size, info.last_modified)
    if not entries and folder:
        try:
            info = await store.head(root + folder)
        except NotFound:
            return []
        return [ArtifactEntry(folder, False, info.size, info.last_modified)]
    return sorted(entries.values(), key=lambda e: (not e.is_dir, e.path))


async def delete(store: ObjectStore, org: str, run_id: str, path: str) -> int:
    """Delete an artifact file, or a folder with everything in it; the files deleted.

    404 when the path names nothing.
    """
    clean = clean_path(path)
    root = run_prefix(org, run_id)
    keys = [i.key for i in await store.list(root + clean + "/")]
    if await store.exists(root + clean):
        keys.append(root + clean)
    if not keys:
        raise NotFound(f"Run {run_id!r} has no artifact {clean!r}")
    for key in keys:
        await store.delete(key)
    return len(keys)


async def delete_run_artifacts(store: ObjectStore, org: str, run_id: str) -> None:
    """Remove every artifact of a deleted run (a background task: failures are logged)."""
    try:
        for info in await store.list(run_prefix(org, run_id)):
            await store.delete(info.key)
    except Exception:
        log.exception("could not delete the artifacts of run %s", run_id)
