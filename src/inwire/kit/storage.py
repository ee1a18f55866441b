"""Object storage chosen by URL: one interface over a local folder, S3 or memory.

Services keep their blobs (datasets, artifacts, models, documents) behind :class:`ObjectStore`
and get one from :func:`open_object_store`:

* ``file:///abs/path``: a folder, the embedded default (``$INWIRE_HOME/objects``);
* ``s3://bucket/optional/prefix?endpoint_url=…&region=…``: AWS S3 or an S3-compatible server;
* ``memory://``: a private in-process store, for tests.

Every backend gives the same guarantees. Writes are atomic: a reader sees the old object or
the whole new one, never a partial one, and a failed or cancelled upload leaves nothing
behind. Uploads and downloads stream with memory bounded by one chunk (one part on S3), and
blocking disk and network calls run in worker threads so the event loop never waits on them.
Keys are ``/``-separated names checked by :func:`validate_key`, the same on every backend, so
switching backends never breaks a key.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import errno
import functools
import hashlib
import json
import logging
import mimetypes
import os
import re
import stat
import tempfile
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import (
    IO,
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    Self,
    TypeAlias,
    TypeVar,
)
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import url2pathname

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from inwire.kit.errors import Conflict, Invalid, InwireError, NotFound, Unavailable

if TYPE_CHECKING:
    from types import TracebackType

    from mypy_boto3_s3.client import S3Client

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "FileObjectStore",
    "MemoryObjectStore",
    "ObjectBody",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "PresignUnsupported",
    "S3ObjectStore",
    "open_object_store",
    "validate_key",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB: Final = 1024 * 1024
DEFAULT_CHUNK_SIZE: Final = 1 * MiB
"""Default size of the chunks a download yields."""
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
"""Content type stored when ``put`` is given none."""

MAX_KEY_BYTES: Final = 1024  # S3's limit on a key, applied everywhere
_MAX_SEGMENT_BYTES: Final = 255  # NAME_MAX of common filesystems, applied everywhere
# First segments the file backend keeps for itself; rejected on every backend.
_RESERVED_SEGMENTS: Final = frozenset({".tmp", ".meta"})
_FILE_WRITE_SIZE: Final = 1 * MiB  # coalesce small stream chunks into writes of this size
_MAX_PRESIGN_SECONDS: Final = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days

# S3 multipart limits: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
_S3_MIN_PART: Final = 5 * MiB
_S3_MAX_PART: Final = 5 * 1024 * MiB
_S3_MAX_PARTS: Final = 10_000
_S3_DEFAULT_PART: Final = 8 * MiB

ObjectBody: TypeAlias = bytes | AsyncIterable[bytes]
"""What ``put`` accepts: the whole body, or an async stream of chunks read as it uploads."""

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object.

    ``etag`` changes whenever the content changes; compare it, never parse it (an S3
    multipart ETag is not a content hash). ``sha256`` is the hex SHA-256 of the content when
    the store knows it: always in ``put``'s result; in ``head`` for file and memory objects
    and for S3 objects written in one PUT. S3 ``list`` entries carry neither ``content_type``
    nor ``sha256``; ``head`` the object for them.
    """

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str | None = None
    sha256: str | None = None


class PresignUnsupported(InwireError):
    """The backend cannot hand out presigned URLs (501); stream the object instead."""

    status = 501
    code = "NOT_IMPLEMENTED"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ``Invalid``.

    A key is a non-empty ``/``-separated path of at most 1024 UTF-8 bytes: relative, without
    empty, ``.`` or ``..`` segments, backslashes or control characters (NUL included), each
    segment at most 255 bytes, and not under the reserved ``.tmp/`` or ``.meta/`` folders.
    """
    if not isinstance(key, str) or not key:
        raise Invalid("Object key must be a non-empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise Invalid("Object key must be valid UTF-8") from exc
    if size > MAX_KEY_BYTES:
        raise Invalid(f"Object key is longer than {MAX_KEY_BYTES} bytes")
    if _CONTROL_CHARS.search(key):
        raise Invalid("Object key must not contain control characters")
    if "\\" in key:
        raise Invalid("Object key must not contain backslashes")
    if key.startswith("/"):
        raise Invalid("Object key must be relative, not start with '/'")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise Invalid("Object key must not contain empty, '.' or '..' segments")
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise Invalid(f"Object key segments must be at most {_MAX_SEGMENT_BYTES} bytes")
    if segments[0] in _RESERVED_SEGMENTS:
        raise Invalid(f"Object keys must not start with '{segments[0]}/' (reserved)")
    return key


def _validate_prefix(prefix: str) -> str:
    """A listing prefix is valid when some key could start with it."""
    if not isinstance(prefix, str):
        raise Invalid("Listing prefix must be a string")
    if prefix:
        # "a/" and "a" are prefixes of "a/x" and "ax"; "a//" and "../" are prefixes of nothing.
        validate_key(prefix + "x")
    return prefix


def _check_content_type(content_type: str | None) -> str:
    if content_type is None:
        return DEFAULT_CONTENT_TYPE
    if (
        not isinstance(content_type, str)
        or not content_type.strip()
        or len(content_type) > 255
        or _CONTROL_CHARS.search(content_type)
        or not content_type.isascii()
    ):
        raise Invalid("Content type must be a short printable ASCII string")
    return content_type


def _expires_seconds(expires: int | timedelta) -> int:
    seconds = int(expires.total_seconds()) if isinstance(expires, timedelta) else int(expires)
    if not 1 <= seconds <= _MAX_PRESIGN_SECONDS:
        raise Invalid(f"Presigned URL lifetime must be 1 to {_MAX_PRESIGN_SECONDS} seconds")
    return seconds


async def _rechunk(source: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """Regroup a stream into chunks of exactly ``size`` bytes, the last one shorter.

    At most one chunk is held at a time, which is what keeps uploads bounded in memory.
    """
    buffer = bytearray()
    async for chunk in source:
        view = memoryview(chunk)  # raises TypeError for anything that is not bytes-like
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        while view:
            take = size - len(buffer)
            buffer += view[:take]
            view = view[take:]
            if len(buffer) == size:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


class ObjectReader:
    """An open object: its :class:`ObjectInfo` and an async iterator over its bytes.

    Returned by :meth:`ObjectStore.open`. The content is the object as it was when opened,
    even if it is overwritten meanwhile. Iterating to the end closes it; otherwise close it
    with :meth:`aclose` or ``async with`` (for a Starlette ``StreamingResponse``, pass
    ``reader.aclose`` as its background task).
    """

    def __init__(
        self,
        info: ObjectInfo,
        read: Callable[[int], Awaitable[bytes]],
        close: Callable[[], Awaitable[None]],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.info = info
        self._read = read
        self._close = close
        self._chunk_size = chunk_size
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        chunk = await self._read(self._chunk_size)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release the file or connection behind the reader; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ObjectStore(abc.ABC):
    """A flat namespace of immutable-per-version objects addressed by key.

    Build one with :func:`open_object_store` in an app's lifespan, close it on shutdown (or
    use ``async with``). Missing keys raise ``NotFound``, malformed keys ``Invalid``, an
    unreachable or misconfigured backend ``Unavailable``. Subclasses implement the ``_``
    hooks; the public methods validate arguments once for all of them.
    """

    can_presign: ClassVar[bool] = False
    """Whether :meth:`presigned_url` works on this backend."""

    async def put(self, key: str, data: ObjectBody, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object there, atomically.

        ``data`` is bytes or an async iterable of byte chunks; a stream is read as it is
        uploaded, never held whole in memory. If the stream raises or the task is cancelled,
        the error propagates and the key keeps its previous content (or stays absent).
        """
        validate_key(key)
        ctype = _check_content_type(content_type)
        if isinstance(data, bytes | bytearray | memoryview):
            return await self._put(key, bytes(data), ctype)
        return await self._put(key, data, ctype)

    async def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectReader:
        """Open ``key`` for a streaming read; raises ``NotFound`` now if it is missing.

        The reader yields chunks of at most ``chunk_size`` bytes and exposes ``info`` before
        the first byte is read (for Content-Length, ETag and Content-Type headers).
        """
        validate_key(key)
        if chunk_size < 1:
            raise Invalid("Chunk size must be positive")
        return await self._open(key, chunk_size)

    async def get_stream(
        self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Yield the content of ``key`` in chunks of at most ``chunk_size`` bytes.

        The same as iterating :meth:`open`, as a plain async generator; ``NotFound`` is
        raised at the first iteration.
        """
        async with await self.open(key, chunk_size=chunk_size) as reader:
            async for chunk in reader:
                yield chunk

    async def get_bytes(self, key: str) -> bytes:
        """The whole content of ``key``; for objects known to be small."""
        async with await self.open(key) as reader:
            return b"".join([chunk async for chunk in reader])

    async def head(self, key: str) -> ObjectInfo:
        """Size, ETag, SHA-256, content type and modification time of ``key``."""
        validate_key(key)
        return await self._head(key)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            await self.head(key)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        validate_key(key)
        await self._delete(key)

    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), by key.

        ``prefix="runs/r1/"`` lists a folder; ``prefix="runs/r1"`` also matches
        ``runs/r10/…``. Objects written by other tools under names that are not valid keys
        are left out.
        """
        _validate_prefix(prefix)
        return await self._list(prefix)

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy ``src`` to ``dst`` (content and content type) atomically; ``dst``'s info."""
        validate_key(src)
        validate_key(dst)
        return await self._copy(src, dst)

    async def presigned_url(
        self,
        key: str,
        expires: int | timedelta = 3600,
        *,
        method: Literal["GET", "PUT"] = "GET",
    ) -> str:
        """A URL that lets its holder GET (or PUT) ``key`` without credentials until expiry.

        ``expires`` is seconds or a timedelta, at most 7 days. Backends without presigned
        URLs (see :attr:`can_presign`) raise ``PresignUnsupported``. The key is not checked
        for existence.
        """
        validate_key(key)
        seconds = _expires_seconds(expires)
        if method not in ("GET", "PUT"):
            raise Invalid("Presigned URL method must be GET or PUT")
        if not self.can_presign:
            raise PresignUnsupported(
                f"{type(self).__name__} cannot issue presigned URLs; stream the object instead"
            )
        return await self._presigned_url(key, seconds, method)

    async def ping(self) -> None:
        """Check that the store is usable, for health checks; raises ``Unavailable`` if not."""
        await self._ping()

    async def close(self) -> None:
        """Release connections and threads held by the store."""
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Backend hooks: arguments are already validated.

    @abc.abstractmethod
    async def _put(
        self, key: str, data: bytes | AsyncIterable[bytes], content_type: str
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _open(self, key: str, chunk_size: int) -> ObjectReader: ...

    @abc.abstractmethod
    async def _head(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]: ...

    @abc.abstractmethod
    async def _copy(self, src: str, dst: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _ping(self) -> None: ...

    async def _presigned_url(self, key: str, seconds: int, method: str) -> str:
        raise PresignUnsupported(f"{type(self).__name__} cannot issue presigned URLs")


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True, slots=True)
class _MemoryObject:
    data: bytes
    info: ObjectInfo


class MemoryObjectStore(ObjectStore):
    """Objects in a dict of this instance; for tests. Nothing is shared between instances."""

    def __init__(self) -> None:
        self._objects: dict[str, _MemoryObject] = {}

    def __repr__(self) -> str:
        return f"MemoryObjectStore({len(self._objects)} objects)"

    def _store(self, key: str, data: bytes, content_type: str, sha256: str) -> ObjectInfo:
        info = ObjectInfo(
            key=key,
            size=len(data),
            etag=sha256,
            last_modified=datetime.now(UTC),
            content_type=content_type,
            sha256=sha256,
        )
        # One assignment: a concurrent reader sees the old object or the new, never a mix.
        self._objects[key] = _MemoryObject(data, info)
        return info

    def _get(self, key: str) -> _MemoryObject:
        try:
            return self._objects[key]
        except KeyError:
            raise NotFound(f"Object '{key}' not found") from None

    async def _put(
        self, key: str, data: bytes | AsyncIterable[bytes], content_type: str
    ) -> ObjectInfo:
        if isinstance(data, bytes):
            body = data
        else:
            buffer = bytearray()
            async for chunk in data:
                buffer += memoryview(chunk)
            body = bytes(buffer)
        return self._store(key, body, content_type, hashlib.sha256(body).hexdigest())

    async def _open(self, key: str, chunk_size: int) -> ObjectReader:
        obj = self._get(key)
        view = memoryview(obj.data)
        offset = 0

        async def read(n: int) -> bytes:
            nonlocal offset
            chunk = bytes(view[offset : offset + n])
            offset += len(chunk)
            return chunk

        async def close() -> None:
            view.release()

        return ObjectReader(obj.info, read, close, chunk_size)

    async def get_bytes(self, key: str) -> bytes:
        """The whole content of ``key``."""
        validate_key(key)
        return self._get(key).data

    async def _head(self, key: str) -> ObjectInfo:
        return self._get(key).info

    async def _delete(self, key: str) -> None:
        self._objects.pop(key, None)

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return [obj.info for key, obj in sorted(self._objects.items()) if key.startswith(prefix)]

    async def _copy(self, src: str, dst: str) -> ObjectInfo:
        obj = self._get(src)
        if src == dst:
            return obj.info
        info = replace(obj.info, key=dst, last_modified=datetime.now(UTC))
        self._objects[dst] = _MemoryObject(obj.data, info)
        return info

    async def _ping(self) -> None:
        return None


# --------------------------------------------------------------------------- file

_UNAVAILABLE_ERRNOS: Final = frozenset(
    {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}
)


@contextlib.contextmanager
def _fs_errors() -> Iterator[None]:
    """Turn errors that mean 'this folder cannot serve' into ``Unavailable``."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _UNAVAILABLE_ERRNOS:
            raise Unavailable(f"Object store folder is not usable: {exc.strerror}") from exc
        raise


def _fsync_dir(path: str) -> None:
    """Persist a rename: POSIX makes it durable only once the directory is fsynced."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open directories
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_hashed(f: IO[bytes], update: Callable[[bytes], None], chunk: bytes) -> None:
    update(chunk)  # hashlib releases the GIL on large buffers, so this stays in the thread
    f.write(chunk)


def _copy_hashed(src: IO[bytes], dst: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(_FILE_WRITE_SIZE):
        _write_hashed(dst, digest.update, chunk)
    return digest.hexdigest()


def _discard(f: IO[bytes], path: str) -> None:
    f.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class FileObjectStore(ObjectStore):
    """Objects as plain files under a root folder; the embedded-mode default.

    ``<root>/<key>`` holds the bytes, so the folder stays browsable. A write goes to a temp
    file under ``<root>/.tmp/``, is fsynced and then renamed over the key with ``os.replace``
    (atomic on POSIX and Windows). Content type and SHA-256 live in a sidecar under
    ``<root>/.meta/<key>`` that names the inode, size and mtime it describes; a sidecar that
    no longer matches its file (a crash between the two renames, a file copied in by hand) is
    ignored, so ``head`` can lose detail but never report another version's hash. Neither
    area is ever listed. Unlike S3, a folder cannot hold both ``a`` and ``a/b``: the second
    ``put`` raises ``Conflict``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.path.abspath(os.fspath(root))
        self._tmp = os.path.join(self._root, ".tmp")
        self._meta = os.path.join(self._root, ".meta")

    def __repr__(self) -> str:
        return f"FileObjectStore({self._root!r})"

    @property
    def root(self) -> str:
        """The absolute folder the objects live in."""
        return self._root

    # Paths and metadata (all sync: called in worker threads).

    def _data_path(self, key: str) -> str:
        return os.path.join(self._root, *key.split("/"))

    def _meta_path(self, key: str) -> str:
        return os.path.join(self._meta, *key.split("/"))

    def _new_temp(self, prefix: str = "put-") -> tuple[IO[bytes], str]:
        with _fs_errors():
            os.makedirs(self._tmp, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=self._tmp, prefix=prefix)
        return os.fdopen(fd, "wb"), path

    def _read_meta(self, key: str, st: os.stat_result) -> dict[str, Any] | None:
        try:
            with open(self._meta_path(key), "rb") as f:
                meta = json.loads(f.read(4096))
        except (OSError, ValueError):
            return None
        if not (
            isinstance(meta, dict)
            and meta.get("v") == 1
            and meta.get("ino") == st.st_ino
            and meta.get("size") == st.st_size
            and meta.get("mtime_ns") == st.st_mtime_ns
            and isinstance(meta.get("sha256"), str)
            and _SHA256_HEX.match(meta["sha256"])
            and isinstance(meta.get("content_type"), str)
        ):
            return None
        return meta

    def _info(self, key: str, st: os.stat_result, meta: dict[str, Any] | None) -> ObjectInfo:
        last_modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
        if meta is not None:
            sha256: str = meta["sha256"]
            return ObjectInfo(key, st.st_size, sha256, last_modified, meta["content_type"], sha256)
        # No trustworthy sidecar: an ETag that changes with every rewrite of the file.
        etag = f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"
        guessed = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return ObjectInfo(key, st.st_size, etag, last_modified, guessed, None)

    def _stat(self, key: str) -> os.stat_result:
        try:
            st = os.stat(self._data_path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Object '{key}' not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"Object '{key}' not found")
        return st

    def _place(self, tmp: str, target: str) -> None:
        """Rename ``tmp`` to ``target``, making its folders; retries a concurrent prune."""
        for _ in range(5):
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(tmp, target)
                return
            except FileNotFoundError:
                # A concurrent delete pruned the freshly made folder: make it again.
                if not os.path.exists(tmp):
                    raise
            except IsADirectoryError:
                try:
                    os.rmdir(target)  # an empty folder is no object; anything else conflicts
                except OSError:
                    raise Conflict("The key names a folder of other objects") from None
            except (FileExistsError, NotADirectoryError):
                raise Conflict("A prefix of the key is an existing object") from None
        raise Unavailable("Object store folder kept changing during a write")

    def _prune(self, folder: str, stop: str) -> None:
        """Remove now-empty folders from ``folder`` up to, not including, ``stop``."""
        while folder != stop and folder.startswith(stop + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def _write_meta(self, key: str, st: os.stat_result, content_type: str, sha256: str) -> bool:
        meta = {
            "v": 1,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256,
            "content_type": content_type,
        }
        path = ""
        try:
            f, path = self._new_temp("meta-")
            with f:
                f.write(json.dumps(meta).encode())
            self._place(path, self._meta_path(key))
            return True
        except (OSError, InwireError) as exc:
            # The data is committed; without a sidecar head() just reports less.
            log.warning("could not write metadata for object %r: %s", key, exc)
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return False

    def _commit(
        self, key: str, f: IO[bytes], tmp: str, content_type: str, sha256: str
    ) -> ObjectInfo:
        with _fs_errors():
            f.flush()
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())  # os.replace keeps inode and mtime: the sidecar's guard
            f.close()
            target = self._data_path(key)
            try:
                self._place(tmp, target)
            except Conflict as exc:
                raise Conflict(f"Cannot store '{key}': {exc.message}") from None
            _fsync_dir(os.path.dirname(target))
            written = self._write_meta(key, st, content_type, sha256)
        return self._info(key, st, self._read_meta(key, st) if written else None)

    def _open_sync(self, key: str) -> tuple[IO[bytes], ObjectInfo]:
        with _fs_errors():
            self._stat(key)  # refuses folders and FIFOs before open() could block on one
            try:
                f = open(self._data_path(key), "rb")  # noqa: SIM115 - closed by the reader
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise NotFound(f"Object '{key}' not found") from None
            try:
                st = os.fstat(f.fileno())  # the version we hold, even if replaced later
                return f, self._info(key, st, self._read_meta(key, st))
            except BaseException:
                f.close()
                raise

    def _head_sync(self, key: str) -> ObjectInfo:
        with _fs_errors():
            st = self._stat(key)
            return self._info(key, st, self._read_meta(key, st))

    def _delete_sync(self, key: str) -> None:
        with _fs_errors():
            for path, area in (
                (self._data_path(key), self._root),
                (self._meta_path(key), self._meta),
            ):
                try:
                    os.unlink(path)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue
                self._prune(os.path.dirname(path), area)

    def _list_sync(self, prefix: str) -> builtins.list[ObjectInfo]:
        folder, _, _ = prefix.rpartition("/")
        start = os.path.join(self._root, *folder.split("/")) if folder else self._root
        found: builtins.list[ObjectInfo] = []
        with _fs_errors():
            for dirpath, dirnames, filenames in os.walk(start):
                rel = os.path.relpath(dirpath, self._root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                # Skip the reserved areas and folders that cannot hold a matching key.
                dirnames[:] = [
                    d
                    for d in dirnames
                    if not (base == "" and d in _RESERVED_SEGMENTS)
                    and (f"{base}{d}/".startswith(prefix) or prefix.startswith(f"{base}{d}/"))
                ]
                for name in filenames:
                    key = base + name
                    if not key.startswith(prefix):
                        continue
                    try:
                        validate_key(key)
                        st = os.stat(os.path.join(dirpath, name))
                    except (Invalid, FileNotFoundError):
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append(self._info(key, st, self._read_meta(key, st)))
        found.sort(key=lambda info: info.key)
        return found

    def _ping_sync(self) -> None:
        try:
            os.makedirs(self._root, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"Object store folder cannot be created: {exc.strerror}") from exc
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise Unavailable("Object store folder is not writable")

    # Hooks.

    async def _put(
        self, key: str, data: bytes | AsyncIterable[bytes], content_type: str
    ) -> ObjectInfo:
        f, tmp = await anyio.to_thread.run_sync(self._new_temp)
        try:
            digest = hashlib.sha256()
            if isinstance(data, bytes):
                await anyio.to_thread.run_sync(_write_hashed, f, digest.update, data)
            else:
                async with contextlib.aclosing(_rechunk(data, _FILE_WRITE_SIZE)) as chunks:
                    async for chunk in chunks:
                        await anyio.to_thread.run_sync(_write_hashed, f, digest.update, chunk)
            return await anyio.to_thread.run_sync(
                self._commit, key, f, tmp, content_type, digest.hexdigest()
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_discard, f, tmp)
            raise

    async def _open(self, key: str, chunk_size: int) -> ObjectReader:
        f, info = await anyio.to_thread.run_sync(self._open_sync, key)

        async def read(n: int) -> bytes:
            return await anyio.to_thread.run_sync(f.read, n)

        async def close() -> None:
            await anyio.to_thread.run_sync(f.close)

        return ObjectReader(info, read, close, chunk_size)

    async def _head(self, key: str) -> ObjectInfo:
        return await anyio.to_thread.run_sync(self._head_sync, key)

    async def _delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete_sync, key)

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await anyio.to_thread.run_sync(self._list_sync, prefix)

    async def _copy(self, src: str, dst: str) -> ObjectInfo:
        source, info = await anyio.to_thread.run_sync(self._open_sync, src)
        try:
            if src == dst:
                return info
            f, tmp = await anyio.to_thread.run_sync(self._new_temp)
            try:
                sha256 = await anyio.to_thread.run_sync(_copy_hashed, source, f)
                content_type = info.content_type or DEFAULT_CONTENT_TYPE
                return await anyio.to_thread.run_sync(
                    self._commit, dst, f, tmp, content_type, sha256
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_discard, f, tmp)
                raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(source.close)

    async def _ping(self) -> None:
        await anyio.to_thread.run_sync(self._ping_sync)


# --------------------------------------------------------------------------- S3


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket (AWS or any S3-compatible server), optionally under a prefix.

    boto3 is imported on first use and every call runs in a worker thread. Credentials come
    from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
    instance or container roles), never from the URL. Bodies up to one part go in a single
    PUT; longer streams use a multipart upload of ``part_size`` parts, one part in memory
    at a time, completed only at the end and aborted on any error or cancellation, so no
    partial object ever appears. A process killed mid-upload leaves an invisible incomplete
    upload: give the bucket an ``AbortIncompleteMultipartUpload`` lifecycle rule.
    """

    can_presign = True
    _max_single_copy: ClassVar[int] = _S3_MAX_PART  # CopyObject's limit; beyond, copy by parts

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        addressing_style: Literal["auto", "virtual", "path"] | None = None,
        part_size: int = _S3_DEFAULT_PART,
    ) -> None:
        if not _BUCKET_NAME.match(bucket):
            raise Invalid("S3 bucket name is not valid")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        if not _S3_MIN_PART <= part_size <= _S3_MAX_PART:
            raise Invalid(f"S3 part size must be {_S3_MIN_PART} to {_S3_MAX_PART} bytes")
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._profile = profile
        self._addressing_style = addressing_style
        self._part_size = part_size
        self._s3: S3Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def bucket(self) -> str:
        """The bucket the objects live in."""
        return self._bucket

    def _full(self, key: str) -> str:
        return self._prefix + key

    def _make_client(self) -> S3Client:
        with self._client_lock:
            if self._s3 is None:
                import boto3  # heavy: imported on first use, never at import time
                from botocore.config import Config

                session = boto3.session.Session(
                    profile_name=self._profile, region_name=self._region
                )
                s3_config: dict[str, Any] = {}
                if self._addressing_style:
                    s3_config["addressing_style"] = self._addressing_style
                config = Config(
                    s3=s3_config,  # type: ignore[arg-type]
                    retries={"mode": "standard"},
                    max_pool_connections=32,
                )
                self._s3 = session.client("s3", endpoint_url=self._endpoint_url, config=config)
            return self._s3

    async def _client(self) -> S3Client:
        if self._s3 is not None:
            return self._s3
        return await anyio.to_thread.run_sync(self._make_client)

    def _translate(self, exc: Exception, key: str | None) -> InwireError | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code == "NoSuchBucket":
                return Unavailable(f"S3 bucket '{self._bucket}' does not exist")
            if key is not None and (code in ("NoSuchKey", "NotFound", "404") or status == 404):
                return NotFound(f"Object '{key}' not found")
            if status in (401, 403):
                return Unavailable(f"S3 refused access to bucket '{self._bucket}' ({code})")
            if status >= 500 or code in ("SlowDown", "RequestTimeout"):
                return Unavailable(f"S3 is failing ({code})")
            return None
        if isinstance(exc, BotoCoreError):
            return Unavailable(f"S3 is not usable: {exc}")
        return None

    async def _call(self, fn: Callable[[], T], key: str | None = None) -> T:
        """Run a blocking boto3 call in a worker thread, mapping its errors to ours."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except InwireError:
            raise
        except Exception as exc:
            translated = self._translate(exc, key)
            if translated is None:
                raise
            raise translated from exc

    def _info(self, key: str, resp: Mapping[str, Any]) -> ObjectInfo:
        sha256 = resp.get("Metadata", {}).get("sha256")
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=resp["ETag"].strip('"'),
            last_modified=resp["LastModified"].astimezone(UTC),
            content_type=resp.get("ContentType"),
            sha256=sha256 if sha256 and _SHA256_HEX.match(sha256) else None,
        )

    async def _info_after_write(self, key: str, etag: str, fallback: ObjectInfo) -> ObjectInfo:
        """Head what was just written; IfMatch so a racing writer's object is never reported."""
        client = await self._client()
        try:
            resp = await self._call(
                lambda: client.head_object(Bucket=self._bucket, Key=self._full(key), IfMatch=etag),
                key,
            )
        except Exception:
            return fallback  # the write succeeded; report what we know
        info = self._info(key, resp)
        return replace(info, sha256=info.sha256 or fallback.sha256)

    async def _put_single(self, key: str, body: bytes, content_type: str) -> ObjectInfo:
        client = await self._client()

        def upload() -> tuple[str, str]:
            sha256 = hashlib.sha256(body).hexdigest()
            resp = client.put_object(
                Bucket=self._bucket,
                Key=self._full(key),
                Body=body,
                ContentType=content_type,
                Metadata={"sha256": sha256},
            )
            return resp["ETag"], sha256

        etag, sha256 = await self._call(upload, key)
        fallback = ObjectInfo(
            key, len(body), etag.strip('"'), datetime.now(UTC), content_type, sha256
        )
        return await self._info_after_write(key, etag, fallback)

    async def _put_multipart(
        self, key: str, first: bytes, parts: AsyncIterator[bytes], content_type: str
    ) -> ObjectInfo:
        client = await self._client()
        full = self._full(key)
        created = await self._call(
            lambda: client.create_multipart_upload(
                Bucket=self._bucket, Key=full, ContentType=content_type
            ),
            key,
        )
        upload_id = created["UploadId"]
        digest = hashlib.sha256()
        done: builtins.list[dict[str, Any]] = []
        size = 0

        def upload_part(number: int, body: bytes) -> str:
            digest.update(body)
            resp = client.upload_part(
                Bucket=self._bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
            return resp["ETag"]

        try:
            part: bytes | None = first
            while part is not None:
                number = len(done) + 1
                if number > _S3_MAX_PARTS:
                    raise Invalid(
                        f"Object is larger than {_S3_MAX_PARTS} parts of {self._part_size} "
                        "bytes; raise the store's part_size"
                    )
                etag = await self._call(functools.partial(upload_part, number, part), key)
                done.append({"ETag": etag, "PartNumber": number})
                size += len(part)
                part = await anext(parts, None)
            completed = await self._call(
                lambda: client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},  # type: ignore[typeddict-item]
                ),
                key,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self._call(
                        lambda: client.abort_multipart_upload(
                            Bucket=self._bucket, Key=full, UploadId=upload_id
                        )
                    )
                except Exception as exc:  # the original error matters more
                    log.warning("could not abort multipart upload of %r: %s", key, exc)
            raise
        etag = completed.get("ETag", "")
        fallback = ObjectInfo(
            key, size, etag.strip('"'), datetime.now(UTC), content_type, digest.hexdigest()
        )
        return await self._info_after_write(key, etag, fallback)

    async def _put(
        self, key: str, data: bytes | AsyncIterable[bytes], content_type: str
    ) -> ObjectInfo:
        if isinstance(data, bytes) and len(data) <= _S3_MAX_PART:
            return await self._put_single(key, data, content_type)

        async def whole(body: bytes) -> AsyncIterator[bytes]:
            yield body

        source = whole(data) if isinstance(data, bytes) else data
        async with contextlib.aclosing(_rechunk(source, self._part_size)) as parts:
            first = await anext(parts, None)
            if first is None or len(first) < self._part_size:
                # A short first part is the last one: the whole body fits one PUT.
                return await self._put_single(key, first or b"", content_type)
            return await self._put_multipart(key, first, parts, content_type)

    async def _open(self, key: str, chunk_size: int) -> ObjectReader:
        client = await self._client()
        resp = await self._call(
            lambda: client.get_object(Bucket=self._bucket, Key=self._full(key)), key
        )
        body = resp["Body"]
        info = self._info(key, resp)

        async def read(n: int) -> bytes:
            return await self._call(lambda: body.read(n), key)

        async def close() -> None:
            await anyio.to_thread.run_sync(body.close)

        return ObjectReader(info, read, close, chunk_size)

    async def _head(self, key: str) -> ObjectInfo:
        client = await self._client()
        resp = await self._call(
            lambda: client.head_object(Bucket=self._bucket, Key=self._full(key)), key
        )
        return self._info(key, resp)

    async def _delete(self, key: str) -> None:
        client = await self._client()
        await self._call(
            lambda: client.delete_object(Bucket=self._bucket, Key=self._full(key)), key
        )

    async def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        client = await self._client()

        def list_all() -> builtins.list[ObjectInfo]:
            found: builtins.list[ObjectInfo] = []
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._full(prefix)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self._prefix) :]
                    try:
                        validate_key(key)
                    except Invalid:
                        continue
                    found.append(
                        ObjectInfo(
                            key=key,
                            size=obj["Size"],
                            etag=obj["ETag"].strip('"'),
                            last_modified=obj["LastModified"].astimezone(UTC),
                        )
                    )
            return found

        return sorted(await self._call(list_all), key=lambda info: info.key)

    async def _copy(self, src: str, dst: str) -> ObjectInfo:
        source = await self._head(src)
        if src == dst:
            return source
        client = await self._client()
        copy_source = {"Bucket": self._bucket, "Key": self._full(src)}
        if source.size <= self._max_single_copy:
            resp = await self._call(
                lambda: client.copy_object(
                    Bucket=self._bucket,
                    Key=self._full(dst),
                    CopySource=copy_source,  # type: ignore[arg-type]
                    MetadataDirective="COPY",
                ),
                src,
            )
            etag = resp.get("CopyObjectResult", {}).get("ETag", "")
            fallback = replace(source, key=dst, etag=etag.strip('"'))
            return await self._info_after_write(dst, etag, fallback)

        # Past CopyObject's 5 GiB limit: a server-side multipart copy (UploadPartCopy).
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self._part_size, multipart_chunksize=self._part_size
        )
        extra: dict[str, Any] = {
            "ContentType": source.content_type or DEFAULT_CONTENT_TYPE,
            "Metadata": {"sha256": source.sha256} if source.sha256 else {},
            "MetadataDirective": "REPLACE",
        }
        await self._call(
            lambda: client.copy(
                copy_source,  # type: ignore[arg-type]
                self._bucket,
                self._full(dst),
                ExtraArgs=extra,
                Config=config,
            ),
            src,
        )
        info = await self._head(dst)
        return replace(info, sha256=info.sha256 or source.sha256)

    async def _presigned_url(self, key: str, seconds: int, method: str) -> str:
        client = await self._client()
        operation = "get_object" if method == "GET" else "put_object"
        return await self._call(
            lambda: client.generate_presigned_url(
                operation,
                Params={"Bucket": self._bucket, "Key": self._full(key)},
                ExpiresIn=seconds,
            )
        )

    async def _ping(self) -> None:
        client = await self._client()
        try:
            await self._call(lambda: client.head_bucket(Bucket=self._bucket))
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable(f"S3 bucket '{self._bucket}' is not usable") from exc

    async def close(self) -> None:
        """Close the boto3 client's connection pool."""
        client, self._s3 = self._s3, None
        if client is not None:
            await anyio.to_thread.run_sync(client.close)


# --------------------------------------------------------------------------- factory

_S3_OPTIONS: Final = frozenset(
    {"endpoint_url", "region", "profile", "addressing_style", "part_size"}
)


def _single_options(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise Invalid("Object store URL has a malformed query string") from exc
    options: dict[str, str] = {}
    for name, values in parsed.items():
        if name not in _S3_OPTIONS:
            allowed = ", ".join(sorted(_S3_OPTIONS))
            raise Invalid(f"Unknown S3 store option '{name}'; known: {allowed}")
        if len(values) != 1 or not values[0]:
            raise Invalid(f"S3 store option '{name}' needs exactly one value")
        options[name] = values[0]
    return options


def _open_s3(url: str) -> S3ObjectStore:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise Invalid("Put S3 credentials in the environment or a profile, not in the URL")
    if parts.fragment:
        raise Invalid("S3 store URL must not have a fragment")
    options = _single_options(parts.query)
    endpoint_url = options.get("endpoint_url")
    if endpoint_url is not None and urlsplit(endpoint_url).scheme not in ("http", "https"):
        raise Invalid("S3 endpoint_url must be an http:// or https:// URL")
    style = options.get("addressing_style")
    if style is not None and style not in ("auto", "virtual", "path"):
        raise Invalid("S3 addressing_style must be auto, virtual or path")
    part_size = _S3_DEFAULT_PART
    if "part_size" in options:
        try:
            part_size = int(options["part_size"])
        except ValueError:
            raise Invalid("S3 part_size must be a number of bytes") from None
    return S3ObjectStore(
        parts.netloc,
        unquote(parts.path),
        endpoint_url=endpoint_url,
        region=options.get("region"),
        profile=options.get("profile"),
        addressing_style=style,  # type: ignore[arg-type]
        part_size=part_size,
    )


def _open_file(url: str) -> FileObjectStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise Invalid("file:// store URL must name a local path: file:///absolute/path")
    if parts.query or parts.fragment:
        raise Invalid("file:// store URL takes no options")
    path = url2pathname(parts.path)
    if not path or not os.path.isabs(path):
        raise Invalid("file:// store URL must name an absolute path: file:///absolute/path")
    return FileObjectStore(path)


def open_object_store(url: str) -> ObjectStore:
    """Build the object store a settings URL names; nothing is contacted until first use.

    * ``file:///abs/path``: a folder (created on first write);
    * ``s3://bucket[/prefix][?endpoint_url=URL&region=R&profile=P&addressing_style=path
      &part_size=BYTES]``: S3 or an S3-compatible server such as MinIO; credentials from
      boto3's usual chain (environment, profile, role), ``AWS_ENDPOINT_URL`` also honoured;
    * ``memory://``: a fresh in-memory store, for tests.

    Raises ``Invalid`` for an unknown scheme or malformed URL.
    """
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme == "file":
        return _open_file(url)
    if scheme == "s3":
        return _open_s3(url)
    if scheme == "memory":
        if url.rstrip("/").lower() != "memory:":
            raise Invalid("memory:// store URL takes no path or options")
        return MemoryObjectStore()
    raise Invalid(
        f"Unsupported object store URL scheme '{scheme}'; use file://, s3:// or memory://"
    )


async def get_storage(request: Request) -> ObjectStore:
    """The app's object store (opened by ``create_service_app(storage=True)``)."""
    store: ObjectStore = request.app.state.storage
    return store


StorageDep = Annotated[ObjectStore, Depends(get_storage)]
